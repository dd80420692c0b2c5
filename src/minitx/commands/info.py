"""`minitx info RUN|DATA_DIR`: a run's configuration, size, progress and last losses, or what a prepared data
directory holds -- without importing torch; `--png` draws the training curves of runs, `--device` shows the
measured matmul peak that MFU is relative to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from minitx import rundir
from minitx.commands.display import fmt, make_console, percent
from minitx.console import safe
from minitx.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console


def info_command(paths: list[Path], as_json: bool = False, png: Path | None = None, device: bool = False) -> None:
    """`minitx info PATH... [--png FILE] [--device]`: each path in turn, the curves of the runs, the device peak."""
    if png is not None and not paths:
        raise UserError("--png draws the curves of runs: give one or more run directories")
    if not paths and not device:
        raise UserError("give a run directory or data directory to show (or --device for this machine's peak)")
    if png is not None:
        write_curves(paths, png)
    else:
        for path in paths:
            info(path, as_json)
    if device:
        device_info(as_json)


def write_curves(paths: list[Path], png: Path, console: Console | None = None) -> None:
    """Train/val loss, lr, tokens/s and MFU of the runs in `paths`, overlaid in one PNG."""
    from minitx.fileio import atomic_write_bytes
    from minitx.training.curves import curves_png

    if Path(png).suffix.lower() != ".png":
        raise UserError(f"--png {png}: the file name must end in .png")
    runs = []
    for path in paths:
        run = rundir.load_run(path)  # a UserError for what is not a run directory
        records = rundir.read_metrics(run.path)
        if not records:
            raise UserError(f"{path} has no evaluations in {rundir.METRICS} yet; train it for --eval-every steps")
        runs.append((_label(Path(path), paths), records))
    atomic_write_bytes(png, curves_png(runs))
    points = sum(len(r) for _, r in runs)
    (console or make_console()).print(f"wrote {safe(png)}: {len(runs)} run{'s' if len(runs) > 1 else ''}, "
                                      f"{points} evaluations", highlight=False, soft_wrap=True)


def _label(path: Path, paths: list[Path]) -> str:
    """A run's name in the legend: its directory name, or more of its path when two names are alike."""
    names = [Path(p).resolve().name for p in paths]
    resolved = path.resolve()
    return resolved.name if names.count(resolved.name) == 1 else f"{resolved.parent.name}/{resolved.name}"


def device_info(as_json: bool = False, console: Console | None = None) -> None:
    """The matmul peaks measured on this machine (the denominators of MFU); measures the default one if new."""
    from minitx.device import apply_threads, auto_dtype, resolve_device
    from minitx.training import mfu

    device = resolve_device("auto")
    apply_threads(0)  # the threads a plain `minitx train` would use
    measured_now = mfu.matmul_peak(device, "float32", measure=False) is None
    current = mfu.matmul_peak(device, "float32")
    peaks = mfu.cached_peaks() or {mfu.peak_key(device, "float32"): current.__dict__}
    if as_json:
        print(json.dumps(peaks, indent=2, ensure_ascii=False))
        return
    console = console if console is not None else make_console()
    table = Table(title="matmul peaks measured on this machine (MFU is relative to these)", title_justify="left")
    for column in ("device", "dtype", "threads", "peak GFLOP/s", "matmul", "measured (UTC)"):
        table.add_column(column, justify="right" if column in ("threads", "peak GFLOP/s") else "left")
    for peak in peaks.values():
        table.add_row(safe(peak.get("device_name", "?")), safe(peak.get("dtype", "?")), safe(peak.get("threads", "?")),
                      f"{peak.get('flops', 0) / 1e9:,.1f}", f"{peak.get('size', '?')}²",
                      safe(str(peak.get("measured_at", "?"))[:16].replace("T", " ")))
    console.print(table)
    how = f"measured now in {current.seconds:.1f} s" if measured_now else "cached"
    console.print(f"{device}: {current.flops / 1e9:,.1f} GFLOP/s float32 at {current.threads} threads ({how}; "
                  f"file {safe(mfu.cache_root() / mfu.PEAK_FILE)})", highlight=False, soft_wrap=True)
    auto = auto_dtype(device)
    console.print(f"--dtype auto trains in {auto.dtype} here: {safe(auto.reason)}", highlight=False, soft_wrap=True)


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
    if last.get("ms_per_step") is not None:
        table.add_row("last speed", f"{last['ms_per_step']:.1f} ms/step, {last.get('tokens_per_second', 0):,.0f} "
                                    f"tokens/s, MFU {percent(last.get('mfu'))}")
    if tc.optimizer != "adamw":
        table.add_row("optimizer", f"{safe(tc.optimizer)}, lr {tc.muon_lr:g} (AdamW for the rest at lr {tc.lr:g})")
    console.print(table)
