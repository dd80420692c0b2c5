"""`minitx serve`: every endpoint of the explorer's app, and its guard (token, Host, body size, errors).

Through Starlette's TestClient (httpx) on a small random decoder-only run with a BPE tokenizer (so the
agreement pairs' verbs are one token and can be patched) and a 3-step encoder-decoder; the load test
and the command's own socket through a real uvicorn on 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from starlette.testclient import TestClient  # noqa: E402

from helpers import random_model, train_pair_run  # noqa: E402
from minitx.serve.app import MAX_BODY_BYTES, create_app, split_host  # noqa: E402
from minitx.serve.session import MAX_TEXT_CHARS, load_sessions  # noqa: E402

TOKEN = "test-token-abc"
PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"
PROMPT = "The dog that the cats chase"
SENTENCE = "The big dog sees the red ball."


@pytest.fixture(scope="module")
def story_run(tmp_path_factory):
    """A random 2-layer model with a BPE tokenizer of the built-in stories, saved as a run directory."""
    from minitx import rundir
    from minitx.config import TrainConfig
    from minitx.corpus.generate import generate_corpus
    from minitx.text.tokenizer import Tokenizer

    path = tmp_path_factory.mktemp("story")
    corpus = path / "corpus.txt"
    corpus.write_text(generate_corpus(150_000, seed=0), encoding="utf-8")
    tokenizer = Tokenizer.train_bpe([corpus.read_text(encoding="utf-8")], vocab_size=700, show_progress=False)
    model = random_model(vocab_size=tokenizer.vocab_size, block_size=48, n_heads=2)
    run = path / "run"
    rundir.save_config(run, model.config, TrainConfig(corpus_files=[str(corpus)]))
    rundir.save_weights(run, model)
    tokenizer.save(run / rundir.TOKENIZER)
    return run


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory):
    return train_pair_run(tmp_path_factory.mktemp("pair") / "run")


@pytest.fixture(scope="module")
def sessions(story_run, pair_run):
    return load_sessions([story_run, pair_run])


@pytest.fixture(scope="module")
def app(sessions):
    return create_app(sessions, token=TOKEN, port=PORT)


@pytest.fixture
def client(app):
    """A client that has opened the printed URL: it holds the token cookie."""
    with TestClient(app, base_url=BASE) as client:
        assert client.get(f"/?token={TOKEN}").status_code == 200
        yield client


@pytest.fixture
def stranger(app):
    """A client without the token."""
    with TestClient(app, base_url=BASE) as client:
        yield client


def view(client, text: str = PROMPT, **fields):
    return client.post("/api/runs/0/view", json={"text": text, **fields})


# ---------------------------------------------------------------------------------------------- endpoints


def test_the_page_sets_an_httponly_cookie_and_loads_only_its_own_files(stranger) -> None:
    page = stranger.get(f"/?token={TOKEN}")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    cookie = page.headers["set-cookie"]
    assert TOKEN in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "<script>" not in page.text and 'src="static/app.js"' in page.text  # no inline script, no CDN
    assert "http" not in page.text.replace('charset="utf-8"', "")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    for name, kind in (("app.js", "javascript"), ("style.css", "css")):
        answer = stranger.get(f"/static/{name}")  # the cookie from the page's answer is sent now
        assert answer.status_code == 200 and kind in answer.headers["content-type"]
    assert "innerHTML" not in stranger.get("/static/app.js").text
    for other in ("../session.py", "index.html", "%2e%2e%2fapp.py"):
        assert stranger.get(f"/static/{other}").status_code == 404


def test_runs_are_named_by_index_with_their_shapes(client, story_run, pair_run) -> None:
    runs = client.get("/api/runs").json()["runs"]
    assert [r["index"] for r in runs] == [0, 1]
    assert [r["arch"] for r in runs] == ["gpt", "encoder-decoder"]
    assert runs[0]["phenomena"] == ["agreement_local", "agreement_far"] and runs[1]["phenomena"] == ["noun", "gender"]
    assert [r["name"] for r in runs] == [f"{story_run.parent.name}/run", f"{pair_run.parent.name}/run"]
    assert str(story_run.parent) not in json.dumps(runs)  # no path leaves the server


def test_the_view_has_tokens_distribution_attention_and_lens(client, sessions) -> None:
    answer = view(client, temperature=1.0).json()
    n = len(answer["tokens"])
    assert answer["tokens"][0] == "<|doc|>" and "".join(answer["tokens"][1:]) == PROMPT
    config = sessions[0].config
    assert answer["attention"]["shape"] == [config.n_layers, config.n_heads, n, n]
    import base64

    assert len(base64.b64decode(answer["attention"]["u8"])) == config.n_layers * config.n_heads * n * n
    assert len(answer["roles"]) == config.n_layers * config.n_heads
    top = answer["next"]["top"]
    assert len(top) == 10 and all(a["p"] >= b["p"] for a, b in zip(top, top[1:], strict=False))
    assert all(abs(t["p"] - t["p_raw"]) < 1e-4 for t in top)  # temperature 1, no filter: the model's own
    lens = answer["lens"]
    assert lens["points"] == ["embed", "block 0", "block 1"] and len(lens["top"][0]) == n
    assert lens["target_p"][0][-1] is None  # nothing follows the last token


def test_controls_shape_the_distribution(client) -> None:
    greedy = view(client, temperature=0).json()["next"]["top"]
    assert len(greedy) == 1 and greedy[0]["p"] == 1.0
    top3 = view(client, temperature=0.7, top_k=3).json()["next"]["top"]
    assert len(top3) == 3 and abs(sum(t["p"] for t in top3) - 1) < 1e-3
    nucleus = view(client, top_p=0.05).json()["next"]["top"]  # the few best tokens holding 5%, renormalised
    scale = [t["p"] / t["p_raw"] for t in nucleus]
    assert min(scale) > 5 and max(scale) - min(scale) < 0.01 * max(scale)


def test_ablating_a_head_moves_the_next_token_distribution(client) -> None:
    intact = view(client).json()["next"]
    ablated = view(client, ablate=[["blocks.0.attn", 1]]).json()
    assert ablated["ablated"] == [["blocks.0.attn", 1]]
    moved = ablated["next"]
    assert moved["total_variation"] > 1e-3
    assert all("p_intact" in t for t in moved["top"])
    p_before = {t["id"]: t["p"] for t in intact["top"]}
    assert any(abs(t["p_intact"] - p_before[t["id"]]) < 1e-4 for t in moved["top"] if t["id"] in p_before)
    assert any(abs(t["p"] - t["p_intact"]) > 0.01 * t["p_intact"] for t in moved["top"])
    assert view(client).json()["next"] == intact  # the hooks are gone afterwards


def test_roles_over_data_are_measured_once_on_validation_windows(client, sessions) -> None:
    first = client.get("/api/runs/0/roles").json()
    assert first["windows"] >= 1 and "validation split" in first["note"]
    assert len(first["heads"]) == sessions[0].config.n_layers * sessions[0].config.n_heads
    assert client.get("/api/runs/0/roles").json() == first
    assert sessions[0].roles_over_data() is sessions[0].roles_over_data()  # measured once, then cached


def test_patching_a_builtin_phenomenon_gives_grids(client) -> None:
    answer = client.post("/api/runs/0/patch", json={"phenomenon": "agreement_local"})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["pairs"] >= 1 and [g["title"] for g in report["grids"]] == ["residual stream", "heads", "MLPs"]
    heads = report["grids"][1]
    assert len(heads["rows"]) == 2 and len(heads["mean"][0]) == 2
    refused = client.post("/api/runs/0/patch", json={"phenomenon": "../../etc/passwd"})
    assert refused.status_code == 400 and "agreement_local" in refused.json()["error"]


def test_sampling_streams_server_sent_events_and_a_seed_repeats_them(client) -> None:
    def sample() -> list[dict]:
        with client.stream("POST", "/api/runs/0/sample", json={"text": PROMPT, "max_new_tokens": 12, "seed": 3,
                                                                 "temperature": 1.0}) as answer:
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
            body = "".join(answer.iter_text())
        return [json.loads(frame.removeprefix("data: ")) for frame in body.split("\n\n") if frame]

    events = sample()
    assert events[-1] == {"done": True} and all("piece" in e for e in events[:-1])
    assert events == sample()
    too_many = client.post("/api/runs/0/sample", json={"text": PROMPT, "max_new_tokens": 100_000})
    assert too_many.status_code == 400 and "new tokens" in too_many.json()["error"]


def test_translation_of_a_builtin_sentence_is_scored_against_gold_links(client, sessions) -> None:
    answer = client.post("/api/runs/1/translate", json={"sentence": SENTENCE}).json()
    assert answer["reference"] == "El perro grande ve la pelota roja." and answer["read_on"] == "reference"
    assert isinstance(answer["translation"], str)
    assert answer["gold"][0] == [0, 0] and len(answer["gold"]) == 7
    config = sessions[1].config
    attention = answer["attention"]
    t, s = len(attention["written"]), len(attention["source_tokens"])
    assert attention["cross"]["shape"] == [config.n_layers, config.n_heads, t, s]
    alignment = answer["alignment"]
    assert len(alignment["heads"]) == config.n_layers * config.n_heads
    best = alignment["best"]
    assert best["aer"] == min(h["aer"] for h in alignment["heads"]) and 0 <= best["aer"] <= 1
    for sentence in ("Zebras juggle quietly", f"{SENTENCE} r", f"{SENTENCE} runs"):  # typed on: not the grammar's
        other = client.post("/api/runs/1/translate", json={"sentence": sentence})
        assert other.status_code == 200, other.text
        assert other.json()["reference"] is None and "alignment" not in other.json()


def test_the_runs_list_their_attention_maps_from_the_hook_points(client) -> None:
    runs = client.get("/api/runs").json()["runs"]
    assert [(m["name"], m["kind"], m["heads"], m["ablatable"]) for m in runs[0]["maps"]] == [
        ("blocks.0.attn", "self", 2, True), ("blocks.1.attn", "self", 2, True)]
    assert [(m["name"], m["kind"], m["label"]) for m in runs[1]["maps"]] == [
        ("encoder.blocks.0.attn", "encoder", "L0"), ("decoder.blocks.0.attn", "self", "L0"),
        ("decoder.blocks.0.cross_attn", "cross", "L0")]
    assert [r["reads_source"] for r in runs] == [False, True] and all(r["lens"] for r in runs)


def test_switching_heads_off_in_a_translation_changes_what_the_decoder_reads(client, sessions) -> None:
    """Self- and cross-attention heads of the decoder, through their hook_z points; the lens of the decoder's
    stream given the source; the intact translation and probabilities beside; nothing left on the model."""
    def translate(**fields):
        answer = client.post("/api/runs/1/translate", json={"sentence": SENTENCE, **fields})
        assert answer.status_code == 200, answer.text
        return answer.json()

    intact = translate()
    assert "translation_intact" not in intact and "written_p_intact" not in intact
    n = len(intact["attention"]["written"])
    lens = intact["lens"]
    assert lens["points"] == ["embed", "block 0"] and len(lens["top"][0]) == n
    assert lens["target_p"][-1] == pytest.approx(intact["written_p"], abs=1e-3)  # the last point is the model's
    groups = intact["attention"]["groups"]
    assert {kind: g["maps"] for kind, g in groups.items()} == {
        "cross": ["decoder.blocks.0.cross_attn"], "self": ["decoder.blocks.0.attn"],
        "encoder": ["encoder.blocks.0.attn"]}
    assert groups["self"]["weights"]["shape"] == [1, 2, n, n]
    for heads in ([["decoder.blocks.0.cross_attn", 0], ["decoder.blocks.0.cross_attn", 1]],
                  [["decoder.blocks.0.attn", 1]]):
        off = translate(ablate=heads)
        assert off["ablated"] == heads and off["translation_intact"] == intact["translation"]
        assert off["written_p_intact"] == intact["written_p"]
        assert max(abs(a - b) for a, b in zip(off["written_p"], intact["written_p"], strict=True)) > 1e-4
        assert off["lens"]["target_p"] != intact["lens"]["target_p"]
    both_cross = translate(ablate=[["decoder.blocks.0.cross_attn", 0], ["decoder.blocks.0.cross_attn", 1]])
    assert both_cross["attention"]["cross"] == intact["attention"]["cross"]  # α is read before the heads' outputs
    assert translate() == intact  # the hooks are gone afterwards
    refused = client.post("/api/runs/1/translate", json={"sentence": SENTENCE, "ablate": [["blocks.0.attn", 0]]})
    assert refused.status_code == 400 and "decoder.blocks.0.cross_attn" in refused.json()["error"]


def test_a_head_off_stays_off_for_every_sampled_token(client, sessions) -> None:
    """Greedy sampling with a head off is greedy decoding of the hooked full forward, token by token (the flat
    decode step has no hook points, so the session must not use it)."""
    import torch

    from minitx.serve.session import zero_heads

    session = sessions[0]

    def greedy(hooks) -> str:
        ids = session._ids(PROMPT)[0]
        with torch.no_grad():
            for _ in range(8):
                logits = session.model.run_with_hooks(torch.tensor([ids]), fwd_hooks=hooks)
                ids.append(int(logits[0, -1].argmax()))
        return session.tokenizer.decode(ids[-8:]).split("<|doc|>")[0]

    expected = greedy([("blocks.0.attn.hook_z", zero_heads([0, 1])), ("blocks.1.attn.hook_z", zero_heads([1]))])
    assert expected != greedy([])  # the heads matter to this model: the test can tell
    ablate = [["blocks.0.attn", 0], ["blocks.0.attn", 1], ["blocks.1.attn", 1]]
    with client.stream("POST", "/api/runs/0/sample", json={"text": PROMPT, "max_new_tokens": 8, "temperature": 0,
                                                           "ablate": ablate}) as answer:
        frames = [json.loads(f.removeprefix("data: ")) for f in "".join(answer.iter_text()).split("\n\n") if f]
    assert frames[-1] == {"done": True}
    assert "".join(f["piece"] for f in frames[:-1]) == expected


def test_a_run_is_asked_only_what_its_architecture_does(client) -> None:
    wrong = client.post("/api/runs/1/view", json={"text": PROMPT})
    assert wrong.status_code == 400 and "encoder-decoder" in wrong.json()["error"]
    assert client.post("/api/runs/0/translate", json={"sentence": SENTENCE}).status_code == 400
    missing = client.post("/api/runs/7/view", json={"text": PROMPT})
    assert missing.status_code == 404 and "runs 0..1" in missing.json()["error"]


# ---------------------------------------------------------------------------------------------- the guard


@pytest.mark.parametrize("method, path", [("GET", "/"), ("GET", "/static/app.js"), ("GET", "/api/runs"),
                                          ("POST", "/api/runs/0/view"), ("GET", "/api/runs/0/roles"),
                                          ("POST", "/api/runs/0/patch"), ("POST", "/api/runs/0/sample"),
                                          ("POST", "/api/runs/1/translate"), ("GET", "/nowhere")])
def test_every_path_needs_the_token(stranger, method, path) -> None:
    answer = stranger.request(method, path, json={"text": PROMPT} if method == "POST" else None)
    assert answer.status_code == 403 and "token" in answer.json()["error"]
    wrong = stranger.request(method, path + "?token=not-the-token")
    assert wrong.status_code == 403
    stranger.cookies.set(f"minitx-token-{PORT}", "nope")
    assert stranger.request(method, path).status_code == 403


def test_the_token_works_in_the_query_or_the_cookie(stranger) -> None:
    assert stranger.get(f"/api/runs?token={TOKEN}").status_code == 200
    stranger.cookies.set("minitx-token-9999", TOKEN)  # another server's cookie
    assert stranger.get("/api/runs").status_code == 403
    stranger.cookies.set(f"minitx-token-{PORT}", TOKEN)
    assert stranger.get("/api/runs").status_code == 200


@pytest.mark.parametrize("host", ["evil.example", f"evil.example:{PORT}", "127.0.0.1:9999", f"127.0.0.1.nip.io:{PORT}",
                                  ""])
def test_a_foreign_host_header_is_refused(client, host) -> None:
    answer = client.get(f"/api/runs?token={TOKEN}", headers={"host": host})
    assert answer.status_code == 403 and "Host" in answer.json()["error"]


@pytest.mark.parametrize("host", [f"localhost:{PORT}", f"[::1]:{PORT}", f"LOCALHOST:{PORT}"])
def test_loopback_names_are_the_same_server(client, host) -> None:
    assert client.get(f"/api/runs?token={TOKEN}", headers={"host": host}).status_code == 200


def test_a_1_mb_body_is_refused_with_a_message(client) -> None:
    big = json.dumps({"text": "a" * 1_000_000})
    answer = client.post("/api/runs/0/view", content=big, headers={"content-type": "application/json"})
    assert answer.status_code == 413 and "KB" in answer.json()["error"]

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(20):
            yield b"a" * 65_536

    chunked = client.post("/api/runs/0/view", content=chunks(), headers={"content-type": "application/json"})
    assert chunked.status_code == 413 and chunked.json()["error"].startswith("the request is larger")
    assert MAX_BODY_BYTES < 1_000_000


def test_a_prompt_past_the_limit_gets_a_clear_message(client) -> None:
    answer = view(client, "a" * (MAX_TEXT_CHARS + 1))
    assert answer.status_code == 400
    assert answer.json() == {"error": f"the text is {MAX_TEXT_CHARS + 1} characters; the explorer reads at most "
                                      f"{MAX_TEXT_CHARS}"}


def test_markup_in_a_prompt_comes_back_as_data(client) -> None:
    text = '<script>alert("x")</script>'
    answer = view(client, text)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert "".join(answer.json()["tokens"][1:]) == text  # the same characters, as JSON strings, to be set as text
    longer = view(client, "<img src=x onerror=alert(1)> " * 10).json()  # past the block: its last 48 tokens
    assert longer["cut"] and len(longer["tokens"]) == 48 and "".join(longer["tokens"]).endswith("alert(1)> ")
    assert answer.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("body, message", [
    ({"text": 5}, "text must be a string"),
    ({"text": "a", "temperature": "hot"}, "temperature must be a number"),
    ({"text": "a", "temperature": -1}, "--temperature must be 0"),
    ({"text": "a", "top_k": 2.5}, "top_k must be a whole number"),
    ({"text": "a", "ablate": [["blocks.9.attn", 0]]}, "has no attention 'blocks.9.attn'"),
    ({"text": "a", "ablate": [["blocks.0.attn", 2]]}, "blocks.0.attn has heads 0..1; there is no head 2"),
    ({"text": "a", "ablate": [[0, 1]]}, "each head to switch off is [attention map, head]"),
    ({"text": "a", "ablate": "all"}, "ablate must be a list"),
    ([1, 2], "must be a JSON object"),
])
def test_mistakes_are_one_line_400s(client, body, message) -> None:
    answer = client.post("/api/runs/0/view", json=body)
    assert answer.status_code == 400 and message in answer.json()["error"]
    assert "Traceback" not in answer.text


def test_a_body_that_is_not_json_is_refused(client) -> None:
    answer = client.post("/api/runs/0/view", content=b"text=hello", headers={"content-type": "text/plain"})
    assert answer.status_code == 400 and "JSON" in answer.json()["error"]
    broken = client.post("/api/runs/0/view", content=b"{", headers={"content-type": "application/json"})
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]


def test_a_failure_is_a_fixed_message_and_a_log_line_never_a_traceback(app, sessions, monkeypatch, caplog) -> None:
    def explode(*args, **kwargs):
        raise RuntimeError("secret internal detail /home/user/runs")

    monkeypatch.setattr(sessions[0], "view", explode)
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as client, \
            caplog.at_level(logging.ERROR, logger="minitx.serve"):
        answer = client.post(f"/api/runs/0/view?token={TOKEN}", json={"text": "a"})
    assert answer.status_code == 500
    assert answer.json() == {"error": "the server failed on this request (its log has the details)"}
    assert "secret" not in answer.text
    assert any("secret internal detail" in (r.exc_text or "") or r.exc_info for r in caplog.records)


def test_concurrent_requests_give_the_answers_of_serial_requests(client) -> None:
    """Ablation hooks and captured weights live on the one model: the lock keeps requests apart."""
    asks = [{"text": PROMPT, "ablate": [[f"blocks.{layer}.attn", head]] if layer >= 0 else []}
            for layer, head in [(-1, 0), (0, 0), (0, 1), (1, 0), (1, 1)]] * 4
    serial = [view(client, **ask).json()["next"] for ask in asks]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda ask: view(client, **ask).json()["next"], asks))
    assert together == serial


def test_split_host() -> None:
    assert split_host("127.0.0.1:80") == ("127.0.0.1", 80)
    assert split_host("[::1]") == ("::1", None)
    assert split_host("Localhost:x") == ("localhost", None)


# ---------------------------------------------------------------------------------------------- a real server


@pytest.fixture
def live(sessions):
    """The app on a real uvicorn, on a free port of 127.0.0.1, in a thread."""
    import uvicorn

    from minitx.commands.serve import bind

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(sessions, token=TOKEN, port=port), log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def test_a_small_load_test_on_loopback_has_no_failures(live) -> None:
    """40 view requests from 8 concurrent clients (bench/bench_serve.py runs 200)."""
    spec = importlib.util.spec_from_file_location("bench_serve", Path(__file__).parents[1] / "bench" / "bench_serve.py")
    bench_serve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_serve)
    result = bench_serve.load_test(live, TOKEN, requests=40, clients=8, text=PROMPT)
    assert result["failures"] == 0 and result["requests"] == 40
    assert 0 < result["p50_ms"] <= result["p95_ms"]


def test_the_command_prints_the_url_with_a_token_and_warns_off_loopback(story_run, monkeypatch, capsys) -> None:
    import uvicorn

    from minitx.commands.serve import run_serve

    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets: None)  # serve nothing, return at once
    run_serve([story_run], threads=1)
    out, err = capsys.readouterr()
    url = out.strip().split()[-1]
    assert url.startswith("http://127.0.0.1:") and "?token=" in url and len(url.split("token=")[1]) >= 32
    assert "warning" not in err and "run 0: run: gpt" in err
    run_serve([story_run], host="0.0.0.0", threads=1)
    assert "is not loopback" in capsys.readouterr().err


def test_the_command_refuses_bad_flags_in_one_line(story_run, tmp_path) -> None:
    from minitx.commands.serve import run_serve
    from minitx.errors import UserError

    with pytest.raises(UserError, match="at most 4 runs"):
        run_serve([story_run] * 5)
    with pytest.raises(UserError, match="--port must be"):
        run_serve([story_run], port=70000)
    with pytest.raises(UserError):
        run_serve([tmp_path / "missing"])


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT"])
def test_the_server_process_stops_cleanly_on_a_signal(story_run, stop) -> None:
    """`minitx serve` as a process: it prints its URL, answers a request, and on SIGTERM (a service manager) or
    SIGINT (Ctrl-C) shuts down within seconds with exit status 0 and no traceback."""
    import os
    import signal
    import subprocess
    import sys

    import httpx

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen([sys.executable, "-m", "minitx", "serve", str(story_run), "--threads", "1",
                                "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env)
    try:
        line = process.stdout.readline()  # "minitx serve: open http://127.0.0.1:PORT/?token=..."
        assert line.startswith("minitx serve: open http://127.0.0.1:"), process.stderr.read()
        url = line.split()[-1]
        base, token = url.split("/?token=")
        answer = httpx.get(f"{base}/api/runs", params={"token": token}, timeout=30)
        assert answer.status_code == 200 and answer.json()["runs"][0]["arch"] == "gpt"
        asked = time.monotonic()
        process.send_signal(getattr(signal, stop))
        code = process.wait(timeout=10)
        took = time.monotonic() - asked
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    err = process.stderr.read()
    assert code == 0 and "Traceback" not in err and "minitx serve: stopped" in err
    assert took < 5


def test_an_rnn_with_attention_is_served_as_one_cross_attention_map_scored_against_gold(tmp_path) -> None:
    """The page draws whatever the run's hook points carry: RNNSearch's α is one cross-attention map."""
    from typer.testing import CliRunner

    from minitx.cli import app as cli

    out = tmp_path / "rnn"
    trained = CliRunner().invoke(cli, ["train", "--arch", "rnn-attention", "--tokenizer", "char", "--dim", "32",
                                       "--steps", "2", "--batch-size", "4", "--eval-every", "2", "--eval-batches",
                                       "1", "--threads", "1", "--quiet", "--out", str(out)])
    assert trained.exit_code == 0, trained.output
    rnn = TestClient(create_app(load_sessions([out]), token=TOKEN, port=PORT), base_url=f"http://127.0.0.1:{PORT}")
    runs = rnn.get(f"/api/runs?token={TOKEN}").json()["runs"]
    assert [(m["name"], m["kind"], m["heads"]) for m in runs[0]["maps"]] == [("decoder.cross_attn", "cross", 1)]
    answer = rnn.post(f"/api/runs/0/translate?token={TOKEN}", json={"sentence": SENTENCE}).json()
    assert answer["reference"] == "El perro grande ve la pelota roja." and len(answer["gold"]) == 7
    assert len(answer["alignment"]["heads"]) == 1 and 0 <= answer["alignment"]["best"]["aer"] <= 1
