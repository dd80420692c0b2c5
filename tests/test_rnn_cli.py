"""The RNN translators end to end on the CLI: train, resume, translate, eval, the alignment map, refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minitx.training.setup import run_training

#: Tiny: built-in pairs, char tokens, 32 wide, one layer each side; a few seconds per run on one thread.
TINY = ["--tokenizer", "char", "--dim", "32", "--layers", "1", "--encoder-layers", "1", "--batch-size", "16",
        "--eval-every", "10", "--eval-batches", "1", "--threads", "1"]
ARCHS = ("rnn", "rnn-attention")


def cli(*args: object):
    from typer.testing import CliRunner

    from minitx.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(result, *words: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minitx: error: "), result.stderr
    assert all(word in lines[0] for word in words), lines[0]
    return lines[0]


@pytest.fixture(scope="module", params=ARCHS)
def rnn_run(request, tmp_path_factory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp(request.param) / "run"
    done = cli("train", "--arch", request.param, "--steps", 20, "--out", out, *TINY)
    assert done.exit_code == 0, done.output
    return request.param, out


def test_train_takes_the_architectures_preset_and_saves_a_run_that_loads_as_it(rnn_run):
    import json

    from minitx.rundir import load_model

    arch, out = rnn_run
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["model"]["arch"] == arch and config["model"]["pos"] == "none"  # the preset's, not the story's
    assert config["model"]["cell"] == "gru" and config["train"]["preset"] == f"translate-{arch}"
    model, _ = load_model(out)
    assert type(model).__name__ == {"rnn": "RNNEncoderDecoder", "rnn-attention": "RNNSearch"}[arch]


def test_translate_greedy_and_beam_and_eval_score_held_out_pairs(rnn_run):
    _, out = rnn_run
    for extra in ([], ["--beam", "3"]):
        done = cli("translate", out, "The red ball is big.", *extra)
        assert done.exit_code == 0, done.output
        assert "1 sentence in" in done.output
    done = cli("eval", out)
    assert done.exit_code == 0, done.output
    assert "exact match" in done.output and "chrF" in done.output


@pytest.mark.parametrize("command", [["generate"], ["inspect-lens", "--source", "The red ball is big."],
                                     ["inspect-patch", "--pairs", "noun"], ["export"], ["inspect-positions"]])
def test_a_decoder_only_command_on_an_rnn_run_is_one_line_naming_what_to_run(rnn_run, command, tmp_path):
    arch, out = rnn_run
    extra = ["--out", tmp_path / "hf"] if command == ["export"] else []
    line = one_line_error(cli(command[0], out, *command[1:], *extra), f"({arch}) run", "minitx translate")
    assert f"minitx {command[0]} works on" in line


def test_inspect_attention_draws_rnn_attention_and_refuses_the_fixed_vector_model(rnn_run):
    import minitx

    arch, out = rnn_run
    if arch == "rnn":
        one_line_error(cli("inspect-attention", out, "--source", "The red ball is big."), "(rnn) run",
                       "minitx inspect-attention works on")
        return
    run = minitx.load(out, device="cpu", threads=1)
    result = run.attention(source="The red ball is big.", seed=0)
    alpha = result.capture.weights["cross"]
    assert len(alpha) == 1 and alpha[0].shape[0] == 1  # one layer, one "head": α [1, T, S]
    assert alpha[0].sum(-1) == pytest.approx(1.0, abs=1e-5)  # each target step's α sums to 1 over the source
    assert result.alignment is not None and 0.0 <= result.alignment.best.aer <= 1.0  # scored against gold links
    over = run.alignment_over(5, seed=0)
    assert over.pairs == 5 and len(over.heads) == 1


def test_a_source_longer_than_the_block_is_one_line(rnn_run):
    _, out = rnn_run
    one_line_error(cli("translate", out, "The red ball is big. " * 40), "block")


@pytest.mark.parametrize("arch", ARCHS)
def test_resume_after_a_stop_equals_an_uninterrupted_run(tmp_path, arch):
    flags = {"arch": arch, "tokenizer": "char", "dim": 32, "n_layers": 1, "encoder_layers": 1, "batch_size": 16,
             "eval_every": 5, "save_every": 5, "eval_batches": 1, "threads": 1, "dropout": 0.1, "lr": 3e-3}
    whole, _ = run_training([], tmp_path / "whole", flags={**flags, "steps": 10}, show_progress=False)
    run_training([], tmp_path / "part", flags={**flags, "steps": 5}, show_progress=False)
    resumed, _ = run_training([], tmp_path / "part", flags={"steps": 10, "threads": 1}, resume=True,
                              show_progress=False)
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_cell_and_attention_flags_build_the_luong_lstm_variant(tmp_path):
    out = tmp_path / "lstm"
    done = cli("train", "--arch", "rnn-attention", "--cell", "lstm", "--attention", "dot", "--steps", 2, "--out", out,
               *TINY)
    assert done.exit_code == 0, done.output
    from minitx.rundir import load_model

    model, _ = load_model(out)
    assert isinstance(model.decoder.layers[0], torch.nn.LSTMCell) and model.decoder.cross_attn.kind == "dot"
    one_line_error(cli("train", "--arch", "rnn", "--cell", "tanh", "--out", tmp_path / "x", *TINY), "--cell")


@pytest.mark.slow
def test_two_ranks_train_an_rnn_with_attention(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "minitx", "train", "--nproc", "2", "--arch", "rnn-attention", "--steps", "6",
           "--out", str(out), *TINY]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "checkpoints").is_dir() and cli("translate", out, "The red ball is big.").exit_code == 0


def test_a_recurrent_run_records_no_mfu_rather_than_a_transformer_formula_s(rnn_run):
    import json

    _, out = rnn_run
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    timed = [r for r in records if "ms_per_step" in r]
    assert timed and all(r["mfu"] is None for r in timed)  # tests/test_mfu.py: a GPT's is a number
