"""`minitx info RUN|DATA_DIR`: a run's configuration, size, progress and last losses, or what a prepared data
directory holds -- without importing torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from minitx import rundir
from minitx.commands.display import fmt, make_console
from minitx.console import safe
from minitx.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console


def info(path: Path, as_json: bool = False, console: Console | None = None) -> None:
    """`minitx info`: a prepared data directory (minitx prepare) or a run directory (minitx train)."""
    from minitx.tokens import store

    looks_prepared = (Path(path) / store.TRAIN_BIN).exists() and not rundir.is_run_dir(path)
    if store.is_prepared_dir(path) or looks_prepared:  # the second: say what is missing
        data_info(path, as_json, console)
    else:
        run_info(path, as_json, console)


def data_info(data_dir: Path, as_json: bool = False, console: Console | None = None) -> None:
    """Sources, tokens, dtype, bytes per token and documents of a prepared data directory."""
    from minitx.commands.prepare import prepared_summary
    from minitx.tokens import store

    meta = store.read_meta(data_dir)
    if as_json:
        print(json.dumps(meta, indent=2, ensure_ascii=False))
        return
    (console or make_console()).print(prepared_summary(Path(data_dir), meta))


def run_info(run_dir: Path, as_json: bool = False, console: Console | None = None) -> None:
    """Configuration, parameter count, steps done, last losses of a run."""
    console = console if console is not None else make_console()
    run = rundir.load_run(run_dir)
    latest = rundir.latest_checkpoint(run.path)  # the newest complete checkpoint
    checkpoint = latest or run.path
    try:  # from the weights file's header: no model is built, torch is not even imported
        parameters = f"{rundir.parameter_count(checkpoint / rundir.WEIGHTS):,}"
    except UserError:
        parameters = f"- ({rundir.WEIGHTS} is missing or damaged)"  # show what else is known
    state_path = checkpoint / rundir.TRAINER_STATE
    try:
        state = json.loads(state_path.read_text(encoding="utf-8")) if state_path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        state = {}  # a damaged trainer_state.json: show what else is known
    metrics = rundir.read_metrics(run_dir)
    last = metrics[-1] if metrics else {}
    if as_json:
        print(json.dumps({"config": run.raw_config, "parameters": parameters, "trainer_state": state,
                          "last_metrics": last}, indent=2, ensure_ascii=False))
        return

    table = Table(title=f"run {safe(run_dir)}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("minitx version", safe(run.raw_config.get("minitx_version", "?")))
    for key, value in run.model_config.to_dict().items():
        table.add_row(f"model.{key}", safe(value))
    table.add_row("tokenizer", f"{run.tokenizer.kind}, {run.tokenizer.vocab_size:,} tokens")
    table.add_row("parameters", parameters)
    imported = run.raw_config.get("imported_from")
    if isinstance(imported, dict):  # weights from a transformers checkpoint (minitx import-hf): no training here
        source = f"{imported.get('architecture', '?')} checkpoint {imported.get('path', '?')}"
        table.add_row("imported from", Text(source))
        console.print(table)
        return
    tc = run.train_config
    table.add_row("recipe", f"preset {safe(tc.preset)}, batch {tc.batch_size}×{tc.grad_accum}, "
                            f"lr {tc.lr:g}→{tc.min_lr:g}, warmup {tc.warmup}, wd {tc.weight_decay:g}, "
                            f"beta2 {tc.beta2:g}, seed {tc.seed}")
    table.add_row("corpus", safe(tc.corpus or "?"))
    where = "none yet" if latest is None else "top of the run directory (format 1)" if latest == run.path else None
    table.add_row("checkpoint", where or safe(checkpoint.relative_to(run.path)))
    if tc.prepared_data:
        table.add_row("prepared tokens", safe(tc.prepared_data))
    table.add_row("steps done", f"{state.get('step', 0):,} / {tc.steps:,}")
    table.add_row("last train loss", fmt(last.get("train_loss", state.get("last_train_loss"))))
    table.add_row("last val loss", fmt(last.get("val_loss")))
    table.add_row("last val bits/byte", fmt(last.get("val_bpb"), 3))
    console.print(table)
