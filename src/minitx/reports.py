"""Tables the CLI prints: tokenizer summary, training summary, `minitx info`.

Presentation only -- every number here was computed elsewhere; this module decides how it looks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

if TYPE_CHECKING:
    from rich.console import Console

    from .tokenizer import Tokenizer
    from .train import Trainer, TrainResult


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def tokenizer_summary(tok: Tokenizer, text: str, out: Path, seconds: float) -> Table:
    """Vocabulary size, corpus bytes, training seconds and bytes per token on the corpus."""
    n_bytes = len(text.encode("utf-8"))
    n_tokens = len(tok.encode(text))
    table = Table(title=f"tokenizer → {out}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("kind", tok.kind)
    table.add_row("vocabulary size", f"{tok.vocab_size:,}")
    table.add_row("corpus bytes", f"{n_bytes:,}")
    table.add_row("corpus tokens", f"{n_tokens:,}")
    table.add_row("bytes per token", f"{n_bytes / max(1, n_tokens):.3f}")
    table.add_row("seconds", f"{seconds:.2f}")
    return table


def print_train_summary(trainer: Trainer, result: TrainResult, console: Console) -> None:
    """The end-of-training table, and what to do next."""
    mc = trainer.model_config
    title = "training stopped early (Ctrl-C) — checkpoint saved" if result.interrupted else "training done"
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("run directory", str(trainer.run_dir))
    table.add_row("model", f"{mc.n_layers} layers × {mc.n_heads} heads × {mc.dim} wide, block {mc.block_size}, "
                           f"pos {mc.pos}")
    table.add_row("parameters", f"{result.parameters:,}")
    table.add_row("steps", f"{result.step:,} / {result.steps:,}")
    table.add_row("train loss", _fmt(result.train_loss))
    table.add_row("val loss", _fmt(result.val_loss))
    table.add_row("val bits per byte", _fmt(result.val_bpb, 3))
    table.add_row("time", f"{result.seconds:.1f} s")
    table.add_row("tokens / s", f"{result.tokens_per_second:,.0f}")
    compiled = ", torch.compile" if getattr(trainer, "compiled", False) else ""
    table.add_row("device", f"{trainer.device}, {trainer.dtype}, {trainer.threads} threads ({trainer.threads_why})"
                            f"{compiled}")
    console.print(table)
    if result.interrupted:
        console.print(f"continue with: minitx train --out {trainer.run_dir} --resume")
    else:
        console.print(f"next: minitx generate {trainer.run_dir}    minitx eval {trainer.run_dir}")


def print_info(run_dir: Path, console: Console) -> None:
    """`minitx info`: configuration, parameter count, steps done, last losses."""
    from . import checkpoint
    from .errors import UserError

    run = checkpoint.load_run(run_dir)
    try:  # from the weights file's header: no model is built, torch is not even imported
        parameters = f"{checkpoint.parameter_count(Path(run_dir) / checkpoint.WEIGHTS):,}"
    except UserError:
        parameters = f"- ({checkpoint.WEIGHTS} is missing or damaged)"  # show what else is known
    state_path = Path(run_dir) / checkpoint.TRAINER_STATE
    try:
        state = json.loads(state_path.read_text(encoding="utf-8")) if state_path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        state = {}  # a damaged trainer_state.json: show what else is known
    metrics = checkpoint.read_metrics(run_dir)
    last = metrics[-1] if metrics else {}

    table = Table(title=f"run {run_dir}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("minitx version", str(run.raw_config.get("minitx_version", "?")))
    for key, value in run.model_config.to_dict().items():
        table.add_row(f"model.{key}", str(value))
    table.add_row("tokenizer", f"{run.tokenizer.kind}, {run.tokenizer.vocab_size:,} tokens")
    table.add_row("parameters", parameters)
    tc = run.train_config
    table.add_row("recipe", f"preset {tc.preset}, batch {tc.batch_size}×{tc.grad_accum}, lr {tc.lr:g}→{tc.min_lr:g}, "
                            f"warmup {tc.warmup}, wd {tc.weight_decay:g}, beta2 {tc.beta2:g}, seed {tc.seed}")
    table.add_row("corpus", str(tc.extra.get("corpus", "?")))
    table.add_row("steps done", f"{state.get('step', 0):,} / {tc.steps:,}")
    table.add_row("last train loss", _fmt(last.get("train_loss", state.get("last_train_loss"))))
    table.add_row("last val loss", _fmt(last.get("val_loss")))
    table.add_row("last val bits/byte", _fmt(last.get("val_bpb"), 3))
    console.print(table)
