"""`minitx serve RUN [RUN ...]`: the live explorer in the browser (docs/serve.md).

Loads each run once, binds the socket (port 0: a free one), prints the URL with a fresh access token
and serves until Ctrl-C or SIGTERM (either stops it cleanly: exit status 0). A --host that is not
loopback is served with a warning: anyone who can reach the machine and learns the token can use the page.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from minitx.errors import UserError

#: Runs one page can hold side by side.
MAX_RUNS = 4


def check_serve_flags(run_dirs: list[Path], port: int) -> None:
    if not run_dirs:
        raise UserError("give at least one run directory: minitx serve RUN [RUN ...]")
    if len(run_dirs) > MAX_RUNS:
        raise UserError(f"the page shows at most {MAX_RUNS} runs side by side; give fewer")
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be 0 (a free port) to 65535, got {port}")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 takes a free one. A UserError when it cannot bind."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}; choose another --port or --host") from None
    sock.set_inheritable(True)
    return sock


def page_url(host: str, port: int, token: str) -> str:
    """http://127.0.0.1:PORT/?token=...; an IPv6 address in brackets; a wildcard host shown as this machine."""
    shown = host.strip("[]")
    if shown in ("0.0.0.0", "::", ""):
        shown = socket.gethostname()
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/?token={token}"


def run_serve(run_dirs: list[Path], *, host: str = "127.0.0.1", port: int = 0, open_browser: bool = False,
              device: str = "cpu", threads: int = 0) -> None:
    """Serve the explorer for `run_dirs` on host:port until interrupted."""
    try:
        import uvicorn

        from minitx.serve.app import allowed_hosts_for, create_app, is_loopback, new_token
    except ImportError as e:
        raise UserError(f"minitx serve needs the serve extra ({e.name} is missing): pip install 'minitx[serve]'") \
            from None
    from minitx.device import apply_threads, resolve_device
    from minitx.rundir import load_run
    from minitx.serve.session import describe, load_sessions

    check_serve_flags(run_dirs, port)
    for run_dir in run_dirs:
        load_run(run_dir)  # a missing or broken run: one line, before the port is taken
    device = resolve_device(device)
    if device == "cpu":
        apply_threads(threads)
    sessions = load_sessions(run_dirs, device)
    sock = bind(host, port)
    actual_port = sock.getsockname()[1]
    token = new_token()
    app = create_app(sessions, token=token, port=actual_port, allowed_hosts=allowed_hosts_for(host))
    url = page_url(host, actual_port, token)
    for session in sessions:
        print(f"run {session.index}: {describe(session.run)}", file=sys.stderr)
    if not is_loopback(host):
        print(f"warning: --host {host} is not loopback: anyone who can reach this machine and has the URL's token "
              "can use the page and its runs' models. The connection is not encrypted.", file=sys.stderr)
    print(f"minitx serve: open {url}", flush=True)
    print("(Ctrl-C stops the server)", file=sys.stderr)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    if open_browser:
        import webbrowser

        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    with stopping_quietly():
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()
    print("minitx serve: stopped", file=sys.stderr)


@contextmanager
def stopping_quietly() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM only ask to stop (exit status 0, no traceback).

    uvicorn catches both while it serves, shuts down, then puts the previous handlers back and raises
    the signal again "to trigger the expected behaviour": without this, Ctrl-C would end in a
    KeyboardInterrupt and SIGTERM in death by signal. Outside the main thread (tests) nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
