"""Training, checkpoints and resume: what a user relies on when a run is stopped and continued."""

from __future__ import annotations

import json
import math

import pytest
import torch

from minitx import rundir
from minitx.config import ModelConfig, TrainConfig, make_train_config
from minitx.dataset.batches import BatchSampler, split_train_val
from minitx.errors import UserError
from minitx.training.loop import Trainer, learning_rate
from minitx.training.setup import check_run_dir


def _split(n_tokens: int = 4000, vocab: int = 40, block: int = 16):
    gen = torch.Generator().manual_seed(0)
    # a stream with structure (repeating patterns + noise), so training has something to learn
    pattern = torch.arange(n_tokens) % 7 + (torch.randint(0, 3, (n_tokens,), generator=gen) * 10)
    ids = (pattern % vocab).tolist()
    return split_train_val(ids, n_bytes=n_tokens * 2, block_size=block, val_fraction=0.1)


def _configs(tmp_path, steps=12, pos="learned", **train):
    mc = ModelConfig(vocab_size=40, block_size=16, n_layers=2, n_heads=2, dim=32, pos=pos)
    tc = TrainConfig(steps=steps, batch_size=4, lr=3e-3, min_lr=3e-4, warmup=2, eval_every=4, eval_batches=2,
                     save_every=4, seed=7, device="cpu", threads=1, **train)
    rundir.save_config(tmp_path, mc, tc)
    return mc, tc


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_learning_rate_warms_up_then_decays_to_min_lr():
    cfg = TrainConfig(steps=100, lr=1.0, min_lr=0.1, warmup=10)
    lrs = [learning_rate(s, cfg) for s in range(101)]
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11], strict=False))  # rising during warmup
    assert lrs[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))  # never rising after
    assert lrs[100] == pytest.approx(0.1)
    assert lrs[55] == pytest.approx(0.55)  # halfway down the cosine


def test_batches_are_next_token_windows():
    data = torch.arange(100)
    x, y = BatchSampler(data, block_size=8, batch_size=5, seed=0).next()
    assert x.shape == y.shape == (5, 8)
    assert torch.equal(y[:, :-1], x[:, 1:])
    assert torch.equal(y - x, torch.ones_like(x))  # y is x shifted by one token


def test_corpus_shorter_than_a_block_is_a_user_error():
    with pytest.raises(UserError, match="too short"):
        split_train_val(list(range(30)), n_bytes=30, block_size=16, val_fraction=0.1)


def test_training_lowers_the_loss(tmp_path):
    mc, tc = _configs(tmp_path, steps=40)
    trainer = Trainer(tmp_path, mc, tc, _split())
    first, _ = trainer.evaluate()
    result = trainer.fit()
    assert result.val_loss < first - 0.5
    assert math.isclose(first, math.log(40), abs_tol=0.4)  # starts near uniform guessing


def test_save_then_load_gives_identical_logits(tmp_path):
    mc, tc = _configs(tmp_path, steps=5)
    trainer = Trainer(tmp_path, mc, tc, _split())
    trainer.fit()
    # a tokenizer is part of a run: a char one with 39 characters + <|doc|> fits the 40-token model
    import string

    from minitx.text.tokenizer import Tokenizer

    Tokenizer.train_char(string.ascii_letters[:39]).save(tmp_path / rundir.TOKENIZER)
    loaded, _ = rundir.load_model(tmp_path)
    trainer.model.eval()
    x = torch.randint(0, 40, (3, 16))
    with torch.no_grad():
        assert torch.equal(trainer.model(x)[0], loaded(x)[0])
    assert loaded.lm_head.weight is loaded.transformer.wte.weight  # the tie survives loading


