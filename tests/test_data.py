"""Reading corpus files refuses mistakes with one-line UserErrors; the tiny Shakespeare download
is checked against a local HTTP server (127.0.0.1, an ephemeral port), never the internet."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from functools import partial
from pathlib import Path

import pytest

from minitx.errors import UserError
from minitx.text.files import TINYSHAKESPEARE_SHA256, download_tinyshakespeare, read_corpus


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def user_error(call) -> str:
    """The message of the UserError that `call()` raises; it must be a single line."""
    with pytest.raises(UserError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    return message


# -- read_corpus -----------------------------------------------------------------------------------
def test_files_are_joined_with_a_newline_only_where_one_is_missing(tmp_path):
    a = write(tmp_path / "a.txt", b"one")
    b = write(tmp_path / "b.txt", "two \xe9\n".encode())
    c = write(tmp_path / "c.txt", b"three\n")
    assert read_corpus([a, b, c]) == "one\ntwo \xe9\nthree\n"
    assert read_corpus([a]) == "one"


def test_a_byte_order_mark_is_dropped(tmp_path):
    assert read_corpus([write(tmp_path / "bom.txt", b"\xef\xbb\xbfhello\n")]) == "hello\n"


def test_missing_file_is_named(tmp_path):
    message = user_error(lambda: read_corpus([tmp_path / "nope.txt"]))
    assert "not found" in message and "nope.txt" in message


def test_directory_is_refused(tmp_path):
    message = user_error(lambda: read_corpus([tmp_path]))
    assert "is a directory" in message and str(tmp_path) in message


@pytest.mark.parametrize("content", [b"", b"  \n\t\n"])
def test_empty_or_blank_file_is_refused(tmp_path, content):
    path = write(tmp_path / "empty.txt", content)
    message = user_error(lambda: read_corpus([path]))
    assert "empty" in message and "empty.txt" in message


@pytest.mark.parametrize("content", [b"text\x00with a NUL", bytes(range(1, 32)) * 20])
def test_binary_file_is_refused(tmp_path, content):
    path = write(tmp_path / "model.bin", content)
    message = user_error(lambda: read_corpus([path]))
    assert "binary" in message and "model.bin" in message


def test_invalid_utf8_names_the_byte_offset(tmp_path):
    path = write(tmp_path / "latin1.txt", "café au lait".encode("latin-1"))
    message = user_error(lambda: read_corpus([path]))
    assert "not valid UTF-8" in message and "offset 3" in message and "0xe9" in message


def test_no_files_at_all_is_refused():
    assert "no corpus file" in user_error(lambda: read_corpus([]))


# -- download --------------------------------------------------------------------------------------
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep test output clean
        pass


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/"www" on 127.0.0.1 at an ephemeral port; yields (www_dir, base_url)."""
    www = tmp_path / "www"
    www.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_download_saves_the_file_when_the_checksum_matches(server, tmp_path):
    www, base = server
    body = b"First Citizen:\nBefore we proceed any further, hear me speak.\n" * 100
    (www / "input.txt").write_bytes(body)
    out = tmp_path / "data" / "shakespeare.txt"
    sha = hashlib.sha256(body).hexdigest()
    assert download_tinyshakespeare(out, url=f"{base}/input.txt", sha256=sha, timeout=5) == out
    assert out.read_bytes() == body
    assert sorted(p.name for p in out.parent.iterdir()) == ["shakespeare.txt"]  # no temp file left


def test_download_with_a_progress_bar_gives_the_same_bytes(server, tmp_path):
    www, base = server
    body = b"x" * 200_000
    (www / "input.txt").write_bytes(body)
    out = tmp_path / "out.txt"
    download_tinyshakespeare(out, url=f"{base}/input.txt", sha256=hashlib.sha256(body).hexdigest(),
                             timeout=5, progress=True)
    assert out.read_bytes() == body


