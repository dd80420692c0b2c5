"""Translating: cached = uncached, greedy = beam 1, batching keeps the order, and the one-line refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from helpers import random_translator
from minitx import rundir
from minitx.errors import UserError
from minitx.generation.translate import beam_search, greedy, translate

torch.set_num_threads(1)


def run_cli(*args: str, input: str | None = None):
    from typer.testing import CliRunner

    from minitx.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], input=input)

FIXTURE_RUN = Path(__file__).parent / "fixtures" / "run-v1" / "run"  # a decoder-only run


SOURCES = [[3, 4, 5, 6], [7, 8], [9, 10, 11, 12, 13, 14], [5]]


@pytest.mark.parametrize("pos", ["learned", "rope", "alibi", "sinusoidal", "none"])
def test_cached_greedy_decoding_equals_running_the_whole_decoder_each_step(pos):
    model = random_translator(pos)
    assert greedy(model, SOURCES, boundary_id=0) == greedy(model, SOURCES, boundary_id=0, use_cache=False)


@pytest.mark.parametrize("seed", range(4))
def test_beam_of_one_is_greedy(seed):
    model = random_translator(seed=seed)
    assert beam_search(model, SOURCES, boundary_id=0, beam=1) == greedy(model, SOURCES, boundary_id=0)


def test_a_batch_translates_each_source_as_it_would_alone():
    model = random_translator()
    together = greedy(model, SOURCES, boundary_id=0)
    assert together == [greedy(model, [s], boundary_id=0)[0] for s in SOURCES]
    beams = beam_search(model, SOURCES, boundary_id=0, beam=3)
    assert beams == [beam_search(model, [s], boundary_id=0, beam=3)[0] for s in SOURCES]


def test_wider_beams_find_translations_at_least_as_likely_per_token():
    model = random_translator(seed=1)

    def mean_log_p(source, written):
        src = torch.tensor([source + [0]])
        target_in, targets = torch.tensor([[0, *written]]), torch.tensor([[*written, 0]])
        logits, _ = model(src, target_in, None)
        return torch.log_softmax(logits, -1).gather(-1, targets[..., None]).mean().item()

    for source in SOURCES:
        wide = beam_search(model, [source], boundary_id=0, beam=6)[0]
        narrow = greedy(model, [source], boundary_id=0)[0]
        if len(narrow) + 1 < model.config.block_size:  # greedy ended within the block
            assert mean_log_p(source, wide) >= mean_log_p(source, narrow) - 1e-5


@pytest.fixture(scope="module")
def copy_run(tmp_path_factory) -> Path:
    """A tiny encoder-decoder run trained briefly on a copy task (its translations need not be right)."""
    from minitx.training.setup import run_training

    tmp = tmp_path_factory.mktemp("translate")
    corpus = tmp / "copy.jsonl"
    corpus.write_text("".join(json.dumps({"source": w, "target": w}) + "\n" for w in ["ab", "ba", "abc", "cab"] * 20),
                      encoding="utf-8")
    flags = {"arch": "encoder-decoder", "tokenizer": "char", "n_layers": 1, "encoder_layers": 1, "dim": 16,
             "n_heads": 2, "block_size": 8, "steps": 3, "eval_every": 3, "eval_batches": 1, "threads": 1}
    run_training([corpus], tmp / "run", flags=flags, show_progress=False)
    return tmp / "run"


def test_translate_keeps_the_order_of_the_sentences(copy_run):
    model, run = rundir.load_model(copy_run)
    sentences = ["abc", "a", "cab", "ba", "c"]
    assert translate(model, run.tokenizer, sentences, batch_size=2) == [
        translate(model, run.tokenizer, [s])[0] for s in sentences]


def test_translate_command_prints_one_line_per_sentence_and_the_rate(copy_run):
    result = run_cli("translate", str(copy_run), "abc", "ba", "--beam", "2")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2
    assert "sentences/s" in result.stderr


def test_translate_reads_one_sentence_per_line_from_stdin(copy_run):
    result = run_cli("translate", str(copy_run), "--file", "-", "--quiet", input="abc\n\nba\n")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2 and result.stderr == ""


@pytest.mark.parametrize("args, message", [
    (["abcabcabcabc"], "sentence 1 is 12 tokens long but the model reads at most 7"),
    (["ab", "  "], "sentence 2 is empty"),
    ([], "nothing to translate"),
])
def test_bad_sentences_are_one_line_and_exit_2(copy_run, args, message):
    result = run_cli("translate", str(copy_run), *args)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_translate_refuses_a_decoder_only_run(tmp_path):
    run = shutil.copytree(FIXTURE_RUN, tmp_path / "run")
    result = run_cli("translate", str(run), "The red ball is big.")
    assert result.exit_code == 2
    assert "decoder-only (gpt) run and minitx translate works on an encoder-decoder, an RNN" in result.stderr


# `eval` and `inspect-attention` work on an encoder-decoder run (tests/test_translation_measures.py);
# these commands, and eval's decoder-only measures, refuse it
@pytest.mark.parametrize("command, message", [
    (["generate"], "minitx translate"), (["inspect-positions"], "minitx translate"),
    (["export", "--out", "EXPORTED"], "minitx translate"), (["eval", "--minimal-pairs", "5"], "decoder-only"),
])
def test_commands_for_decoder_only_runs_refuse_an_encoder_decoder_run_in_one_line(copy_run, command, message,
                                                                                   tmp_path):
    command = [str(tmp_path / "x") if part == "EXPORTED" else part for part in command]
    result = run_cli(command[0], str(copy_run), *command[1:])
    assert result.exit_code == 2, result.output
    assert "is an encoder-decoder run" in result.stderr and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_a_source_longer_than_the_block_is_a_user_error_in_the_library(copy_run):
    model, run = rundir.load_model(copy_run)
    with pytest.raises(UserError, match="shorten or split it"):
        translate(model, run.tokenizer, ["a" * 20])


# --------------------------------------------------------------------------------------------
# Issue 31: lengths and beams that cannot be, a missing --file, streaming, control characters.


@pytest.mark.parametrize("args, message", [
    (["--max-new-tokens", "0"], "--max-new-tokens must be at least 1, got 0"),
    (["--max-new-tokens", "-5"], "--max-new-tokens must be at least 1, got -5"),
    (["--beam", "100000"], "--beam 100000 is wider than the vocabulary"),
    (["--file", "nope.txt"], "--file nope.txt: no such file"),
])
def test_impossible_lengths_beams_and_a_missing_file_are_one_line(copy_run, args, message):
    sentences = [] if "--file" in args else ["ab"]
    result = run_cli("translate", str(copy_run), *sentences, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "corpus" not in result.stderr and result.stdout == ""


def test_translate_streams_each_batch_before_the_input_ends(copy_run):
    """A pipe that stays open: the first line's translation comes back before stdin is closed."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-m", "minitx", "translate", str(copy_run), "--file", "-", "--quiet",
                              "--device", "cpu", "--batch-size", "4"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        child.stdin.write(b"abc\n")
        child.stdin.flush()
        first = child.stdout.readline()  # would block forever if translate waited for the end of the input
        child.stdin.write(b"ba\n" * 9)
        child.stdin.close()
        rest = child.stdout.read().splitlines()
        assert child.wait(timeout=60) == 0, child.stderr.read()
    finally:
        child.kill()
    model, run = rundir.load_model(copy_run)
    assert first.decode().rstrip("\n") == translate(model, run.tokenizer, ["abc"])[0]
    assert len(rest) == 9 and len(set(rest)) == 1


def test_line_batches_hand_on_full_batches_and_the_rest_in_order(tmp_path):
    from minitx.text.files import line_batches

    path = tmp_path / "in.txt"
    path.write_bytes("\ufeffone\n\n two\nthree\r\nfour\nfive".encode())
    assert list(line_batches(path, 2)) == [["one", " two"], ["three", "four"], ["five"]]
    path.write_bytes(b"ok\n\xff\n")
    with pytest.raises(UserError, match="line 2 is not valid UTF-8"):
        list(line_batches(path, 2))


def test_translations_with_control_characters_are_printed_escaped(copy_run, monkeypatch):
    """A translation that holds ESC is shown as `\\x1b`, never sent to the terminal."""
    import minitx.generation.translate as library

    original = library.translate_batches

    def hostile(*args, **kwargs):
        for lines in original(*args, **kwargs):
            yield ["\x1b[31m" + line + "\u202e\x9b" for line in lines]

    monkeypatch.setattr(library, "translate_batches", hostile)
    result = run_cli("translate", str(copy_run), "ab", "--quiet")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout and "\x9b" not in result.stdout
    assert result.stdout.startswith("\\x1b[31m") and result.stdout.rstrip("\n").endswith("\\u202e\\x9b")
