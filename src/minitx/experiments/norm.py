"""Does layer normalization speed up convergence, and is less covariate shift the reason? (note 004)

Ba et al. 2016 motivate LayerNorm by covariate shift and show only faster convergence; Santurkar et al. 2018
inject shifting noise after the norm and training barely changes; Xiong et al. 2020 show that *where* the
norm sits matters: Post-LN needs warmup, its gradients grow with the layer index while Pre-LN's stay flat.
This experiment measures all of it on the built-in stories, one small GPT per variant × seed:

    variant = norm × warmup × lr × depth      norm: pre, post, none, pre-rms (RMSNorm), pre+noise (Santurkar)

Per run (RUN/lab.json): the validation curve; whether it diverged (a non-finite loss, or a final validation
loss no better than guessing uniformly, ln V); steps and training seconds to the target loss (chosen at
report time: the worst final loss of pre-LN with warmup, which every reference run reaches); the final
loss; and the **covariate shift**: the mean and standard deviation of every block's input (the residual
stream at `blocks.{i}.hook_resid_pre`, on one fixed validation batch) at every saved checkpoint, and how
far they move between checkpoints (|Δmean| / std + |Δ log std|, averaged over blocks and checkpoints).
Without training: each layer's feed-forward gradient norm at initialisation for depths 2..12 (Xiong's Fig. 3 in
miniature) in DIR/init_gradients.json. `pre+noise` trains pre-LN with noise of a changing mean and
variance injected after every norm (x ↦ σ_t·x + μ_t, new per-feature σ_t, μ_t at every training step,
through a forward hook on every norm layer): if convergence barely slows, reducing covariate shift is not
why normalization helps.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from minitx.errors import UserError
from minitx.experiments.engine import Experiment, Observer, RunSpec, Shared, by_variant, shared_tokenizer, summarise
from minitx.fileio import atomic_write_json, atomic_write_text

#: The norm labels: a place (pre, post, none), "-rms" for RMSNorm, "+noise" for Santurkar's injected noise.
DEFAULT_NORMS = ["pre", "post", "none", "pre-rms", "pre+noise"]
NOISE = "+noise"
#: A run whose final validation loss is this many nats above the target "failed to train" (stalled), diverged or not.
STALLED = 1.0
#: Sized for about 15-30 minutes on 2 cores: 5 norms x 2 warmups x 2 learning rates x 2 depths x 2 seeds
#: = 80 runs of 300 steps of a 64-wide GPT (not yet timed in full: docs/experiments.md).
DEFAULT_MODEL: dict[str, Any] = {"n_heads": 4, "dim": 64, "block_size": 64}
DEFAULT_TRAIN: dict[str, Any] = {"steps": 300, "batch_size": 16, "eval_every": 25, "eval_batches": 4,
                                 "save_every": 50, "keep": 1000, "optimizer": "adamw"}


def parse_norm(label: str) -> tuple[str, str, bool]:
    """"pre-rms+noise" -> ("pre", "rms", True): the place, the kind and whether noise is injected."""
    from minitx.config import NORM_KINDS, NORM_PLACES

    noise = label.endswith(NOISE)
    place, _, kind = label.removesuffix(NOISE).partition("-")
    kind = kind or "layer"
    if place not in NORM_PLACES or kind not in NORM_KINDS:
        raise UserError(f"--norms: {label!r} is not a norm; write PLACE[-KIND][+noise] with PLACE one of "
                        f"{','.join(NORM_PLACES)} and KIND one of {','.join(NORM_KINDS)} (e.g. post-rms, pre+noise)")
    return place, kind, noise


@dataclass
class NormExperiment(Experiment):
    """Everything that decides the numbers; stored in DIR/experiment.json."""

    SELECTION = ("norms", "seeds")

    norms: list[str] = field(default_factory=lambda: list(DEFAULT_NORMS))
    warmups: list[int] = field(default_factory=lambda: [0, 50])
    lrs: list[float] = field(default_factory=lambda: [2e-3, 1e-2])
    depths: list[int] = field(default_factory=lambda: [2, 6])
    seeds: int = 2
    model: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_MODEL))
    train: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_TRAIN))
    vocab_size: int = 512
    corpus_bytes: int = 400_000
    init_depths: list[int] = field(default_factory=lambda: [2, 4, 6, 8, 10, 12])
    noise: float = 1.0  # the noise's strength: μ_t ~ U(-n, n), σ_t ~ U(1, 1 + 2n) per feature and step
    shift_windows: int = 8  # validation windows of the fixed batch the block inputs are measured on

    def validate(self) -> None:
        for label in self.norms:
            parse_norm(label)
        if not self.norms or not self.warmups or not self.lrs or not self.depths:
            raise UserError("--norms, warmups, learning rates and depths each need at least one value")
        if self.seeds < 1:
            raise UserError(f"--seeds must be at least 1, not {self.seeds}")

    def variants(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, the flags that make it) for norm × warmup × lr × depth: "post-wu0-lr0.01-L6"."""
        out = []
        for depth in self.depths:
            for lr in self.lrs:
                for warmup in self.warmups:
                    for label in self.norms:
                        place, kind, _ = parse_norm(label)
                        out.append((f"{label}-wu{warmup}-lr{lr:g}-L{depth}",
                                    {"norm": place, "norm_kind": kind, "warmup": warmup, "lr": lr,
                                     "min_lr": lr / 10, "n_layers": depth}))
        return out

    def runs(self) -> list[RunSpec]:
        return [RunSpec(name, seed, f"{name}-seed{seed}", flags) for seed in range(self.seeds)
                for name, flags in self.variants()]

    def training(self, spec: RunSpec) -> contextlib.AbstractContextManager[Any]:
        if spec.variant.split("-wu")[0].endswith(NOISE):
            return shifting_noise(self.noise, seed=spec.seed)
        return contextlib.nullcontext()

    def prepare(self, out: Path, observer: Observer) -> Shared:
        """The built-in stories, one tokenizer, and the gradient norms by layer at initialisation."""
        corpus = out / "corpus.txt"
        if not corpus.is_file():
            from minitx.corpus.generate import generate_corpus

            observer.preparing(f"writing {self.corpus_bytes:,} bytes of built-in stories")
            atomic_write_text(corpus, generate_corpus(self.corpus_bytes, seed=0))
        tokenizer_path = shared_tokenizer(out, lambda: corpus.read_text(encoding="utf-8"), self.vocab_size, observer)
        grads = out / "init_gradients.json"
        if not grads.is_file():
            from minitx.text.tokenizer import Tokenizer

            observer.preparing(f"gradient norms by layer at initialisation, depths {self.init_depths}")
            tokenizer = Tokenizer.load(tokenizer_path)
            ids = tokenizer.encode(corpus.read_text(encoding="utf-8")[:20_000])
            labels = [n for n in self.norms if not n.endswith(NOISE)]
            atomic_write_json(grads, init_gradient_norms(labels, self.init_depths, self.model, ids,
                                                         tokenizer.vocab_size))
        return Shared([corpus], {"tokenizer": str(tokenizer_path)})

    def measure(self, run_dir: Path, spec: RunSpec, shared: Shared) -> dict[str, Any]:
        record = {"variant": spec.variant, "seed": spec.seed, **spec.flags, **measure_norm_run(run_dir,
                                                                                              self.shift_windows)}
        from minitx.rundir.checkpoints import prune_checkpoints

        prune_checkpoints(run_dir, 1)  # the block inputs are measured: only the last checkpoint stays
        return record


