"""`minitx serve` under load and in the browser: request latency, keystroke to updated views, first page load.

Starts the explorer's app for RUN on a real uvicorn on 127.0.0.1 (a free port, in a thread of this
process), then measures three things, each bounded in count and time:

    load       REQUESTS requests (the page's one request per keystroke: a view, or a translation for a
               run that reads a source) from CLIENTS concurrent clients, each a different text, every
               third with a head off: failures, and latency p50 / p95 (loopback only)
    keystroke  headless Chromium types KEYS characters one at a time, PAUSE ms apart, into the real page;
               the page's own clock (window.minitx.timings) says how long each change took until every
               view was drawn again: p50 / p95
    first load a fresh page LOADS times: navigation to the first complete set of views, p50 / max

    python bench/bench_serve.py RUN                    # the numbers in docs/serve.md
    python bench/bench_serve.py RUN --quick            # fewer of each: does it run?

Run it alone on the machine (nothing else busy on its cores): the server, the load clients and
Chromium share them.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

TEXT = "The little dog sees the big red ball. The dog"
#: What a run that reads a source is given (a built-in story sentence: gold links), with BIG's words for "big".
SENTENCE = "The big dog sees the red ball."
BIG = ("big", "little", "old", "red")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between the closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low, high = int(rank), min(int(rank) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@contextmanager
def serving(run_dirs: list[Path], threads: int = 0) -> Iterator[tuple[str, str]]:
    """(base URL, token) of the explorer for `run_dirs` on a real uvicorn on 127.0.0.1, while the block runs."""
    import uvicorn

    from minitx.commands.serve import bind
    from minitx.device import apply_threads
    from minitx.serve.app import create_app, new_token
    from minitx.serve.session import load_sessions

    apply_threads(threads)
    sessions = load_sessions(run_dirs)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    token = new_token()
    server = uvicorn.Server(uvicorn.Config(create_app(sessions, token=token, port=port), log_level="warning",
                                           access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", token
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def load_test(base: str, token: str, *, requests: int = 200, clients: int = 8, text: str | None = None,
              run: int = 0, timeout: float = 60.0) -> dict:
    """`requests` requests from `clients` concurrent clients, each text different, every third with a head off:
    latencies and failures. The page's one request per keystroke: a view, or for a run that reads a source a
    translation (of `text`, else a story sentence or the built-in text)."""
    import httpx

    cookies = {f"minitx-token-{base.rsplit(':', 1)[1]}": token}
    info = httpx.get(f"{base}/api/runs", cookies=cookies, timeout=timeout).json()["runs"][run]
    first = next(m for m in info["maps"] if m["ablatable"])
    path, key = ("translate", "sentence") if info["reads_source"] else ("view", "text")
    text = text or (SENTENCE if info["reads_source"] else TEXT)

    def worker(numbers: range) -> list[tuple[float, bool]]:
        results = []
        with httpx.Client(base_url=base, cookies=cookies, timeout=timeout) as client:
            for i in numbers:
                started = time.perf_counter()
                body = {key: f"{text} {i % 17}" if not info["reads_source"] else text.replace("big", BIG[i % 4]),
                        "temperature": 0.8, "ablate": [[first["name"], i % first["heads"]]] if i % 3 == 0 else []}
                try:
                    answer = client.post(f"/api/runs/{run}/{path}", json=body)
                    ok = answer.status_code == 200 and ("tokens" in answer.json() or "translation" in answer.json())
                except httpx.HTTPError:
                    ok = False
                results.append(((time.perf_counter() - started) * 1000, ok))
        return results

    shares = [range(c, requests, clients) for c in range(clients)]
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [r for part in pool.map(worker, shares) for r in part]
    seconds = time.perf_counter() - started
    latencies = [ms for ms, _ in results]
    return {"requests": len(results), "clients": clients, "failures": sum(not ok for _, ok in results),
            "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95), "seconds": seconds,
            "per_second": len(results) / seconds}


def _wait(page, expression: str, timeout: float = 60.0) -> None:
    """Poll `expression` (a JS function) until it is true: the page's CSP forbids wait_for_function's eval."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the page never satisfied {expression}")
        time.sleep(0.01)


def chromium_executable() -> str:
    """$MINITX_CHROMIUM, else the first Chromium or Chrome on the PATH."""
    import os
    import shutil

    for name in (os.environ.get("MINITX_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (found := shutil.which(name)):
            return found
    raise SystemExit("no Chromium found: install chromium or set MINITX_CHROMIUM")


def browser_figures(url: str, *, loads: int = 5, keys: int = 40, pause_ms: int = 400) -> dict:
    """First page load (navigation to the first drawn views) and keystroke to updated views, in Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable(), args=["--no-sandbox"])
        first_loads = []
        for _ in range(loads):
            page = browser.new_page()
            started = time.perf_counter()
            page.goto(url)
            _wait(page, "() => window.minitx.updates >= 1")
            first_loads.append((time.perf_counter() - started) * 1000)
            page.close()
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url)
        _wait(page, "() => window.minitx.updates >= 1")
        _wait(page, "() => document.querySelector('.run .note') !== null")
        page.wait_for_timeout(2000)  # the roles over data, measured once at the start, are done
        before = page.evaluate("() => window.minitx.timings.length")
        box = page.locator("#text")
        box.click()
        page.keyboard.press("End")
        for i in range(keys):
            page.keyboard.type(" runs"[i % 5])
            page.wait_for_timeout(pause_ms)
        _wait(page, "() => !window.minitx.busy")
        timings = page.evaluate(f"() => window.minitx.timings.slice({before})")
        browser.close()
    return {"first_load_p50_ms": percentile(first_loads, 50), "first_load_max_ms": max(first_loads),
            "keystrokes": len(timings), "keystroke_p50_ms": percentile(timings, 50),
            "keystroke_p95_ms": percentile(timings, 95), "console_errors": errors}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (the first is the one measured)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--keys", type=int, default=40)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads of the server (0: minitx's choice)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.keys, args.loads = 40, 10, 2
    import torch

    figures: dict = {"runs": [str(r) for r in args.runs]}
    with serving(args.runs, args.threads) as (base, token):
        figures["torch_threads"] = torch.get_num_threads()
        load_test(base, token, requests=16, clients=4)  # warm up: first passes, allocations
        figures["load"] = load_test(base, token, requests=args.requests, clients=args.clients)
        print(f"load: {figures['load']['requests']} requests (views or translations) from {args.clients} clients, "
              f"{figures['load']['failures']} failed; p50 {figures['load']['p50_ms']:.1f} ms, "
              f"p95 {figures['load']['p95_ms']:.1f} ms ({figures['load']['per_second']:.1f} requests/s)")
        figures["browser"] = browser_figures(f"{base}/?token={token}", loads=args.loads, keys=args.keys)
        b = figures["browser"]
        print(f"first load: p50 {b['first_load_p50_ms']:.0f} ms, max {b['first_load_max_ms']:.0f} ms "
              f"({args.loads} loads)")
        print(f"keystroke to updated views: p50 {b['keystroke_p50_ms']:.1f} ms, p95 {b['keystroke_p95_ms']:.1f} ms "
              f"({b['keystrokes']} keystrokes); console errors: {len(b['console_errors'])}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return figures


if __name__ == "__main__":
    main()
