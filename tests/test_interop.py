"""To and from Hugging Face transformers: the same numbers on both sides, and never a pickle.

Every model here is small and random, built offline; transformers runs with HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from minitx import rundir
from minitx.cli import app
from minitx.config import ModelConfig, TrainConfig
from minitx.model import GPT
from minitx.text.tokenizer import Tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

runner = CliRunner()
HOSTILE = "  two  spaces\tand\ttabs\r\nCRLF line\r\n🙂 emoji 🦜, accents: déjà vu <|doc|>a new doc\n\n trailing  "
BLOCK = 32

#: (test id, pos, ModelConfig overrides): every exportable kind, with and without biases / tying.
KINDS = [
    ("learned", "learned", {}),
    ("learned-nobias-tanh-untied", "learned", {"bias": False, "activation": "gelu_tanh", "tie_embeddings": False}),
    ("sinusoidal", "sinusoidal", {}),
    ("sinusoidal-untied-nobias", "sinusoidal", {"tie_embeddings": False, "bias": False}),
    ("none", "none", {}),
    ("rope", "rope", {"n_heads": 4}),
    ("rope-nobias-untied-tanh", "rope", {"bias": False, "tie_embeddings": False, "activation": "gelu_tanh"}),
    ("alibi-nobias-6-heads", "alibi", {"bias": False, "n_heads": 6, "dim": 48}),
]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, *words: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minitx: error: "), result.stderr
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], lines[0]


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Weights and biases N(0, 0.1), LayerNorm gains N(1, 0.1): no parameter sits at a value that hides a mistake."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            is_gain = p.dim() == 1 and name.endswith("weight")
            p.copy_(torch.randn(p.shape, generator=generator) * 0.1 + (1.0 if is_gain else 0.0))


@pytest.fixture(scope="module")
def tokenizers_by_kind() -> dict[str, Tokenizer]:
    text = "Once upon a time, a small dog saw a red ball.\n" * 20 + HOSTILE
    return {
        "char": Tokenizer.train_char("<|doc|>" + text + "abcdefghijklmnopqrstuvwxyz"),
        "bpe": Tokenizer.train_bpe([text], vocab_size=300, show_progress=False),
    }


def make_run(path: Path, tokenizer: Tokenizer, pos: str, seed: int = 0, **overrides) -> Path:
    settings = {"block_size": BLOCK, "n_layers": 2, "n_heads": 2, "dim": 32, **overrides}
    model = GPT(ModelConfig(vocab_size=tokenizer.vocab_size, pos=pos, **settings))
    randomize(model, seed)
    rundir.save_config(path, model.config, TrainConfig())
    rundir.save_weights(path, model)
    tokenizer.save(path / rundir.TOKENIZER)
    return path


def random_ids(vocab_size: int, batch: int = 2, length: int = BLOCK) -> torch.Tensor:
    return torch.randint(0, vocab_size, (batch, length), generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module", params=KINDS, ids=[k[0] for k in KINDS])
def exported(request, tmp_path_factory, tokenizers_by_kind):
    """(run dir, export dir) for one kind, exported through the command line."""
    _, pos, overrides = request.param
    base = tmp_path_factory.mktemp(request.param[0])
    run_dir = make_run(base / "run", tokenizers_by_kind["char"], pos, **overrides)
    result = run("export", run_dir, "--format", "hf", "--out", base / "hf")
    assert result.exit_code == 0, result.output
    return run_dir, base / "hf"


# ---------------------------------------------------------------------------------------------
# export


def test_the_exported_model_gives_minitx_logits(exported):
    run_dir, hf_dir = exported
    model, run_info = rundir.load_model(run_dir)
    hf = transformers.AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    ids = random_ids(run_info.model_config.vocab_size)
    with torch.no_grad():
        ours, theirs = model(ids)[0], hf(ids).logits
    assert theirs.shape == ours.shape
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=0)


def test_greedy_generate_in_transformers_equals_minitx_generate_at_temperature_0(exported):
    run_dir, hf_dir = exported
    prompt = "a red"
    result = run("generate", run_dir, "--prompt", prompt, "--temperature", "0", "--max-new-tokens", "24",
                 "--no-stream", "--quiet", "--device", "cpu")
    assert result.exit_code == 0, result.output
    hf = transformers.AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
    inputs = tok(tok.bos_token + prompt, return_tensors="pt")
    out = hf.generate(**inputs, max_new_tokens=24, do_sample=False)[0, inputs["input_ids"].shape[1]:].tolist()
    if tok.eos_token_id in out:
        out = out[: out.index(tok.eos_token_id)]  # minitx ends a sample just before <|doc|>
    text = prompt + tok.decode(out)
    assert len(out) >= 3  # a real continuation, not an immediate stop
    assert result.stdout == text + ("" if text.endswith("\n") else "\n")


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_the_exported_tokenizer_encodes_and_decodes_like_minitx(tmp_path, tokenizers_by_kind, kind):
    tokenizer = tokenizers_by_kind[kind]
    run_dir = make_run(tmp_path / "run", tokenizer, "learned")
    assert run("export", run_dir, "--out", tmp_path / "hf").exit_code == 0
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert tok.bos_token == tok.eos_token == "<|doc|>"
    ours = tokenizer.encode(HOSTILE)
    assert tok(HOSTILE)["input_ids"] == ours
    assert tok.decode(ours) == tokenizer.decode(ours) == HOSTILE
    assert tok.convert_tokens_to_ids("<|doc|>") == tokenizer.token_id("<|doc|>")


def test_an_alibi_model_with_biases_is_refused_with_one_line_saying_why(tmp_path, tokenizers_by_kind):
    run_dir = make_run(tmp_path / "run", tokenizers_by_kind["char"], "alibi")
    result = run("export", run_dir, "--out", tmp_path / "hf")
    assert_user_error(result, "MPT", "--no-bias")
    assert not (tmp_path / "hf").exists()


def test_export_never_overwrites_without_force(tmp_path, tokenizers_by_kind):
    run_dir = make_run(tmp_path / "run", tokenizers_by_kind["char"], "learned")
    out = tmp_path / "hf"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert_user_error(run("export", run_dir, "--out", out), "--force")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert run("export", run_dir, "--out", out, "--force").exit_code == 0
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind


def test_ctrl_c_while_exporting_leaves_the_previous_export_whole(tmp_path, tokenizers_by_kind, monkeypatch):
    from minitx import fileio

    run_dir = make_run(tmp_path / "run", tokenizers_by_kind["char"], "learned")
    out = tmp_path / "hf"
    assert run("export", run_dir, "--out", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    write, calls = fileio.atomic_write_bytes, []

    def interrupted(path, data):
        calls.append(Path(path).name)
        if Path(path).name == "model.safetensors":
            raise KeyboardInterrupt  # Ctrl-C in the middle of writing the new folder
        write(path, data)

    monkeypatch.setattr(fileio, "atomic_write_bytes", interrupted)
    result = run("export", run_dir, "--out", out, "--force")
    assert "model.safetensors" in calls
    assert result.exit_code == 130, (result.exit_code, result.stderr)  # a Ctrl-C's exit code, and no traceback
    assert "Traceback" not in result.output + result.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "run"]  # no half-written folder left


# ---------------------------------------------------------------------------------------------
# export then import


def test_export_then_import_is_the_identity_on_weights_and_logits(exported, tmp_path):
    run_dir, hf_dir = exported
    result = run("import-hf", hf_dir, "--out", tmp_path / "back")
    assert result.exit_code == 0, result.output
    before, before_run = rundir.load_model(run_dir)
    after, after_run = rundir.load_model(tmp_path / "back")
    assert after_run.model_config == before_run.model_config
    # Bit for bit, but for one case: an untied sinusoidal model's embedding goes out multiplied by √d
    # and comes back divided by it (a tied one comes back from the unscaled output matrix, exactly).
    rounded = before.config.pos == "sinusoidal" and not before.config.tie_embeddings
    tolerance = {"atol": 1e-6, "rtol": 1e-6} if rounded else {"atol": 0, "rtol": 0}
    ours, theirs = rundir.model_state(before), rundir.model_state(after)
    assert ours.keys() == theirs.keys()
    for name in ours:
        torch.testing.assert_close(theirs[name], ours[name], **tolerance, msg=name)
    ids = random_ids(before.config.vocab_size)
    with torch.no_grad():
        torch.testing.assert_close(after(ids)[0], before(ids)[0], **tolerance)
    assert after_run.tokenizer.to_json_str() == before_run.tokenizer.to_json_str()


# ---------------------------------------------------------------------------------------------
# import of a GPT-2 built by transformers


def gpt2_folder(path: Path, tokenizer: Tokenizer, *, tied: bool = True, vocab_files: bool = False) -> Path:
    """A random GPT-2 (tanh GELU, random biases) saved by transformers, with a byte-level BPE tokenizer."""
    config = transformers.GPT2Config(
        vocab_size=tokenizer.vocab_size, n_positions=BLOCK, n_embd=32, n_layer=2, n_head=4,
        activation_function="gelu_new", tie_word_embeddings=tied,
    )
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config).eval()
    randomize(model)
    model.save_pretrained(path)
    if vocab_files:  # the older layout: vocab.json + merges.txt, special tokens named in tokenizer_config.json
        from tokenizers import Tokenizer as HFTokenizer

        HFTokenizer.from_str(tokenizer.to_json_str()).model.save(str(path))
        (path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>"}))
    else:
        (path / "tokenizer.json").write_text(tokenizer.to_json_str())
    return path


@pytest.fixture(scope="module")
def gpt2_tokenizer() -> Tokenizer:
    text = "When Mary and John went to the store, John gave a drink to Mary.\n" * 20 + HOSTILE
    return Tokenizer.train_bpe([text], vocab_size=320, special_tokens=("<|endoftext|>",), show_progress=False)


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("vocab_files", [False, True], ids=["tokenizer.json", "vocab+merges"])
def test_an_imported_gpt2_gives_the_logits_of_transformers(tmp_path, gpt2_tokenizer, tied, vocab_files):
    folder = gpt2_folder(tmp_path / "gpt2", gpt2_tokenizer, tied=tied, vocab_files=vocab_files)
    result = run("import-hf", folder, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    model, run_info = rundir.load_model(tmp_path / "run")
    config = run_info.model_config
    assert (config.pos, config.activation, config.bias, config.tie_embeddings) == ("learned", "gelu_tanh", True, tied)
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = random_ids(config.vocab_size)
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[0], hf(ids).logits, atol=1e-4, rtol=0)
    assert run_info.tokenizer.encode(HOSTILE) == gpt2_tokenizer.encode(HOSTILE)
    assert run_info.tokenizer.token_id("<|endoftext|>") == gpt2_tokenizer.token_id("<|endoftext|>")


@pytest.fixture(scope="module")
def imported_gpt2(tmp_path_factory, gpt2_tokenizer) -> Path:
    base = tmp_path_factory.mktemp("imported")
    folder = gpt2_folder(base / "gpt2", gpt2_tokenizer)
    result = run("import-hf", folder, "--out", base / "run")
    assert result.exit_code == 0, result.output
    assert "2 layers × 4 heads" in result.output
    return base / "run"


def test_an_imported_gpt2_works_with_generate_eval_and_both_inspect_commands(imported_gpt2, tmp_path):
    prompt = "When Mary and John went to the store,"
    result = run("generate", imported_gpt2, "--prompt", prompt, "--max-new-tokens", "8", "--seed", "0", "--quiet",
                 "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(prompt)
    text = tmp_path / "text.txt"
    text.write_text("When Mary and John went to the store, John gave a drink to Mary.\n" * 10)
    result = run("eval", imported_gpt2, text, "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tokens"] > 0
    assert_user_error(run("eval", imported_gpt2, "--device", "cpu"), "imported", "text")  # no training split to use
    result = run("inspect-attention", imported_gpt2, "--prompt", prompt, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "layer" in result.output
    result = run("inspect-positions", imported_gpt2, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "Neighbouring positions: cosine" in result.output  # GPT-2's learned table, measured
    result = run("info", imported_gpt2)
    assert result.exit_code == 0, result.output
    model, _ = rundir.load_model(imported_gpt2)
    assert f"{model.num_parameters():,}" in result.output and "learned" in result.output
    assert "imported from" in result.output and "steps done" not in result.output  # no training recipe to show


def test_hub_names_mask_buffers_and_sharded_files_import_like_save_pretrained_output(tmp_path, gpt2_tokenizer):
    """The Hub's GPT-2 files name weights without "transformer." and carry causal-mask buffers
    ("h.0.attn.bias"); big checkpoints come in shards listed by an index. All three are read."""
    from safetensors.torch import load_file, save_file

    folder = gpt2_folder(tmp_path / "gpt2", gpt2_tokenizer)
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    tensors = load_file(folder / "model.safetensors")
    hub = {name.removeprefix("transformer."): t for name, t in tensors.items()}
    for i in range(2):
        hub[f"h.{i}.attn.bias"] = torch.tril(torch.ones(1, 1, BLOCK, BLOCK))  # a buffer, not a weight
    (folder / "model.safetensors").unlink()
    names = sorted(hub)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2 :]}
    for shard, shard_names in shards.items():
        save_file({name: hub[name].contiguous() for name in shard_names}, folder / shard, metadata={"format": "pt"})
    index = {"weight_map": {name: shard for shard, shard_names in shards.items() for name in shard_names}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    result = run("import-hf", folder, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    model, _ = rundir.load_model(tmp_path / "run")
    ids = random_ids(model.config.vocab_size)
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[0], hf(ids).logits, atol=1e-4, rtol=0)


def test_a_cache_folder_is_followed_to_the_snapshot_its_main_ref_names(tmp_path, gpt2_tokenizer):
    cache = tmp_path / "models--tiny-gpt2"
    gpt2_folder(cache / "snapshots" / "abc123", gpt2_tokenizer)
    (cache / "refs").mkdir()
    (cache / "refs" / "main").write_text("abc123")
    result = run("import-hf", cache, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "snapshots/abc123" in result.output.replace("\n", "")


# ---------------------------------------------------------------------------------------------
# no pickle, ever


class Planted:
    """Unpickling this creates a file: proof that a pickle was opened."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_planted_pickle_beside_the_safetensors_is_never_loaded(tmp_path, gpt2_tokenizer, monkeypatch):
    folder = gpt2_folder(tmp_path / "gpt2", gpt2_tokenizer)
    marker = tmp_path / "pickle-was-opened"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Planted(marker)))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    result = run("import-hf", folder, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert not marker.exists()


def test_a_pickle_only_checkpoint_is_refused_with_how_to_convert_it(tmp_path, gpt2_tokenizer):
    folder = gpt2_folder(tmp_path / "gpt2", gpt2_tokenizer)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "pickle-was-opened"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Planted(marker)))
    result = run("import-hf", folder, "--out", tmp_path / "run")
    assert_user_error(result, "pytorch_model.bin", "save_pretrained")
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_an_architecture_minitx_cannot_compute_is_refused_in_one_line(tmp_path, gpt2_tokenizer):
    folder = gpt2_folder(tmp_path / "gpt2", gpt2_tokenizer)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "activation_function": "relu"}))
    assert_user_error(run("import-hf", folder, "--out", tmp_path / "run"), "relu")
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    assert_user_error(run("import-hf", folder, "--out", tmp_path / "run"), "llama")


