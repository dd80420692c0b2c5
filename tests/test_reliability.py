"""Faults and hostile input: what minitx does when the disk fills, the numbers blow up, the user mistypes a
flag, text looks like rich markup, or a run directory holds a pickle. docs/reliability.md lists each
case with the test here (or elsewhere) that proves it."""

from __future__ import annotations

import errno
import json
import pickle
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minitx import rundir
from minitx.cli import app

runner = CliRunner()

TINY = ["--tokenizer", "char", "--preset", "tiny", "--layers", "1", "--heads", "2", "--dim", "16",
        "--block-size", "16", "--batch-size", "4", "--warmup", "2", "--eval-every", "5", "--eval-batches", "1",
        "--seed", "3", "--threads", "1", "--device", "cpu", "--no-compile", "--quiet"]
MARKUP = ["[/]", "[bold]", "[link=x]"]


def run(*args: object, input: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def one_line_error(result, code: int = 2, *words: str) -> str:
    """Exit `code`, exactly one line on stderr starting with `minitx: error: `, no traceback; return the line."""
    assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minitx: error: "), result.stderr
    assert "Traceback" not in result.output + result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from minitx.corpus import generate_corpus

    path = tmp_path_factory.mktemp("reliability") / "stories.txt"
    # the brackets of rich markup are in the text, so a char tokenizer of it can encode markup-like prompts
    path.write_text(generate_corpus(6000, seed=2) + "<|doc|>[/] [bold] [link=x]\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def training(tmp_path_factory, corpus):
    """A 10-step run whose directory name is itself rich markup: (run directory, what train printed)."""
    out = tmp_path_factory.mktemp("runs") / "r[bold]un[/]"
    result = run("train", corpus, "--out", out, "--steps", "10", "--save-every", "5", *TINY)
    assert result.exit_code == 0, result.output + result.stderr
    return out, result.output


@pytest.fixture(scope="module")
def trained(training) -> Path:
    return training[0]


# ---------------------------------------------------------------------------------------------
# Click's own usage errors: one line, exit 2, like every other mistake


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["train", "--steps", "abc"], ["--steps", "train --help"]),
        (["train", "--stpes", "5"], ["No such option: --stpes"]),
        (["generate"], ["Missing argument"]),
        (["trian"], ["No such command 'trian'"]),
        (["--bogus"], ["No such option: --bogus"]),
        (["tokenize", "encode", "x", "--bogus"], ["--bogus", "tokenize encode --help"]),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(args, words):
    one_line_error(run(*args), 2, *words)


def test_a_command_group_alone_still_prints_its_help():
    result = run("tokenize")
    assert "encode" in result.output and "minitx: error" not in result.output + result.stderr


# ---------------------------------------------------------------------------------------------
# Text that looks like rich markup is shown as itself


def test_markup_in_sentences_is_reported_as_text_by_data_check(tmp_path):
    text = "<|doc|>The dog [/] runs. The cat [bold] sits. A [link=x] ball is red.\n"
    result = run("data", "check", "-", input=text)
    assert result.exit_code == 1, result.output + result.stderr  # rejections found, not a crash
    assert "Traceback" not in result.output
    flat = " ".join(result.output.split())
    for tag in MARKUP:
        assert tag in flat


def test_markup_in_a_path_is_printed_as_itself(tmp_path, corpus):
    out = tmp_path / "dir[/]x" / "t[bold]ok.json"
    result = run("tokenize", "train", corpus, "--kind", "char", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output + result.stderr
    assert out.is_file()
    assert "t[bold]ok.json" in result.output.replace("\n", "")


def test_markup_in_a_run_directory_name_is_shown_by_train_info_and_eval(training):
    trained, train_output = training
    assert "r[bold]un[/]" in train_output.replace("\n", "")  # the summary's run directory and "next:" line
    assert f"minitx generate {trained}" in train_output.replace("\n", "")
    info = run("info", trained)
    assert info.exit_code == 0, info.output + info.stderr
    assert "r[bold]un[/]" in info.output
    assert "10 / 10" in info.output  # info read the run, not only printed its name
    evaluated = run("eval", trained, "--device", "cpu")
    assert evaluated.exit_code == 0, evaluated.output + evaluated.stderr
    assert "r[bold]un[/]" in evaluated.output.replace("\n", "")


def test_markup_in_a_prompt_is_generated_from_as_itself(trained):
    prompt = "The dog [/] [bold] [link=x] "
    result = run("generate", trained, "--prompt", prompt, "--max-new-tokens", "5", "--seed", "0", "--device", "cpu",
                 "--quiet")
    assert result.exit_code == 0, result.output + result.stderr
    assert result.stdout.startswith(prompt)


def test_a_token_that_is_markup_is_shown_as_itself(tmp_path, corpus):
    tok = tmp_path / "tok.json"
    assert run("tokenize", "train", corpus, "--vocab-size", "300", "--out", tok, "--quiet",
               *[f"--special={tag}" for tag in MARKUP]).exit_code == 0
    result = run("tokenize", "encode", "--tokenizer", tok, "a [/] b [bold] c [link=x] d")
    assert result.exit_code == 0, result.output + result.stderr
    for tag in MARKUP:
        assert tag in result.output


def test_markup_in_an_inspected_prompt_is_shown_as_itself(trained):
    """A char model reads "[bold]" as six tokens: each bracket must show up as a token of its own."""
    result = run("inspect-attention", trained, "--prompt", "[bold]x[/]", "--device", "cpu")
    assert result.exit_code == 0, result.output + result.stderr
    assert '"["' in result.output and '"]"' in result.output and '"/"' in result.output


# ---------------------------------------------------------------------------------------------
# No pickle: planted pickles are never opened


class _Plant:
    """Unpickling this creates the file `marker`: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_run_with_planted_pickles_is_used_by_every_command_and_no_pickle_is_ever_opened(tmp_path, trained, corpus):
    import shutil

    target = tmp_path / "run"
    shutil.copytree(trained, target)
    marker = tmp_path / "pickle-was-executed"
    payload = pickle.dumps({"state_dict": _Plant(marker)})
    pickle.loads(payload)  # the plant is live: unpickling it does create the file
    assert marker.exists()
    marker.unlink()
    checkpoint = rundir.latest_checkpoint(target)
    for place in (target, checkpoint):
        for name in ("pytorch_model.bin", "model.pt", "optimizer.pt", "training_args.bin", "model.ckpt"):
            (place / name).write_bytes(payload)

    commands = [
        ["generate", target, "--max-new-tokens", "3", "--device", "cpu", "--quiet"],
        ["eval", target, "--device", "cpu"],
        ["info", target],
        ["inspect-attention", target, "--device", "cpu"],
        ["inspect-positions", target, "--device", "cpu"],
        ["train", "--out", target, "--resume", "--steps", "12", *TINY],
    ]
    for args in commands:
        result = run(*args)
        assert result.exit_code == 0, (args, result.output, result.stderr)
        assert not marker.exists(), args


def test_the_source_never_calls_torch_load_or_pickle():
    source = Path(__file__).resolve().parents[1] / "src" / "minitx"
    for path in source.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"torch\.load\(|^\s*import pickle|^\s*from pickle|cPickle", text, re.M), path


# ---------------------------------------------------------------------------------------------
# Numerical faults


def _poison_training_loss(monkeypatch, at_call: int, how: str = "nan") -> None:
    """Make the `at_call`-th training forward pass return a NaN loss ("nan"), or a loss whose gradient is NaN."""
    import torch

    from minitx.model import GPT

    original = GPT.forward
    calls = {"n": 0}

    def forward(self, idx, targets=None, *args, **kwargs):
        logits, loss = original(self, idx, targets, *args, **kwargs)
        if self.training and loss is not None:
            calls["n"] += 1
            if calls["n"] >= at_call:
                if how == "nan":
                    loss = loss * float("nan")
                else:  # finite forward, NaN backward: d sqrt(z)/dz at z = 0 is inf, times 0
                    z = self.transformer.wte.weight.sum() * 0.0
                    loss = loss + 0.0 * torch.sqrt(z)
        return logits, loss

    monkeypatch.setattr(GPT, "forward", forward)


def test_a_nan_loss_stops_with_exit_3_naming_the_step_and_the_intact_checkpoint(tmp_path, corpus, monkeypatch):
    out = tmp_path / "run"
    _poison_training_loss(monkeypatch, at_call=7)
    result = run("train", corpus, "--out", out, "--steps", "10", "--save-every", "5", *TINY)
    line = one_line_error(result, 3, "loss became nan at step 7", "step-000005", "(step 5)")
    assert "--lr" in line
    monkeypatch.undo()
    assert [p.name for p in (out / rundir.CHECKPOINTS).iterdir()] == ["step-000005"]
    model, _ = rundir.load_model(out)  # the last good checkpoint loads, and holds only finite numbers
    assert all(p.isfinite().all() for p in model.parameters())
    resumed = run("train", "--out", out, "--resume", *TINY)  # and training can go on from it
    assert resumed.exit_code == 0, resumed.output + resumed.stderr


def test_a_nan_gradient_stops_training_and_detect_anomaly_names_the_operation(tmp_path, corpus, monkeypatch):
    _poison_training_loss(monkeypatch, at_call=3, how="nan-gradient")
    plain = run("train", corpus, "--out", tmp_path / "a", "--steps", "10", *TINY)
    one_line_error(plain, 3, "gradient norm became nan at step 3", "no checkpoint was saved yet")
    # torch reports where in the forward pass the failing operation was made as a warning (printed on
    # stderr above minitx's one line; pytest collects warnings, so the test catches it as one)
    with pytest.warns(UserWarning, match="Error detected in SqrtBackward0") as caught:
        watched = run("train", corpus, "--out", tmp_path / "b", "--steps", "10", "--detect-anomaly", *TINY)
    assert any("test_reliability.py" in str(w.message) for w in caught)  # the traceback names this file's forward
    assert watched.exit_code == 3
    last = watched.stderr.strip().splitlines()[-1]
    assert last.startswith("minitx: error: autograd's anomaly mode found a NaN") and "SqrtBackward0" in last


# ---------------------------------------------------------------------------------------------
# Disk full, read-only


def test_a_full_disk_during_a_save_is_one_line_and_the_previous_checkpoint_stays_intact(tmp_path, corpus,
                                                                                         monkeypatch):
    from minitx import fileio

    out = tmp_path / "run"
    real_write, writes = fileio.write_synced, {"n": 0}

    def write_until_full(path, data):
        writes["n"] += 1
        if writes["n"] == 5:  # the optimizer file of the second save (step 10)
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(path, data)

    monkeypatch.setattr(fileio, "write_synced", write_until_full)
    result = run("train", corpus, "--out", out, "--steps", "15", "--save-every", "5", *TINY)
    one_line_error(result, 2, "No space left on device", "step 10", "step-000005 is intact", "--resume")
    monkeypatch.undo()
    assert [p.name for p in (out / rundir.CHECKPOINTS).iterdir()] == ["step-000005"]  # no .partial left behind
    state = json.loads((out / rundir.CHECKPOINTS / "step-000005" / rundir.TRAINER_STATE).read_text())
    assert state["step"] == 5
    resumed = run("train", "--out", out, "--resume", *TINY)
    assert resumed.exit_code == 0, resumed.output + resumed.stderr
    assert rundir.checkpoint_step(rundir.latest_checkpoint(out)) == 15


def _read_only(monkeypatch, directory: Path) -> None:
    """Simulate a read-only filesystem under `directory` (chmod does not stop root, who runs CI containers)."""
    import tempfile

    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve().is_relative_to(directory.resolve()):
            raise OSError(errno.EROFS, "Read-only file system", str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def test_a_read_only_output_directory_is_one_line_before_training_starts(tmp_path, corpus, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    _read_only(monkeypatch, locked)
    one_line_error(run("train", corpus, "--out", locked / "run", "--steps", "5", *TINY), 2, "Read-only file system",
                   "--out")
    assert list(locked.iterdir()) == []


def test_resuming_a_run_on_a_read_only_disk_is_one_line_and_changes_nothing(tmp_path, trained, monkeypatch):
    import shutil

    target = tmp_path / "run"
    shutil.copytree(trained, target)
    before = {p: p.read_bytes() for p in target.rglob("*") if p.is_file()}
    _read_only(monkeypatch, target)
    one_line_error(run("train", "--out", target, "--resume", "--steps", "20", *TINY), 2, "Read-only file system")
    assert {p: p.read_bytes() for p in target.rglob("*") if p.is_file()} == before


# ---------------------------------------------------------------------------------------------
# Layouts


def test_a_run_directory_of_format_1_still_loads_and_resumes_into_format_2(tmp_path, trained):
    """Format 1 kept weights, optimizer and trainer state at the top of RUN_DIR."""
    import shutil

    target = tmp_path / "old"
    shutil.copytree(trained, target)
    checkpoint = rundir.latest_checkpoint(target)
    for name in (rundir.WEIGHTS, rundir.OPTIMIZER, rundir.TRAINER_STATE):
        shutil.move(checkpoint / name, target / name)
    shutil.rmtree(target / rundir.CHECKPOINTS)
    config = json.loads((target / rundir.CONFIG).read_text())
    config["format"] = 1
    (target / rundir.CONFIG).write_text(json.dumps(config))

    assert rundir.latest_checkpoint(target) == target
    assert run("generate", target, "--max-new-tokens", "3", "--device", "cpu", "--quiet").exit_code == 0
    assert "10 / 10" in run("info", target).output
    resumed = run("train", "--out", target, "--resume", "--steps", "15", *TINY)
    assert resumed.exit_code == 0, resumed.output + resumed.stderr
    assert [p.name for p in (target / rundir.CHECKPOINTS).iterdir()] == ["step-000015"]
    assert not (target / rundir.WEIGHTS).exists()  # the old files go once a new checkpoint is in place
    assert json.loads((target / rundir.CONFIG).read_text())["format"] == 2


def test_keep_k_keeps_the_newest_k_checkpoints(tmp_path, corpus):
    out = tmp_path / "run"
    result = run("train", corpus, "--out", out, "--steps", "10", "--save-every", "2", "--keep", "3", *TINY)
    assert result.exit_code == 0, result.output + result.stderr
    names = sorted(p.name for p in (out / rundir.CHECKPOINTS).iterdir())
    assert names == ["step-000006", "step-000008", "step-000010"]


# ---------------------------------------------------------------------------------------------
# Damaged files of a run


@pytest.mark.parametrize(
    ("damage", "command", "words"),
    [
        ("config not json", "generate", ["config.json is not valid JSON", "damaged"]),
        ("trainer state not json", "resume", ["trainer_state.json is not valid JSON", "cannot resume"]),
        ("optimizer truncated", "resume", ["optimizer.safetensors is corrupt or truncated"]),
        ("tokenizer missing", "info", ["no tokenizer.json"]),
    ],
)
def test_damaged_files_of_a_run_are_one_line_errors_that_name_the_file(tmp_path, trained, damage, command, words):
    import shutil

    target = tmp_path / "run"
    shutil.copytree(trained, target)
    checkpoint = rundir.latest_checkpoint(target)
    if damage == "config not json":
        (target / rundir.CONFIG).write_text('{"format": 2, "model": ')
    elif damage == "trainer state not json":
        (checkpoint / rundir.TRAINER_STATE).write_text("{step: 5")
    elif damage == "optimizer truncated":
        path = checkpoint / rundir.OPTIMIZER
        path.write_bytes(path.read_bytes()[:300])
    else:
        (target / rundir.TOKENIZER).unlink()
    args = {"generate": ["generate", target, "--max-new-tokens", "3", "--device", "cpu"],
            "resume": ["train", "--out", target, "--resume", "--steps", "20", *TINY],
            "info": ["info", target]}[command]
    one_line_error(run(*args), 2, *words)


def test_a_torn_or_garbled_metrics_file_is_read_around_and_resume_rewrites_it(tmp_path, trained):
    import shutil

    target = tmp_path / "run"
    shutil.copytree(trained, target)
    metrics = target / rundir.METRICS
    good = metrics.read_text()
    metrics.write_text(good + 'not json at all\n[1, 2]\n{"step": 10, "val_lo')  # garbage and a torn last line
    assert rundir.read_metrics(target) == [json.loads(line) for line in good.splitlines()]
    info = run("info", target)
    assert info.exit_code == 0 and "10 / 10" in info.output, info.output + info.stderr
    last_val = json.loads(good.splitlines()[-1])["val_loss"]
    assert f"{last_val:.4f}" in info.output  # the last good record's loss, read around the garbage
    assert run("train", "--out", target, "--resume", "--steps", "12", *TINY).exit_code == 0
    assert all(json.loads(line)["step"] in (5, 10, 12) for line in metrics.read_text().splitlines())


def test_every_test_named_in_docs_reliability_exists():
    root = Path(__file__).resolve().parents[1]
    table = (root / "docs" / "reliability.md").read_text(encoding="utf-8")
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", table)
    assert len(named) > 40
    for file, name in named:
        assert re.search(rf"^def {name}\(", (root / file).read_text(encoding="utf-8"), re.M), f"{file}::{name}"


def test_force_replaces_a_run_with_all_its_checkpoints_and_leftovers(tmp_path, corpus):
    out = tmp_path / "run"
    assert run("train", corpus, "--out", out, "--steps", "6", "--save-every", "2", "--keep", "3", *TINY).exit_code == 0
    (out / rundir.CHECKPOINTS / ".step-000008.partial").mkdir()  # what a crash would have left
    result = run("train", corpus, "--out", out, "--steps", "3", "--save-every", "3", "--force", *TINY)
    assert result.exit_code == 0, result.output + result.stderr
    assert [p.name for p in (out / rundir.CHECKPOINTS).iterdir()] == ["step-000003"]


def test_a_jsonl_text_field_that_is_not_a_string_says_so_instead_of_missing(tmp_path):
    from minitx.errors import UserError
    from minitx.tokens.sources import CorpusStream, expand_sources

    (tmp_path / "d.jsonl").write_text('{"text": "fine"}\n{"text": 5}\n')
    with pytest.raises(UserError) as caught:
        list(CorpusStream(expand_sources([tmp_path / "d.jsonl"])).blocks())
    assert str(caught.value) == (f'{tmp_path / "d.jsonl"} line 2: field "text" holds the integer 5, not text; name the '
                                 "field that holds the text with --text-field")
    (tmp_path / "e.jsonl").write_text('{"body": "x"}\n')
    with pytest.raises(UserError, match='line 1 has no text field "text"'):
        list(CorpusStream(expand_sources([tmp_path / "e.jsonl"])).blocks())


@pytest.mark.slow  # three pytest processes
def test_in_ci_a_skipped_test_or_module_fails_instead(tmp_path):
    import shutil
    import subprocess
    import sys

    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_needs_a_missing_module.py").write_text(
        'import pytest\nnot_here = pytest.importorskip("no_such_module_anywhere")\n\ndef test_x():\n    pass\n')
    (tmp_path / "test_skips_itself.py").write_text(
        'import pytest\n\ndef test_y():\n    pytest.skip("needs a browser")\n\ndef test_z():\n    pass\n')
    env = {k: v for k, v in __import__("os").environ.items() if k != "CI"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", str(tmp_path)]
    here = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert here.returncode == 0 and "1 passed, 2 skipped" in here.stdout, here.stdout + here.stderr
    ci = {**env, "CI": "true"}
    module = subprocess.run([*cmd[:-1], str(tmp_path / "test_needs_a_missing_module.py")], capture_output=True,
                            text=True, env=ci, cwd=tmp_path, timeout=120)
    assert module.returncode != 0 and "this module skipped" in module.stdout, module.stdout + module.stderr
    assert "no_such_module_anywhere" in module.stdout
    test = subprocess.run([*cmd[:-1], str(tmp_path / "test_skips_itself.py")], capture_output=True, text=True,
                          env=ci, cwd=tmp_path, timeout=120)
    assert test.returncode == 1 and "1 failed, 1 passed" in test.stdout, test.stdout + test.stderr
    assert "CI must run every test, and this one skipped: Skipped: needs a browser" in test.stdout