@contextlib.contextmanager
def shifting_noise(strength: float, seed: int) -> Iterator[None]:
    """Santurkar et al.'s test: while training, every norm layer's output x becomes σ_t·x + μ_t, with per-feature
    μ_t ~ U(-s, s) and σ_t ~ U(1, 1 + 2s) drawn anew at every forward pass in training mode (evaluation
    passes are left alone): a covariate shift far larger than any the network makes itself."""
    generator = torch.Generator().manual_seed(10_000 + seed)

    def hook(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor | None:
        if not module.training or not isinstance(module, (nn.LayerNorm, nn.RMSNorm)):
            return None
        dim = output.shape[-1]
        mean = (torch.rand(dim, generator=generator) * 2 - 1) * strength
        scale = 1 + torch.rand(dim, generator=generator) * 2 * strength
        return output * scale.to(output) + mean.to(output)

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def init_gradient_norms(labels: list[str], depths: list[int], model: dict[str, Any], ids: list[int],
                        vocab_size: int, seed: int = 0) -> dict[str, Any]:
    """{label: {depth: [‖∇ of block i's feed-forward weights‖ for i in 0..depth-1]}} at initialisation, on one batch
    of real text (Xiong et al. 2020, Fig. 3 plots the FFN's W² by layer: Post-LN's grow with the layer index,
    Pre-LN's stay flat)."""
    from minitx.config import ModelConfig
    from minitx.model import build_model

    block = model["block_size"]
    windows = torch.tensor(ids[: 8 * (block + 1)]).view(8, block + 1)
    result: dict[str, Any] = {}
    for label in labels:
        place, kind, _ = parse_norm(label)
        result[label] = {}
        for depth in depths:
            torch.manual_seed(seed)
            gpt = build_model(ModelConfig(**{**model, "vocab_size": vocab_size, "n_layers": depth, "norm": place,
                                             "norm_kind": kind}))
            _, loss = gpt(windows[:, :-1], windows[:, 1:])
            loss.backward()
            result[label][str(depth)] = [
                math.sqrt(sum(float(p.grad.pow(2).sum()) for p in (b.mlp.c_fc.weight, b.mlp.c_proj.weight)))
                for b in gpt.transformer.h]
    return result


def measure_norm_run(run_dir: Path, windows: int) -> dict[str, Any]:
    """The curve, divergence, final loss and the covariate shift of every block's input across checkpoints."""
    from minitx import rundir
    from minitx.evaluation.scoring import validation_ids
    from minitx.rundir.checkpoints import list_checkpoints
    from minitx.rundir.files import WEIGHTS, load_weights_into, read_tensors

    model, run = rundir.load_model(run_dir)
    model.eval()
    history = rundir.read_metrics(run_dir)
    curve = [{"step": m["step"], "train_loss": m.get("train_loss"), "val_loss": m.get("val_loss"),
              "train_seconds": m.get("train_seconds")} for m in history]
    final = history[-1]["val_loss"] if history else None
    diverged = final is None or not math.isfinite(final) or final >= math.log(model.config.vocab_size)
    ids, _, _ = validation_ids(run)
    block = model.config.block_size
    n = min(windows, max(1, (len(ids) - 1) // block))
    batch = ids[: n * block].view(n, block)
    names = [f"blocks.{i}.hook_resid_pre" for i in range(model.config.n_layers)]
    stats = []
    for step, checkpoint in list_checkpoints(run_dir):
        tensors, _ = read_tensors(checkpoint / WEIGHTS, "checkpoint weights")
        load_weights_into(model, tensors, checkpoint)
        with torch.no_grad():
            _, cache = model.run_with_cache(batch, names=names)
        stats.append({"step": step, "blocks": [{"mean": float(cache[name].mean()), "std": float(cache[name].std())}
                                               for name in names]})
    return {"curve": curve, "final_val_loss": final if final is not None and math.isfinite(final) else None,
            "diverged": diverged, "block_inputs": stats, "shift": covariate_shift(stats)}


def covariate_shift(stats: list[dict[str, Any]]) -> float | None:
    """How far the block inputs' distribution moves between consecutive checkpoints: |Δmean| / std + |Δ log std|,
    averaged over blocks and checkpoint pairs (0: a stationary input; None: fewer than two checkpoints)."""
    moves = []
    for before, after in zip(stats, stats[1:], strict=False):
        for a, b in zip(before["blocks"], after["blocks"], strict=True):
            if not all(math.isfinite(v) and v > 0 for v in (a["std"], b["std"])):
                continue
            moves.append(abs(b["mean"] - a["mean"]) / a["std"] + abs(math.log(b["std"] / a["std"])))
    return sum(moves) / len(moves) if moves else None


def steps_to(curve: list[dict[str, Any]], target: float) -> tuple[int | None, float | None]:
    """The first logged step (and its training seconds) whose validation loss is at or below `target`."""
    for point in curve:
        if point["val_loss"] is not None and math.isfinite(point["val_loss"]) and point["val_loss"] <= target:
            return point["step"], point["train_seconds"]
    return None, None


def build_report(settings: dict[str, Any], variants: list[str], runs: list[dict[str, Any]], seconds: float,
                 finished: bool, init_gradients: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per variant: share diverged (Wilson interval), steps and seconds to the target, final loss, covariate shift."""
    from minitx.evaluation.intervals import wilson

    reference = [r["final_val_loss"] for r in runs if r.get("norm") == "pre" and r.get("norm_kind") == "layer"
                 and r.get("warmup", 0) > 0 and not r["diverged"] and not r["variant"].split("-wu")[0].endswith(NOISE)]
    finals = [r["final_val_loss"] for r in runs if r["final_val_loss"] is not None]
    target = max(reference) if reference else (max(finals) if finals else None)
    rows: dict[str, Any] = {}
    for variant, records in by_variant(runs, variants).items():
        reached = [steps_to(r["curve"], target) if target is not None else (None, None) for r in records]
        k = sum(r["diverged"] for r in records)
        low, high = wilson(k, len(records))
        failed = sum(r["diverged"] or (target is not None and r["final_val_loss"] > target + STALLED)
                     for r in records)
        rows[variant] = {
            "seeds": len(records),
            "diverged": {"share": k / len(records) if records else None, "low": low, "high": high, "k": k},
            "failed": failed,
            "reached": sum(s is not None for s, _ in reached),
            "steps_to_target": summarise([s for s, _ in reached]),
            "seconds_to_target": summarise([t for _, t in reached]),
            "final_loss": summarise([r["final_val_loss"] for r in records if not r["diverged"]]),
            "shift": summarise([r["shift"] for r in records]),
        }
    report = {"settings": settings, "variants": variants, "target_loss": target, "rows": rows,
              "init_gradients": init_gradients or {}, "seconds": seconds, "partial": not finished}
    report["findings"] = findings(report)
    return report


def _mean(rows: dict[str, Any], names: list[str], key: str) -> float | None:
    values = [rows[n][key]["mean"] for n in names if n in rows and rows[n][key]["mean"] is not None]
    return sum(values) / len(values) if values else None


def findings(report: dict[str, Any]) -> list[str]:
    """The answer to note 004 in plain words, from the numbers (each sentence says what it compares)."""
    rows, settings, out = report["rows"], report["settings"], []
    if settings.get("seeds", 1) < 2:
        out.append("Caution: one seed per variant; the spread over seeds is unknown.")

    def names(label: str, warm: bool | None = None) -> list[str]:
        return [v for v in report["variants"] if v.split("-wu")[0] == label
                and (warm is None or (int(v.split("-wu")[1].split("-")[0]) > 0) == warm)]

    for label in settings.get("norms", []):
        group = names(label)
        diverged = sum(rows[v]["diverged"]["k"] for v in group)
        total = sum(rows[v]["seeds"] for v in group)
        steps = _mean(rows, group, "steps_to_target")
        out.append(f"{label}: {diverged}/{total} runs diverged; mean steps to the target loss (where reached) "
                   + (f"{steps:.0f}" if steps is not None else "never reached") + "; mean covariate shift "
                   + (f"{_mean(rows, group, 'shift'):.3f}" if _mean(rows, group, "shift") is not None else "–") + ".")
    for label in ("pre", "none", "post"):
        if label not in settings.get("norms", []):
            continue
        group = names(label)
        best = min((v for v in group if rows[v]["final_loss"]["mean"] is not None),
                   key=lambda v: rows[v]["final_loss"]["mean"], default=None)
        reached = sum(1 for v in group if rows[v]["reached"])
        failed = sum(rows[v]["failed"] for v in group)
        if best is not None:
            steps = rows[best]["steps_to_target"]["mean"]
            out.append(f"{label}: reaches the target in {reached} of {len(group)} settings (warmup × lr × depth); "
                       f"{failed} runs failed to train (diverged, or ended > {STALLED:g} nat above the target); best "
                       f"final loss {rows[best]['final_loss']['mean']:.3f} ({best}"
                       + (f", target reached at step {steps:.0f}" if steps is not None else "") + ").")
    if "post" in settings.get("norms", []):
        cold = names("post", warm=False)
        k = sum(rows[v]["diverged"]["k"] for v in cold)
        stalled = sum(rows[v]["failed"] for v in cold)
        total = sum(rows[v]["seeds"] for v in cold)
        out.append(f"Post-LN without warmup: {k}/{total} runs diverged, {stalled} failed; "
                   f"mean final loss {_fmt(_mean(rows, cold, 'final_loss'))} against "
                   f"{_fmt(_mean(rows, names('pre', warm=False), 'final_loss'))} for pre-LN without warmup.")
    if "pre+noise" in settings.get("norms", []) and "pre" in settings.get("norms", []):
        noisy, pre = _mean(rows, names("pre+noise"), "final_loss"), _mean(rows, names("pre"), "final_loss")
        shift_noisy, shift_pre = _mean(rows, names("pre+noise"), "shift"), _mean(rows, names("pre"), "shift")
        out.append(f"Santurkar's test: noise of a changing mean and variance after every norm gives final loss "
                   f"{_fmt(noisy)} against {_fmt(pre)} without it (covariate shift {_fmt(shift_noisy)} vs "
                   f"{_fmt(shift_pre)}).")
    grads = report.get("init_gradients") or {}
    for label, by_depth in grads.items():
        deepest = max(by_depth, key=int)
        norms = by_depth[deepest]
        if norms and norms[0] > 0:
            out.append(f"Gradient norm at init, {label}, {deepest} layers: last/first layer = "
                       f"{norms[-1] / norms[0]:.2f}.")
    return out


def _fmt(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "–"


def render_markdown(report: dict[str, Any], command: str) -> str:
    lines = ["# Normalization: where it sits, and does it speed up convergence? (note 004)", "", f"`{command}`", "",
             f"Target loss: {_fmt(report['target_loss'])} (the worst final validation loss of pre-LN with warmup).",
             f"A run *failed* when it diverged or ended more than {STALLED:g} nat above the target.", "",
             "| variant | diverged | failed | reached | steps to target | seconds to target | final loss | shift |",
             "|---|---|---|---|---|---|---|---|"]
    for variant in report["variants"]:
        row = report["rows"][variant]
        d = row["diverged"]
        lines.append(f"| {variant} | {d['k']}/{row['seeds']} | {row['failed']}/{row['seeds']} | "
                     f"{row['reached']}/{row['seeds']} | "
                     f"{_cell(row['steps_to_target'], '{:.0f}')} | {_cell(row['seconds_to_target'], '{:.1f}')} | "
                     f"{_cell(row['final_loss'], '{:.3f}')} | {_cell(row['shift'], '{:.3f}')} |")
    grads = report.get("init_gradients") or {}
    if grads:
        lines += ["", "## Gradient norm per layer at initialisation (Xiong et al. Fig. 3 in miniature)", ""]
        for label, by_depth in grads.items():
            for depth, norms in by_depth.items():
                lines.append(f"- {label}, {depth} layers: " + ", ".join(f"{g:.3g}" for g in norms))
    lines += ["", "## Reading", ""] + [f"- {s}" for s in report["findings"]]
    return "\n".join(lines) + "\n"


def _cell(stat: dict[str, Any], fmt: str) -> str:
    if stat["mean"] is None:
        return "–"
    return fmt.format(stat["mean"]) + (" ± " + fmt.format(stat["sd"]) if stat["n"] > 1 else "")