# ---------------------------------------------------------------------------------------------
# transformers stays optional


def test_the_core_never_imports_transformers():
    code = (
        "import sys\n"
        "import minitx.cli, minitx.model, minitx.rundir, minitx.interop.hf_export, minitx.interop.hf_import\n"
        "import minitx.commands.interop\n"
        "from minitx.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('TRANSFORMERS' if 'transformers' in sys.modules else 'NO-TRANSFORMERS')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("NO-TRANSFORMERS")
    assert "export" in out and "import-hf" in out


def test_a_kind_without_an_export_target_is_refused_and_never_falls_into_another_branch(monkeypatch):
    from minitx.errors import UserError
    from minitx.interop.hf_export import hf_architecture
    from minitx.model import positions

    config = ModelConfig(vocab_size=10, block_size=8, n_layers=1, n_heads=2, dim=8, pos="alibi", bias=False)
    assert hf_architecture(config) == "mpt"

    class Unexportable(positions.AlibiPositions):
        hf_architecture = None
        hf_refusal = "no transformers model adds this bias"

    monkeypatch.setitem(positions.ENCODINGS, "alibi", Unexportable)
    with pytest.raises(UserError, match="alibi positions have no exact transformers architecture: no transformers"):
        hf_architecture(config)
    config.pos = "made-up"  # a kind no class is registered for
    with pytest.raises(UserError, match="unknown positional encoding 'made-up'"):
        hf_architecture(config)
