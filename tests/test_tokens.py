"""Prepared token files: exactly the ids of the whole text, from any kind of source; cached; never half written."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minitx.errors import UserError
from minitx.text.files import read_corpus
from minitx.text.special import DOC_TOKEN
from minitx.text.tokenizer import Tokenizer
from minitx.tokens import cache, store
from minitx.tokens.prepare import prepare
from minitx.tokens.sources import CorpusStream, as_document, expand_sources
from minitx.tokens.vocab import train_tokenizer

STORY = (f"{DOC_TOKEN}Once upon a time, a little red ball rolled.\nIt's here — naïve café 🙂 日本語.\n"
         f"{DOC_TOKEN}The end.\r\nA new line.\r\n\r\n  indented\tand spaced  \n")
FILES = {"a.txt": STORY * 3 + "no final newline", "b.txt": "second file\n" + STORY, "c.txt": STORY * 2}


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    """Blocks of 64 bytes and pieces of 16 characters: every test crosses many block and piece boundaries."""
    monkeypatch.setattr("minitx.tokens.sources.BLOCK_BYTES", 64)
    monkeypatch.setattr("minitx.text.tokenizer._CHUNK_CHARS", 16)


@pytest.fixture(scope="module")
def bpe() -> Tokenizer:
    return Tokenizer.train_bpe([STORY * 20], vocab_size=320, show_progress=False)


def write_files(directory: Path, files: dict[str, str | bytes]) -> list[Path]:
    paths = []
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        paths.append(path)
    return paths


def prepared_ids(data_dir: Path) -> list[int]:
    data = store.open_prepared(data_dir)
    return np.concatenate([data.train, data.val]).tolist()


@pytest.mark.parametrize("kind", ["bpe", "char"])
def test_prepared_tokens_are_the_ids_of_the_whole_text_and_decode_back_to_it(tmp_path, bpe, kind):
    paths = write_files(tmp_path, FILES)
    text = read_corpus(paths)
    tok = bpe if kind == "bpe" else Tokenizer.train_char(text)
    meta = prepare(expand_sources(paths), tok, tmp_path / "data", val_fraction=0.25)
    ids = prepared_ids(tmp_path / "data")
    assert ids == tok.encode(text)
    assert tok.decode(ids) == text
    assert meta["text_bytes"] == len(text.encode("utf-8"))
    n_val = int(len(ids) * 0.25)
    assert meta["tokens"] == {"total": len(ids), "train": len(ids) - n_val, "val": n_val}


def test_two_files_give_the_tokens_of_their_concatenation(tmp_path, bpe):
    a, b = write_files(tmp_path, {"a.txt": "first file, no newline", "b.txt": STORY})
    joined = write_files(tmp_path, {"ab.txt": "first file, no newline\n" + STORY})
    prepare(expand_sources([a, b]), bpe, tmp_path / "two")
    prepare(expand_sources(joined), bpe, tmp_path / "one")
    assert prepared_ids(tmp_path / "two") == prepared_ids(tmp_path / "one")
    assert store.read_meta(tmp_path / "two")["text_sha256"] == store.read_meta(tmp_path / "one")["text_sha256"]


def test_document_starts_are_the_offsets_of_every_doc_token(tmp_path, bpe):
    paths = write_files(tmp_path, FILES)
    meta = prepare(expand_sources(paths), bpe, tmp_path / "data")
    data = store.open_prepared(tmp_path / "data")
    ids = np.array(prepared_ids(tmp_path / "data"))
    doc_id = bpe.token_id(DOC_TOKEN)
    assert data.doc_starts.tolist() == np.flatnonzero(ids == doc_id).tolist()
    assert meta["documents"]["count"] == read_corpus(paths).count(DOC_TOKEN) > 0


def test_gzip_directories_and_globs_read_the_same_text(tmp_path, bpe):
    write_files(tmp_path / "corpus", {"1.txt": FILES["a.txt"], "sub/2.txt.gz": gzip.compress(FILES["b.txt"].encode()),
                                      ".hidden.txt": "never read"})
    expected = FILES["a.txt"] + "\n" + FILES["b.txt"]
    for args in ([tmp_path / "corpus"], [str(tmp_path / "corpus" / "**" / "*.txt*")]):
        out = tmp_path / f"data{len(str(args))}"
        prepare(expand_sources(args), bpe, out)
        assert bpe.decode(prepared_ids(out)) == expected
        assert prepared_ids(out) == bpe.encode(expected)


def test_json_lines_records_become_documents(tmp_path, bpe):
    records = ["Once upon a time.", f"{DOC_TOKEN}Already marked.\n", "naïve 🙂\r\nend"]
    lines = "\n".join(json.dumps({"text": r, "id": n}) for n, r in enumerate(records)) + "\n\n"
    write_files(tmp_path, {"d.jsonl": lines, "d2.jsonl.gz": gzip.compress(lines.encode())})
    expected = "".join(as_document(r) for r in records)
    assert expected.count(DOC_TOKEN) == 3 and expected.endswith("end\n")
    for name in ("d.jsonl", "d2.jsonl.gz"):
        prepare(expand_sources([tmp_path / name]), bpe, tmp_path / f"out-{name}")
        assert bpe.decode(prepared_ids(tmp_path / f"out-{name}")) == expected


def test_parquet_rows_become_documents(tmp_path, bpe):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = ["first row", "second 🙂 row\n", None, "third"]
    pq.write_table(pa.table({"body": rows, "n": [1, 2, 3, 4]}), tmp_path / "d.parquet", row_group_size=2)
    prepare(expand_sources([tmp_path / "d.parquet"]), bpe, tmp_path / "out", text_field="body")
    assert bpe.decode(prepared_ids(tmp_path / "out")) == "".join(as_document(r) for r in rows if r)
    with pytest.raises(UserError, match='no column "text".*--text-field'):
        prepare(expand_sources([tmp_path / "d.parquet"]), bpe, tmp_path / "out2")


def test_stdin_is_prepared_through_the_command_line(tmp_path, bpe):
    bpe.save(tmp_path / "tok.json")
    done = subprocess.run(
        [sys.executable, "-m", "minitx", "prepare", "-", "--tokenizer", str(tmp_path / "tok.json"),
         "--out", str(tmp_path / "data"), "--quiet"],
        input=STORY.encode(), capture_output=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert bpe.decode(prepared_ids(tmp_path / "data")) == STORY
    shown = subprocess.run([sys.executable, "-m", "minitx", "info", str(tmp_path / "data"), "--json"],
                           capture_output=True, text=True, timeout=60)
    assert json.loads(shown.stdout)["tokens"]["total"] == len(bpe.encode(STORY))


def test_a_vocabulary_over_65536_ids_is_stored_as_uint32(tmp_path):
    chars = [chr(c) for c in range(0x100, 0x100 + 68_000) if not 0xD800 <= c <= 0xDFFF]
    text = "\n".join("".join(chars[i : i + 100]) for i in range(0, len(chars), 100)) + "\n"
    (tmp_path / "wide.txt").write_text(text, encoding="utf-8")
    tok = Tokenizer.train_char(text)
    assert tok.vocab_size > 65_536
    meta = prepare(expand_sources([tmp_path / "wide.txt"]), tok, tmp_path / "data")
    assert meta["dtype"] == "uint32"
    assert store.open_prepared(tmp_path / "data").train.dtype == np.dtype("<u4")
    assert (tmp_path / "data" / "train.bin").stat().st_size == 4 * meta["tokens"]["train"]
    assert tok.decode(prepared_ids(tmp_path / "data")) == text


def test_an_interrupted_prepare_leaves_nothing_a_train_would_use(tmp_path, bpe, monkeypatch):
    paths = write_files(tmp_path, FILES)
    prepare(expand_sources(paths), bpe, tmp_path / "data")
    before = {p.name: p.read_bytes() for p in (tmp_path / "data").iterdir()}
    calls = 0

    def interrupted(self, pieces):
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        return original(self, pieces)

    original = Tokenizer.encode_pieces
    monkeypatch.setattr(Tokenizer, "encode_pieces", interrupted)
    for out, force in ((tmp_path / "fresh", False), (tmp_path / "data", True)):
        calls = 0
        with pytest.raises(KeyboardInterrupt):
            prepare(expand_sources(paths), bpe, out, force=force)
    assert not (tmp_path / "fresh").exists()
    assert {p.name: p.read_bytes() for p in (tmp_path / "data").iterdir()} == before  # the old data, untouched
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial directory left


def test_prepare_never_overwrites_other_files_or_data_without_force(tmp_path, bpe):
    paths = write_files(tmp_path, FILES)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="other files"):
        prepare(expand_sources(paths), bpe, tmp_path / "mine", force=True)
    prepare(expand_sources(paths), bpe, tmp_path / "data")
    with pytest.raises(UserError, match="--force"):
        prepare(expand_sources(paths), bpe, tmp_path / "data")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(("files", "words"), [
    ({"e.txt": "  \n"}, "empty"),
    ({"bin.txt": b"PK\x03\x04\x00\x01\x02"}, "binary"),
    ({"latin.txt": "caf\xe9 ok".encode("latin-1")}, "offset 3"),
    ({"d.jsonl": '{"body": "x"}\n'}, "--text-field"),
    ({"d.jsonl": "not json\n"}, "line 1 is not JSON"),
])
def test_unusable_sources_are_one_line_user_errors(tmp_path, bpe, files, words):
    paths = write_files(tmp_path, files)
    with pytest.raises(UserError, match=words) as caught:
        prepare(expand_sources(paths), bpe, tmp_path / "data")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "data").exists()


def test_missing_paths_and_empty_globs_are_named(tmp_path):
    with pytest.raises(UserError, match="not found: .*nope.txt"):
        expand_sources([tmp_path / "nope.txt"])
    with pytest.raises(UserError, match="matches no files"):
        expand_sources([str(tmp_path / "*.none")])


def test_the_cache_reuses_unchanged_sources_and_redoes_changed_ones(tmp_path, bpe, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    paths = write_files(tmp_path, FILES)
    bpe.save(tmp_path / "tok.json")
    sources = expand_sources(paths)

    def get(tokenizer=str(tmp_path / "tok.json")):
        return cache.prepared_corpus(sources, tokenizer=tokenizer, vocab_size=300, val_fraction=0.1)

    first = get()
    assert not first.reused and first.data.path.parent == tmp_path / "cache"
    assert get().reused
    os.utime(paths[0], ns=(1, 1))  # a new modification time, the same bytes: the sha256 says unchanged
    assert get().reused
    paths[1].write_text(FILES["b.txt"] + "more\n")
    changed = get()
    assert not changed.reused
    assert bpe.decode(np.concatenate([changed.data.train, changed.data.val]).tolist()) == read_corpus(paths)
    Tokenizer.train_bpe([STORY * 5], vocab_size=300, show_progress=False).save(tmp_path / "tok.json")
    assert not get().reused  # another tokenizer, another entry
    trained = get(tokenizer=None)  # a BPE trained on the corpus is cached with its tokens
    assert not trained.reused and get(tokenizer=None).reused
    assert trained.data.tokenizer().to_json_str() == get(tokenizer=None).data.tokenizer().to_json_str()


def test_a_tokenizer_trained_on_a_stream_is_the_one_trained_on_the_whole_text(tmp_path):
    paths = write_files(tmp_path, FILES)
    text = read_corpus(paths)
    streamed, stream = train_tokenizer(expand_sources(paths), kind="bpe", vocab_size=300)
    assert streamed.to_json_str() == Tokenizer.train_bpe([text], vocab_size=300, show_progress=False).to_json_str()
    assert stream.text_bytes == stream.sampled_bytes == len(text.encode("utf-8"))
    chars, _ = train_tokenizer(expand_sources(paths), kind="char", vocab_size=0)
    assert chars.to_json_str() == Tokenizer.train_char(text).to_json_str()


def test_max_bytes_trains_on_a_prefix_of_the_corpus(tmp_path):
    paths = write_files(tmp_path, {"a.txt": "aaa bbb\n" * 50 + "zzz qqq\n" * 50})
    sampled, stream = train_tokenizer(expand_sources(paths), kind="char", vocab_size=0, max_bytes=100)
    assert sampled.token_id("a") is not None and sampled.token_id("z") is None
    assert 100 <= stream.sampled_bytes < 150


def test_the_stream_records_each_source_for_the_cache(tmp_path):
    paths = write_files(tmp_path, FILES)
    stream = CorpusStream(expand_sources(paths))
    assert "".join(stream.blocks()) == read_corpus(paths)
    assert [r.path for r in stream.records] == [str(p.resolve()) for p in paths]
    assert [r.size for r in stream.records] == [p.stat().st_size for p in paths]


def test_a_tokenizer_trained_into_the_cache_is_found_again_by_its_contents(tmp_path, monkeypatch):
    """A resumed run, or another rank of a distributed run, holds the trained tokenizer itself, not 'bpe 300'."""
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    sources = expand_sources(write_files(tmp_path, FILES))
    trained = cache.prepared_corpus(sources, tokenizer=None, vocab_size=300, val_fraction=0.1)
    again = cache.prepared_corpus(sources, tokenizer=trained.data.tokenizer(), vocab_size=300, val_fraction=0.1)
    assert again.reused and again.data.path == trained.data.path
    assert len(list((tmp_path / "cache").iterdir())) == 1