def test_an_untied_gelu_tanh_model_saves_and_loads_exactly(tmp_path):
    import string

    from minitx.config import ModelConfig, TrainConfig
    from minitx.model import GPT
    from minitx.text.tokenizer import Tokenizer

    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=40, block_size=16, n_layers=1, n_heads=2, dim=16, activation="gelu_tanh",
                            tie_embeddings=False)).eval()
    rundir.save_config(tmp_path, model.config, TrainConfig())
    rundir.save_weights(tmp_path, model)
    Tokenizer.train_char(string.ascii_letters[:39]).save(tmp_path / rundir.TOKENIZER)
    assert "lm_head.weight" in rundir.tensor_shapes(tmp_path / rundir.WEIGHTS)  # its own matrix is saved
    loaded, run = rundir.load_model(tmp_path)
    assert (run.model_config.activation, run.model_config.tie_embeddings) == ("gelu_tanh", False)
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)
    x = torch.randint(0, 40, (2, 16))
    with torch.no_grad():
        assert torch.equal(model(x)[0], loaded(x)[0])


def test_a_config_json_from_before_activation_and_tying_loads_as_tied_exact_gelu(tmp_path):
    import json
    import string

    from minitx.config import ModelConfig, TrainConfig
    from minitx.model import GPT
    from minitx.text.tokenizer import Tokenizer

    model = GPT(ModelConfig(vocab_size=40, block_size=16, n_layers=1, n_heads=2, dim=16))
    rundir.save_config(tmp_path, model.config, TrainConfig())
    rundir.save_weights(tmp_path, model)
    Tokenizer.train_char(string.ascii_letters[:39]).save(tmp_path / rundir.TOKENIZER)
    raw = json.loads((tmp_path / rundir.CONFIG).read_text())
    del raw["model"]["activation"], raw["model"]["tie_embeddings"]  # as written by earlier versions
    (tmp_path / rundir.CONFIG).write_text(json.dumps(raw))
    loaded, run = rundir.load_model(tmp_path)
    assert (run.model_config.activation, run.model_config.tie_embeddings) == ("gelu", True)
    assert loaded.lm_head.weight is loaded.transformer.wte.weight


def test_weights_have_gpt2_names_and_no_compile_prefix(tmp_path):
    mc, tc = _configs(tmp_path, steps=1)
    Trainer(tmp_path, mc, tc, _split()).fit()
    tensors, _ = rundir.read_tensors(rundir.latest_checkpoint(tmp_path) / rundir.WEIGHTS, "weights")
    assert "transformer.wte.weight" in tensors
    assert "transformer.h.1.attn.c_attn.weight" in tensors
    assert not any(k.startswith("_orig_mod") for k in tensors)


@pytest.mark.parametrize("pos", ["learned", "rope"])
def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path, pos):
    split = _split()
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    full_dir.mkdir()
    cut_dir.mkdir()

    mc, tc = _configs(full_dir, 12, pos)
    full = Trainer(full_dir, mc, tc, split)
    full.fit()

    mc, tc = _configs(cut_dir, 12, pos)
    crashed = Trainer(cut_dir, mc, tc, split)
    # What fit() does, up to step 6: checkpoint at 4, then two more steps that a SIGKILL throws away.
    for _ in range(6):
        crashed.train_step()
        if crashed.step == 4:
            crashed.save()
    del crashed

    resumed = Trainer(cut_dir, mc, tc, split, resume=True)
    assert resumed.step == 4
    resumed.fit()
    full_w, resumed_w = _weights(full.model), _weights(resumed.model)
    assert all(torch.equal(full_w[k], resumed_w[k]) for k in full_w)
    full_val = [m["val_loss"] for m in rundir.read_metrics(full_dir)]
    resumed_val = [m["val_loss"] for m in rundir.read_metrics(cut_dir)]
    assert full_val == resumed_val


def test_resume_with_dropout_restores_the_random_state(tmp_path):
    split = _split()
    runs = []
    for name, stop_at in (("a", None), ("b", 5)):
        d = tmp_path / name
        d.mkdir()
        mc = ModelConfig(vocab_size=40, block_size=16, n_layers=1, n_heads=2, dim=32, dropout=0.2)
        tc = TrainConfig(steps=10, batch_size=4, warmup=1, eval_every=5, eval_batches=1, save_every=5, seed=3,
                         device="cpu", threads=1)
        t = Trainer(d, mc, tc, split)
        if stop_at:
            for _ in range(stop_at):
                t.train_step()
            t.save()
            t = Trainer(d, mc, tc, split, resume=True)
        t.fit()
        runs.append(_weights(t.model))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_mismatched_optimizer_and_state_refuse_to_resume(tmp_path):
    mc, tc = _configs(tmp_path, steps=4)
    t = Trainer(tmp_path, mc, tc, _split())
    t.fit()
    state_path = rundir.latest_checkpoint(tmp_path) / rundir.TRAINER_STATE
    state = json.loads(state_path.read_text())
    state["step"] = 2
    state_path.write_text(json.dumps(state))
    with pytest.raises(UserError, match="damaged"):
        Trainer(tmp_path, mc, tc, _split(), resume=True)