def test_wrong_checksum_leaves_no_file_behind(server, tmp_path):
    www, base = server
    (www / "input.txt").write_bytes(b"not Shakespeare at all\n")
    out_dir = tmp_path / "data"
    out_dir.mkdir()
    message = user_error(lambda: download_tinyshakespeare(out_dir / "s.txt", url=f"{base}/input.txt", timeout=5))
    assert TINYSHAKESPEARE_SHA256 in message
    assert hashlib.sha256(b"not Shakespeare at all\n").hexdigest() in message
    assert list(out_dir.iterdir()) == []  # neither the target nor a temporary file


def test_http_error_names_the_url_and_the_manual_route(server, tmp_path):
    _, base = server
    url = f"{base}/missing.txt"
    out = tmp_path / "s.txt"
    message = user_error(lambda: download_tinyshakespeare(out, url=url, timeout=5))
    assert url in message and "404" in message and f"save it as {out}" in message
    assert not out.exists()


def test_unreachable_server_names_the_url(tmp_path):
    with socket.socket() as probe:  # find a port nobody listens on: bind, note it, close
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/input.txt"
    out = tmp_path / "s.txt"
    message = user_error(lambda: download_tinyshakespeare(out, url=url, timeout=5))
    assert message.startswith(f"could not download {url} (") and "by hand" in message
    assert not out.exists()


def test_existing_file_is_not_overwritten_without_force(server, tmp_path):
    www, base = server
    body = b"new text\n"
    (www / "input.txt").write_bytes(body)
    out = write(tmp_path / "s.txt", b"my own notes\n")
    sha = hashlib.sha256(body).hexdigest()
    message = user_error(lambda: download_tinyshakespeare(out, url=f"{base}/input.txt", sha256=sha, timeout=5))
    assert "already exists" in message and "--force" in message
    assert out.read_bytes() == b"my own notes\n"
    download_tinyshakespeare(out, url=f"{base}/input.txt", sha256=sha, force=True, timeout=5)
    assert out.read_bytes() == body


def test_the_command_downloads_char_rnns_file_over_https_and_checks_its_known_sha256(tmp_path, monkeypatch):
    """`minitx data tinyshakespeare` with no options: which address is asked, which checksum is demanded."""
    from typer.testing import CliRunner

    from minitx.cli import app
    from minitx.text import files

    asked = []

    def fetch(url, out, timeout, progress):
        asked.append(url)
        return b"a different text\n"

    monkeypatch.setattr(files, "_fetch", fetch)
    result = CliRunner().invoke(app, ["data", "tinyshakespeare", "--out", str(tmp_path / "s.txt")])
    assert asked == ["https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"]
    assert result.exit_code == 2 and "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed" in result.stderr
    assert not (tmp_path / "s.txt").exists()


def test_files_stdin_and_tokenizer_files_are_read_by_one_reader(tmp_path, monkeypatch):
    """A byte-order mark is dropped, "\\r\\n" kept, and bad UTF-8 named with its offset, wherever text comes in."""
    import io
    import sys

    from minitx.text.files import read_stdin
    from minitx.text.tokenizer import Tokenizer

    raw = "\ufeffThe dog runs.\r\nA cat sits.\r\n".encode()
    path = tmp_path / "a.txt"
    path.write_bytes(raw)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    assert read_corpus([path]) == read_stdin() == "The dog runs.\r\nA cat sits.\r\n"
    from_file = Tokenizer.train_bpe(files=[path], vocab_size=300, show_progress=False)
    from_text = Tokenizer.train_bpe(["The dog runs.\r\nA cat sits.\r\n"], vocab_size=300, show_progress=False)
    assert from_file.to_json_str() == from_text.to_json_str()
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9 au lait")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"caf\xe9 au lait")))
    for read in (lambda: read_corpus([bad]), read_stdin,
                 lambda: Tokenizer.train_bpe(files=[bad], vocab_size=300, show_progress=False)):
        with pytest.raises(UserError, match="not valid UTF-8 \\(byte 0xe9 at offset 3\\)"):
            read()
