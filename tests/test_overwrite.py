"""Every file a command writes follows one rule: an existing path is refused without --force, in one line
that names the flag, before any work; with --force it is replaced atomically.

Each writing option is driven twice (the second time the file must come back byte for byte), and then
once more with --force.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from minitx import rundir
from minitx.cli import app
from minitx.config import ModelConfig, TrainConfig
from minitx.model import GPT
from minitx.text.tokenizer import Tokenizer

runner = CliRunner()
TEXT = "<|doc|>Once upon a time, a small dog saw a red ball.\n" * 30


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def fingerprint(paths: list[Path]) -> dict[str, str]:
    """Every file under `paths` (files or directories) -> sha256 of its bytes."""
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*")))]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random run (no training needed to write pictures and pages of it)."""
    path = tmp_path_factory.mktemp("overwrite") / "run"
    tokenizer = Tokenizer.train_char(TEXT)
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layers=2, n_heads=2, dim=32,
                            pos="learned"))
    rundir.save_config(path, model.config, TrainConfig())
    rundir.save_weights(path, model)
    tokenizer.save(path / rundir.TOKENIZER)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("overwrite-corpus") / "stories.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


INSPECT = ["--prompt", "a small dog saw a red ball", "--device", "cpu"]
PATCH = ["--clean", "a small dog saw", "--corrupt", "a small cat saw", "--answer", "a", "r", "--device", "cpu"]

#: (id, flag named in the refusal, what the command writes given a fresh directory `d`, the command) --
#: one row per writing option of every command.
Case = tuple[str, str, Callable[[Path], list[Path]], Callable[[Path, Path, Path], list[object]]]
CASES: list[Case] = [
    ("inspect-attention --png", "--png", lambda d: [d / "a.png"],
     lambda d, r, c: ["inspect-attention", r, *INSPECT, "--png", d / "a.png"]),
    ("inspect-attention --html", "--html", lambda d: [d / "a.html"],
     lambda d, r, c: ["inspect-attention", r, *INSPECT, "--html", d / "a.html"]),
    ("inspect-attention --json", "--json", lambda d: [d / "a.json"],
     lambda d, r, c: ["inspect-attention", r, *INSPECT, "--json", d / "a.json"]),
    ("inspect-lens --png", "--png", lambda d: [d / "l.png"],
     lambda d, r, c: ["inspect-lens", r, *INSPECT, "--png", d / "l.png"]),
    ("inspect-lens --html", "--html", lambda d: [d / "l.html"],
     lambda d, r, c: ["inspect-lens", r, *INSPECT, "--html", d / "l.html"]),
    ("inspect-lens --json", "--json", lambda d: [d / "l.json"],
     lambda d, r, c: ["inspect-lens", r, *INSPECT, "--json", d / "l.json"]),
    ("inspect-patch --json", "--json", lambda d: [d / "p.json"],
     lambda d, r, c: ["inspect-patch", r, *PATCH, "--json", d / "p.json"]),
    ("inspect-patch --png", "--png", lambda d: [d / "pp.png"],
     lambda d, r, c: ["inspect-patch", r, *PATCH, "--png", d / "pp.png"]),
    ("data translation --out", "--out", lambda d: [d / "pairs.jsonl"],
     lambda d, r, c: ["data", "translation", "--pairs", "5", "--out", d / "pairs.jsonl"]),
    ("inspect-positions --png", "--png", lambda d: [d / "p.png", d / "p-by-distance.png"],
     lambda d, r, c: ["inspect-positions", r, "--device", "cpu", "--png", d / "p.png"]),
    ("tokenize train --out", "--out", lambda d: [d / "tok.json"],
     lambda d, r, c: ["tokenize", "train", c, "--kind", "char", "--out", d / "tok.json", "--quiet"]),
    ("data grammar --out", "--out", lambda d: [d / "stories.txt"],
     lambda d, r, c: ["data", "grammar", "--bytes", "2000", "--out", d / "stories.txt"]),
    ("export --out", "--out", lambda d: [d / "hf"],
     lambda d, r, c: ["export", r, "--out", d / "hf"]),
    ("prepare --out", "--out", lambda d: [d / "data"],
     lambda d, r, c: ["prepare", c, "--tokenizer", "char", "--out", d / "data", "--quiet"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_writing_option_refuses_an_existing_file_without_force_and_keeps_it(
    case: Case, run_dir: Path, corpus: Path, tmp_path: Path,
) -> None:
    if "png" in case[0]:
        pytest.importorskip("matplotlib")
    _, flag, written, command = case
    first = run(*command(tmp_path, run_dir, corpus))
    assert first.exit_code == 0, first.output + first.stderr
    before = fingerprint(written(tmp_path))
    assert before, "the command wrote nothing"

    again = run(*command(tmp_path, run_dir, corpus))
    assert again.exit_code == 2, again.output + again.stderr
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minitx: error: "), again.stderr
    assert "already" in lines[0] and "--force" in lines[0] and flag in lines[0], lines[0]
    assert "Traceback" not in again.output + again.stderr
    assert fingerprint(written(tmp_path)) == before  # nothing overwritten, nothing lost

    forced = run(*command(tmp_path, run_dir, corpus), "--force")
    assert forced.exit_code == 0, forced.output + forced.stderr
    assert fingerprint(written(tmp_path)).keys() == before.keys()
    assert not [p for p in tmp_path.rglob(".*.tmp")], "a temporary file was left behind"


def test_import_hf_refuses_an_existing_out_without_force_and_keeps_it(run_dir: Path, tmp_path: Path) -> None:
    exported = run("export", run_dir, "--out", tmp_path / "hf")
    assert exported.exit_code == 0, exported.output + exported.stderr
    first = run("import-hf", tmp_path / "hf", "--out", tmp_path / "imported")
    assert first.exit_code == 0, first.output + first.stderr
    before = fingerprint([tmp_path / "imported"])
    again = run("import-hf", tmp_path / "hf", "--out", tmp_path / "imported")
    assert again.exit_code == 2 and len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert "already exists" in again.stderr and "--force" in again.stderr
    assert fingerprint([tmp_path / "imported"]) == before
    forced = run("import-hf", tmp_path / "hf", "--out", tmp_path / "imported", "--force")
    assert forced.exit_code == 0, forced.output + forced.stderr


def test_a_refused_output_costs_no_work_even_when_another_output_is_free(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("mine\n")
    done = run("inspect-attention", run_dir, *INSPECT, "--html", tmp_path / "a.html", "--json", tmp_path / "a.json")
    assert done.exit_code == 2 and "--json" in done.stderr
    assert not (tmp_path / "a.html").exists()  # refused before anything was written
    assert (tmp_path / "a.json").read_text() == "mine\n"


def test_a_directory_where_a_file_goes_is_refused_in_one_line(run_dir: Path, tmp_path: Path) -> None:
    done = run("inspect-attention", run_dir, *INSPECT, "--html", tmp_path, "--force")
    assert done.exit_code == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "is a directory" in done.stderr and "--html" in done.stderr
