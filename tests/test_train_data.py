"""Training from prepared token files: the same batches as from ids in memory, the cache reused, resume exact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from minitx.cli import app
from minitx.dataset.batches import BatchSampler, split_prepared, split_train_val
from minitx.text.files import read_corpus
from minitx.text.special import DOC_TOKEN
from minitx.text.tokenizer import Tokenizer
from minitx.tokens import store
from minitx.tokens.prepare import prepare
from minitx.tokens.sources import expand_sources

runner = CliRunner()
TINY = ["--preset", "tiny", "--layers", "1", "--dim", "32", "--heads", "2", "--block-size", "16", "--batch-size", "4",
        "--eval-batches", "2", "--eval-every", "4", "--save-every", "4", "--threads", "1", "--device", "cpu"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[list[Path], Tokenizer]:
    from minitx.corpus import generate_corpus

    root = tmp_path_factory.mktemp("corpus")
    text = generate_corpus(40_000, seed=1)
    half = text.index(DOC_TOKEN, len(text) // 2)
    (root / "a.txt").write_text(text[:half], encoding="utf-8")
    (root / "b.txt").write_text(text[half:], encoding="utf-8")
    tok = Tokenizer.train_bpe([text], vocab_size=300, show_progress=False)
    tok.save(root / "tok.json")
    return [root / "a.txt", root / "b.txt"], tok


class InMemorySampler:
    """The sampler as it was before memory maps (torch tensors in memory): the reference to match."""

    def __init__(self, data: torch.Tensor, block_size: int, batch_size: int, seed: int, starts=None):
        self.data, self.starts, self.block_size, self.batch_size = data, starts, block_size, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.offsets = torch.arange(block_size + 1)

    def next(self):
        if self.starts is None:
            starts = torch.randint(len(self.data) - self.block_size, (self.batch_size,), generator=self.generator)
        else:
            starts = self.starts[torch.randint(len(self.starts), (self.batch_size,), generator=self.generator)]
        windows = self.data[starts[:, None] + self.offsets]
        return windows[:, :-1], windows[:, 1:]


def in_memory_split(ids: list[int], block: int, doc_id: int | None):
    """Train/val tensors and document starts computed the old way, from a Python list of ids."""
    data = torch.tensor(ids, dtype=torch.long)
    n_train = len(data) - int(len(data) * 0.1)

    def starts(part):
        if doc_id is None:
            return None
        found = (part[: len(part) - block] == doc_id).nonzero().flatten()
        return found if len(found) else None

    train, val = data[:n_train], data[n_train:]
    return train, val, starts(train), starts(val)


@pytest.mark.parametrize("doc_aligned", [False, True])
def test_batches_from_the_memory_map_equal_the_batches_drawn_in_memory(tmp_path, corpus, doc_aligned):
    files, tok = corpus
    prepare(expand_sources(files), tok, tmp_path / "data", val_fraction=0.1)
    mapped = split_prepared(store.open_prepared(tmp_path / "data"), block_size=16, doc_aligned=doc_aligned)
    ids = tok.encode(read_corpus(files))
    train, val, train_starts, val_starts = in_memory_split(ids, 16, tok.token_id(DOC_TOKEN) if doc_aligned else None)
    assert isinstance(mapped.train, np.memmap)
    assert (mapped.train_starts is None) == (not doc_aligned)
    for data, starts, ref_data, ref_starts in ((mapped.train, mapped.train_starts, train, train_starts),
                                              (mapped.val, mapped.val_starts, val, val_starts)):
        ours, reference = BatchSampler(data, 16, 8, seed=3, starts=starts), InMemorySampler(ref_data, 16, 8, 3,
                                                                                            ref_starts)
        for _ in range(5):
            (x, y), (rx, ry) = ours.next(), reference.next()
            assert x.dtype == torch.long and torch.equal(x, rx) and torch.equal(y, ry)
    in_memory = split_train_val(ids, 1, 16, 0.1, doc_id=tok.token_id(DOC_TOKEN))
    assert np.array_equal(in_memory.train, mapped.train) and np.array_equal(in_memory.val, mapped.val)


def test_train_on_a_data_dir_records_the_prepared_data(tmp_path, corpus):
    files, tok = corpus
    prepare(expand_sources(files), tok, tmp_path / "data", val_fraction=0.2)
    result = run("train", tmp_path / "data", "--out", tmp_path / "run", "--steps", "4", *TINY)
    assert result.exit_code == 0, result.output + result.stderr
    assert "memory-mapped" in result.output
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    meta = store.read_meta(tmp_path / "data")
    assert saved["prepared_data"] == str((tmp_path / "data").resolve())
    assert saved["corpus_sha256"] == meta["text_sha256"] and saved["val_fraction"] == 0.2
    assert (tmp_path / "run" / "tokenizer.json").read_text() == (tmp_path / "data" / "tokenizer.json").read_text()


def test_a_data_dir_refuses_another_tokenizer_or_split(tmp_path, corpus):
    files, tok = corpus
    prepare(expand_sources(files), tok, tmp_path / "data")
    for flags, words in ((["--tokenizer", "char"], "drop --tokenizer"), (["--val-fraction", "0.3"], "0.1")):
        result = run("train", tmp_path / "data", "--out", tmp_path / "run", "--steps", "2", *TINY, *flags)
        assert result.exit_code == 2 and words in result.stderr, result.stderr
        assert not (tmp_path / "run").exists()


def test_train_on_a_corpus_prepares_once_and_reuses_the_cache(tmp_path, corpus, monkeypatch):
    monkeypatch.setenv("MINITX_CACHE", str(tmp_path / "cache"))
    files, _ = corpus
    first = run("train", *files, "--tokenizer", files[0].parent / "tok.json", "--out", tmp_path / "r1", "--steps", "2",
                *TINY)
    assert first.exit_code == 0, first.output + first.stderr
    assert "preparing the corpus into the token cache" in first.output
    second = run("train", *files, "--tokenizer", files[0].parent / "tok.json", "--out", tmp_path / "r2", "--steps",
                 "2", *TINY)
    assert second.exit_code == 0 and "reusing the prepared tokens" in second.output
    configs = [json.loads((tmp_path / r / "config.json").read_text())["train"] for r in ("r1", "r2")]
    assert configs[0]["prepared_data"] == configs[1]["prepared_data"]
    assert Path(configs[0]["prepared_data"]).parent == tmp_path / "cache"
    assert configs[0]["corpus_files"] == [str(f.resolve()) for f in files]


def test_resume_from_a_data_dir_equals_an_uninterrupted_run(tmp_path, corpus):
    from safetensors.torch import load_file

    files, tok = corpus
    prepare(expand_sources(files), tok, tmp_path / "data")
    flags = [*TINY, "--doc-aligned", "--quiet"]
    assert run("train", tmp_path / "data", "--out", tmp_path / "full", "--steps", "8", *flags).exit_code == 0
    assert run("train", tmp_path / "data", "--out", tmp_path / "half", "--steps", "4", *flags).exit_code == 0
    resumed = run("train", "--out", tmp_path / "half", "--resume", "--steps", "8", "--threads", "1", "--quiet")
    assert resumed.exit_code == 0, resumed.output + resumed.stderr
    from minitx.rundir import latest_checkpoint

    a, b = (load_file(latest_checkpoint(tmp_path / run) / "model.safetensors") for run in ("full", "half"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_eval_scores_the_validation_split_of_the_prepared_data(tmp_path, corpus):
    files, tok = corpus
    prepare(expand_sources(files), tok, tmp_path / "data")
    assert run("train", tmp_path / "data", "--out", tmp_path / "run", "--steps", "2", *TINY).exit_code == 0
    result = run("eval", tmp_path / "run", "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output + result.stderr
    scored = json.loads(result.output)
    assert "validation split of" in json.dumps(scored)


def test_train_reads_json_lines_through_the_text_field(tmp_path, corpus):
    files, _ = corpus
    stories = read_corpus(files).split(DOC_TOKEN)[1:]
    lines = "".join(json.dumps({"body": story.strip()}) + "\n" for story in stories)
    (tmp_path / "stories.jsonl").write_text(lines, encoding="utf-8")
    result = run("train", tmp_path / "stories.jsonl", "--text-field", "body", "--tokenizer",
                 files[0].parent / "tok.json", "--out", tmp_path / "run", "--steps", "2", *TINY)
    assert result.exit_code == 0, result.output + result.stderr
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert saved["text_field"] == "body" and saved["corpus_bytes"] == len(read_corpus(files).encode())


def test_tokenize_train_streams_a_directory_and_stops_at_max_bytes(tmp_path, corpus):
    files, _ = corpus
    for f in files:
        (tmp_path / "corpus" / "sub").mkdir(parents=True, exist_ok=True)
        (tmp_path / "corpus" / "sub" / f.name).write_bytes(f.read_bytes())
    result = run("tokenize", "train", tmp_path / "corpus", "--kind", "char", "--max-bytes", "1000", "--out",
                 tmp_path / "tok.json", "--quiet")
    assert result.exit_code == 0, result.output + result.stderr
    assert Tokenizer.load(tmp_path / "tok.json").vocab_size < Tokenizer.train_char(read_corpus(files)).vocab_size
