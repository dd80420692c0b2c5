"""The optimizers: AdamW's groups as before, Muon on the hidden matrices only, an exact resume with either."""

from __future__ import annotations

import pytest
import torch

from minitx import rundir
from minitx.config import ModelConfig, TrainConfig
from minitx.dataset.batches import split_train_val
from minitx.errors import UserError
from minitx.training import optim
from minitx.training.loop import Trainer


def _split(n_tokens: int = 4000, vocab: int = 40):
    gen = torch.Generator().manual_seed(0)
    pattern = torch.arange(n_tokens) % 7 + (torch.randint(0, 3, (n_tokens,), generator=gen) * 10)
    return split_train_val((pattern % vocab).tolist(), n_bytes=n_tokens * 2, block_size=16, val_fraction=0.1)


def _configs(run_dir, steps=12, **train):
    mc = ModelConfig(vocab_size=40, block_size=16, n_layers=2, n_heads=2, dim=32)
    tc = TrainConfig(steps=steps, batch_size=4, lr=3e-3, min_lr=3e-4, warmup=2, eval_every=4, eval_batches=2,
                     save_every=4, seed=7, device="cpu", threads=1, **train)
    rundir.save_config(run_dir, mc, tc)
    return mc, tc


def _model():
    from minitx.model import GPT

    torch.manual_seed(0)
    return GPT(ModelConfig(vocab_size=40, block_size=16, n_layers=2, n_heads=2, dim=32))


def test_adamw_decays_matrices_and_not_biases_or_gains():
    model = _model()
    opt = optim.build_optimizer(model, TrainConfig(weight_decay=0.1, lr=1e-3, beta2=0.99), "cpu")
    assert isinstance(opt, torch.optim.AdamW)
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decayed["params"]) and all(p.dim() < 2 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))
    assert decayed["betas"] == (0.9, 0.99) and decayed["lr"] == 1e-3


def test_muon_takes_the_hidden_matrices_and_adamw_the_embeddings_norms_and_biases():
    model = _model()
    opt = optim.build_optimizer(model, TrainConfig(optimizer="muon", muon_lr=0.03), "cpu")
    muon, adamw = opt.optimizers
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    names = {id(p): n for n, p in model.named_parameters()}
    muon_names = {names[id(p)] for g in muon.param_groups for p in g["params"]}
    # per block: the fused q/k/v projection, the attention output, and the MLP's two matrices
    assert muon_names == {f"transformer.h.{i}.{m}.weight" for i in range(2)
                          for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")}
    adamw_names = {names[id(p)] for g in adamw.param_groups for p in g["params"]}
    assert "transformer.wte.weight" in adamw_names and "transformer.wpe.weight" in adamw_names
    assert adamw_names | muon_names == set(names.values()) and not adamw_names & muon_names
    assert {g["peak_lr"] for g in muon.param_groups} == {0.03}


def test_the_schedule_scales_each_optimizer_to_its_own_peak():
    cfg = TrainConfig(optimizer="muon", muon_lr=0.02, lr=1e-3)
    opt = optim.build_optimizer(_model(), cfg, "cpu")
    optim.set_schedule(opt, 0.5, cfg)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 5e-4, 5e-4]


def test_muon_lowers_the_loss(tmp_path):
    mc, tc = _configs(tmp_path, steps=30, optimizer="muon")
    trainer = Trainer(tmp_path, mc, tc, _split())
    first, _ = trainer.evaluate()
    assert trainer.fit().val_loss < first - 0.5


def test_muon_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path):
    split = _split()
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    full_dir.mkdir()
    cut_dir.mkdir()
    mc, tc = _configs(full_dir, 12, optimizer="muon")
    full = Trainer(full_dir, mc, tc, split)
    full.fit()
    mc, tc = _configs(cut_dir, 12, optimizer="muon")
    crashed = Trainer(cut_dir, mc, tc, split)
    for _ in range(6):  # a checkpoint at 4, then two steps a crash throws away
        crashed.train_step()
        if crashed.step == 4:
            crashed.save()
    del crashed
    resumed = Trainer(cut_dir, mc, tc, split, resume=True)
    assert resumed.step == 4
    momentum = [s["momentum_buffer"] for s in resumed.optimizer.optimizers[0].state.values()]
    assert len(momentum) == 8 and all(m.abs().sum() > 0 for m in momentum)  # Muon's state came back
    resumed.fit()
    full_w, resumed_w = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(full_w[k], resumed_w[k]) for k in full_w)
    assert [m["val_loss"] for m in rundir.read_metrics(full_dir)] == [m["val_loss"] for m in
                                                                      rundir.read_metrics(cut_dir)]


def test_a_torch_without_muon_is_one_clear_user_error(monkeypatch):
    monkeypatch.delattr(torch.optim, "Muon")
    with pytest.raises(UserError, match="--optimizer muon needs torch.optim.Muon.*--optimizer adamw"):
        optim.build_optimizer(_model(), TrainConfig(optimizer="muon"), "cpu")


def test_resume_refuses_another_optimizer(tmp_path):
    import string

    from minitx.text.tokenizer import Tokenizer
    from minitx.training.setup import refuse_recipe_changes

    _configs(tmp_path, 2)
    Tokenizer.train_char(string.ascii_letters[:39]).save(tmp_path / rundir.TOKENIZER)
    with pytest.raises(UserError, match="--optimizer muon"):
        refuse_recipe_changes(rundir.load_run(tmp_path), {"optimizer": "muon"})


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="this PyTorch build has no torch.distributed with gloo")
def test_muon_on_two_ranks_trains_like_one_rank_with_the_whole_batch(tmp_path):
    """Under DDP Muon steps on the averaged gradient: 2 ranks × batch 4 follow 1 rank × batch 8.

    Muon orthogonalises in bf16, so the last-digit differences of a sum over ranks may round
    differently: the losses agree closely, not bit for bit.
    """
    import json
    import os
    import subprocess
    import sys

    from minitx.corpus import generate_corpus

    corpus = tmp_path / "stories.txt"
    corpus.write_text(generate_corpus(40_000, 0), encoding="utf-8")
    args = ["--tokenizer", "char", "--layers", "1", "--heads", "2", "--dim", "32", "--block-size", "32",
            "--steps", "8", "--eval-every", "4", "--eval-batches", "2", "--save-every", "8", "--lr", "3e-3",
            "--warmup", "2", "--device", "cpu", "--quiet", "--optimizer", "muon"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MINITX_DIST_TIMEOUT": "100"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "minitx", "train", str(corpus), "--out", str(tmp_path / "two"), "--batch-size", "4",
                          *args], capture_output=True, text=True, timeout=240, env=env)
    assert two.returncode == 0, two.stderr[-2000:]
    one = subprocess.run([sys.executable, "-m", "minitx", "train", str(corpus), "--out", str(tmp_path / "one"),
                          "--batch-size", "8", "--threads", "1", *args], capture_output=True, text=True, timeout=240,
                         env=env)
    assert one.returncode == 0, one.stderr[-2000:]

    def losses(run):
        return [json.loads(line)["val_loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]

    assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), abs=2e-3)
    assert losses(tmp_path / "two")[-1] < losses(tmp_path / "two")[0]