def test_truncated_weights_are_a_user_error(tmp_path):
    mc, tc = _configs(tmp_path, steps=1)
    Trainer(tmp_path, mc, tc, _split()).fit()
    path = rundir.latest_checkpoint(tmp_path) / rundir.WEIGHTS
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(UserError, match="corrupt or truncated"):
        rundir.read_tensors(path, "weights")


@pytest.mark.parametrize("pos", ["learned", "rope"])
def test_parameter_count_from_the_weights_header_equals_the_models_count(tmp_path, pos):
    from minitx.model import GPT

    mc = ModelConfig(vocab_size=40, block_size=16, n_layers=2, n_heads=2, dim=32, pos=pos)
    model = GPT(mc)
    rundir.save_weights(tmp_path, model, step=3)
    shapes = rundir.tensor_shapes(tmp_path / rundir.WEIGHTS)
    assert shapes["transformer.wte.weight"] == (40, 32)
    assert "lm_head.weight" not in shapes  # tied to wte: stored (and counted) once
    assert rundir.parameter_count(tmp_path / rundir.WEIGHTS) == model.num_parameters()


def test_weights_header_that_does_not_match_the_file_is_a_user_error(tmp_path):
    from minitx.model import GPT

    rundir.save_weights(tmp_path, GPT(ModelConfig(vocab_size=40, block_size=16, n_layers=1, n_heads=2, dim=32)))
    good = (tmp_path / rundir.WEIGHTS).read_bytes()
    damaged = {
        "truncated": good[:-1],
        "padded": good + b"\0",
        "huge header size": (10**12).to_bytes(8, "little") + good[8:],
        "not json": good[:8] + b"x" * (len(good) - 8),
        "empty": b"",
    }
    for name, data in damaged.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(data)
        with pytest.raises(UserError, match="corrupt"):
            rundir.tensor_shapes(path)
    with pytest.raises(UserError, match="not found"):
        rundir.tensor_shapes(tmp_path / "missing.safetensors")


def test_existing_run_is_never_overwritten_without_force(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UserError, match="--force"):
        check_run_dir(tmp_path, resume=False, force=False)
    check_run_dir(tmp_path, resume=False, force=True)  # allowed


def test_presets_and_flags_combine():
    cfg = make_train_config("tiny", {"lr": 0.01, "steps": None})
    assert cfg.lr == 0.01 and cfg.steps == 300 and cfg.preset == "tiny"
    with pytest.raises(UserError, match="unknown preset"):
        make_train_config("huge", {})


def test_doc_aligned_windows_start_at_document_markers():
    doc = 99
    ids = []
    for n in range(200):  # documents of varying length, each opened by the marker
        ids += [doc] + [n % 50] * (3 + n % 11)
    split = split_train_val(ids, n_bytes=len(ids), block_size=8, val_fraction=0.2, doc_id=doc)
    sampler = BatchSampler(split.train, 8, 64, seed=0, starts=split.train_starts)
    x, _ = sampler.next()
    assert (x[:, 0] == doc).all()
    free, _ = BatchSampler(split.train, 8, 64, seed=0).next()
    assert not (free[:, 0] == doc).all()  # without alignment windows start anywhere


def test_corpus_without_markers_falls_back_to_any_offset():
    split = split_train_val(list(range(100)) * 3, n_bytes=300, block_size=8, val_fraction=0.2, doc_id=1000)
    assert split.train_starts is None and split.val_starts is None
