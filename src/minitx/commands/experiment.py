"""`minitx experiment positions`: the positional-encoding lab, with a live view and a report at the end."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from minitx.commands.display import make_console
from minitx.errors import UserError, require_file

if TYPE_CHECKING:
    from rich.console import Console

    from minitx.experiments.positions import RunStatus


#: What the report of the lab consists of, in its --out directory.
REPORT_FILES = ("report.json", "report.md", "curves.png", "metrics.png")
#: The sha256 of each report file as the lab last wrote it: a rerun rewrites only files that still match.
WRITTEN = ".report-sha256.json"


def run_positions(
    files: list[Path], *, out: Path, kinds: str | None, seeds: int | None, flags: dict[str, Any],
    corpus_bytes: int | None, pairs: int | None, stories: int | None, quiet: bool, force: bool = False,
) -> int:
    """Run (or continue) the experiment in `out`, write the report, print the table; return the exit code.

    `flags` are `minitx train`'s model and optimiser flags by field name (None: not given). A rerun
    rewrites the report; a report file changed since the lab wrote it is refused (before any work)
    unless `force`.
    """
    from minitx.config import Arch, ModelConfig, TrainConfig, given
    from minitx.experiments.measure import LabSettings
    from minitx.experiments.positions import (
        DEFAULT_CORPUS_BYTES,
        DEFAULT_MODEL,
        DEFAULT_SEEDS,
        DEFAULT_TRAIN,
        DEFAULT_VOCAB,
        PositionsExperiment,
        run_experiment,
    )
    from minitx.model.registry import architecture

    arch = architecture(flags.get("arch") or Arch.gpt.value)
    if not arch.serves("experiment positions"):
        raise UserError(f"minitx experiment positions has no lab for {arch.label} model; choose another --arch")
    if arch.reads_source:
        if files or corpus_bytes is not None or stories is not None:
            raise UserError("the encoder-decoder lab trains on the built-in translation pairs; drop FILES, "
                            "--corpus-bytes and --stories")
        return run_translation_lab(out=out, kinds=kinds, seeds=seeds, flags=flags, pairs=pairs, quiet=quiet)
    if not arch.has_stack("encoder") and (flags.get("encoder_pos") is not None
                                          or flags.get("encoder_layers") is not None):
        raise UserError("--encoder-pos and --encoder-layers shape an encoder; add --arch encoder-decoder")
    for f in files:
        require_file(f, "corpus file")
    check_report_files(out, force)
    model_flags, train_flags = given(flags, ModelConfig), given(flags, TrainConfig)
    lab = LabSettings()
    experiment = PositionsExperiment(
        kinds=[k.strip() for k in kinds.split(",") if k.strip()] if kinds else PositionsExperiment().kinds,
        seeds=seeds if seeds is not None else DEFAULT_SEEDS,
        model={**DEFAULT_MODEL, **{k: v for k, v in model_flags.items() if k != "vocab_size"}},
        train={**DEFAULT_TRAIN, **train_flags},
        vocab_size=model_flags.get("vocab_size", DEFAULT_VOCAB),
        corpus_files=[str(f.resolve()) for f in files],
        corpus_bytes=corpus_bytes or DEFAULT_CORPUS_BYTES,
        lab=LabSettings(pairs=pairs if pairs is not None else lab.pairs,
                        stories=stories if stories is not None else lab.stories),
    )
    if "eval_every" not in train_flags:
        experiment.train["eval_every"] = max(1, experiment.train["steps"] // 12)  # about a dozen curve points
    if "save_every" not in train_flags:
        experiment.train["save_every"] = max(1, experiment.train["steps"] // 6)
    console = make_console()
    from minitx.commands.progress import TrainDisplay

    result = run_experiment(out, experiment, LiveView(console), show_progress=not quiet,
                            progress=lambda: TrainDisplay(console))
    if result.runs:  # after Ctrl-C: a report of the runs measured so far, marked partial
        write_report(out, experiment, result, console)
    if not result.finished:
        console.print(f"stopped (Ctrl-C) with the current run saved; {len(result.runs)} of "
                      f"{len(experiment.run_names())} runs are in the report; continue with the same command: "
                      f"{escape(_command_line())}")
        return 130
    return 0


def run_translation_lab(*, out: Path, kinds: str | None, seeds: int | None, flags: dict[str, Any],
                        pairs: int | None, quiet: bool) -> int:
    """`minitx experiment positions --arch encoder-decoder`: every variant and seed, then the report."""
    from minitx.config import ModelConfig, TrainConfig, given
    from minitx.experiments.translation_lab import DEFAULT_MODEL, DEFAULT_TRAIN, TranslationLab, run_lab
    from minitx.experiments.translation_report import build_report, render_markdown
    from minitx.model.positions import encoding_class

    model_flags, train_flags = given(flags, ModelConfig), given(flags, TrainConfig)
    encoder_pos = model_flags.pop("encoder_pos", None)
    if encoder_pos is not None and encoding_class(encoder_pos).has_signal:
        raise UserError(f"--encoder-pos {encoder_pos}: the lab varies positions itself; --encoder-pos none keeps "
                        "only the encoder-without-positions variants beside each kind")
    lab = TranslationLab(
        kinds=[k.strip() for k in kinds.split(",") if k.strip()] if kinds else TranslationLab().kinds,
        seeds=seeds if seeds is not None else 2,
        model={**DEFAULT_MODEL, **{k: v for k, v in model_flags.items() if k != "vocab_size"}},
        train={**DEFAULT_TRAIN, **train_flags},
        vocab_size=model_flags.get("vocab_size", TranslationLab().vocab_size),
        test_pairs=pairs if pairs is not None else TranslationLab().test_pairs,
    )
    if "save_every" not in train_flags:
        lab.train["save_every"] = max(1, lab.train["steps"] // 3)
    if "eval_every" not in train_flags:
        lab.train["eval_every"] = max(1, lab.train["steps"] // 6)
    console = make_console()
    finished, runs, seconds = run_lab(out, lab, TranslationView(console), show_progress=not quiet)
    if runs:
        from dataclasses import asdict

        report = build_report(asdict(lab), [name for name, _, _ in lab.variants()], runs, seconds, finished)
        save_report(out, report, render_markdown)
        print_translation_table(report, console)
        console.print(f"report: {escape(str(out / 'report.md'))}, {escape(str(out / 'report.json'))}")
    return exit_code(finished, console)


def print_translation_table(report: dict[str, Any], console: Console) -> None:
    from rich.table import Table

    from minitx.experiments.translation_report import METRICS, cell

    table = Table(title=f"encoder-decoder positions lab: mean ± sd over {report['settings']['seeds']} seed(s)",
                  title_justify="left")
    shown = [m for m in METRICS if m[0] in ("exact_match", "chrf", "em_two_set", "best_aer")]  # report.md has all
    table.add_column("variant", style="bold")
    for _, title, _ in shown:
        table.add_column(title, justify="right")
    for variant in report["variants"]:
        table.add_row(variant, *(cell(report["rows"][variant][key], fmt) for key, _, fmt in shown))
    console.print(table)
    for sentence in report["findings"]:
        console.print(f"• {escape(sentence)}")


class TranslationView:
    """Prints which run of the encoder-decoder lab is going, and each run's headline numbers."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def preparing(self, what: str) -> None:
        self.console.print(f"[dim]{escape(what)}[/]")

    def run_started(self, index: int, total: int, status: RunStatus, eta_seconds: float | None) -> None:
        eta = f" · ETA {eta_seconds / 60:.1f} min" if eta_seconds is not None else ""
        self.console.rule(f"run {index + 1}/{total}: {escape(status.kind)} · seed {status.seed} · {status.state}{eta}")

    def measuring(self, status: RunStatus) -> None:
        self.console.print(f"[dim]measuring {escape(status.name)}: translations, 2+ phrase test set, AER[/]")

    def run_done(self, status: RunStatus, lab: dict[str, Any]) -> None:
        outputs = lab["eval"]["outputs"]
        self.console.print(f"{escape(status.name)}: exact match {outputs['exact_match']['share']:.1%} · chrF "
                           f"{outputs['chrf']['score']:.1f} · 2+ set {lab['two_phrases']['exact_match']['share']:.1%}"
                           f" · best head AER {lab['alignment']['best_head']['aer']:.3f}")


def write_report(out: Path, experiment: Any, result: Any, console: Console) -> None:
    """report.json, report.md and the PNGs; then the table and the reading on the terminal."""
    from minitx.experiments.plots import save_pictures
    from minitx.experiments.report import build_report, render_markdown
    from minitx.fileio import atomic_write_json, atomic_write_text

    data = experiment.to_dict()
    report = build_report(data, result.runs, result.seconds, pictures=[], partial=not result.finished)
    report["pictures"] = save_pictures(report, out)
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", render_markdown(report, _command_line()))
    record_report_files(out)
    print_table(report, console)
    console.print(f"report: {escape(str(out / 'report.md'))}, {escape(str(out / 'report.json'))}"
                  + ("" if report["pictures"] else " (no PNGs: pip install 'minitx[plot]')"))


def check_report_files(out: Path, force: bool) -> None:
    """The lab's rule for its report: rewrite its own files; refuse one changed since (or not written by it)."""
    from minitx.errors import UserError
    from minitx.fileio import refuse_existing

    recorded = _recorded(out)
    for name in REPORT_FILES:
        path = out / name
        if path.is_file() and recorded.get(name) != _sha256(path):
            try:
                refuse_existing(path, force)
            except UserError:
                raise UserError(f"{path} was changed since the lab wrote it (or not written by it); pass --force to "
                                "overwrite it, or move it away") from None


def record_report_files(out: Path) -> None:
    """Note the sha256 of every report file just written (WRITTEN)."""
    from minitx.fileio import atomic_write_json

    atomic_write_json(out / WRITTEN, {name: _sha256(out / name) for name in REPORT_FILES if (out / name).is_file()})


def _recorded(out: Path) -> dict[str, str]:
    import json

    try:
        recorded = json.loads((out / WRITTEN).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def print_table(report: dict[str, Any], console: Console) -> None:
    from rich.table import Table

    from minitx.experiments.report import METRICS, cell

    table = Table(title=f"positional-encoding lab: mean ± sd over {report['seeds']} seed(s)", title_justify="left")
    table.add_column("kind", style="bold")
    for _, _, short, _, _ in METRICS:
        table.add_column(short, justify="right")
    for kind in report["kinds"]:
        table.add_row(kind, *(cell(report["rows"][kind][key], fmt) for key, _, _, fmt, _ in METRICS))
    console.print(table)
    for sentence in report["findings"]:
        console.print(f"• {escape(sentence)}")


def run_attention(*, out: Path, archs: str | None, seeds: int | None, short_words: int | None,
                  per_bucket: int | None, quick: bool, flags: dict[str, Any], quiet: bool) -> int:
    """`minitx experiment attention`: every variant and seed, then report.md|json, length.png and the table."""
    from dataclasses import asdict

    from minitx.config import TrainConfig, given
    from minitx.experiments.attention import (
        DEFAULT_TRAIN,
        AttentionExperiment,
        build_report,
        render_markdown,
        save_length_plot,
    )
    from minitx.experiments.engine import run_experiment

    base = AttentionExperiment()
    if quick:
        base = AttentionExperiment(seeds=1, train={**DEFAULT_TRAIN, "steps": 30, "eval_every": 15, "save_every": 30},
                                   train_pairs=600, per_bucket=5, align_pairs=5)
    experiment = AttentionExperiment(
        archs=[a.strip() for a in archs.split(",") if a.strip()] if archs else base.archs,
        seeds=seeds if seeds is not None else base.seeds,
        model=base.model,
        train={**base.train, **given(flags, TrainConfig)},
        train_pairs=base.train_pairs,
        short_words=base.short_words if short_words is None else (short_words or None),
        per_bucket=per_bucket if per_bucket is not None else base.per_bucket,
        align_pairs=base.align_pairs,
    )
    console = make_console()
    result = run_experiment(out, experiment, EngineView(console, _attention_line), show_progress=not quiet)
    if result.runs:
        variants = [name for name, _, _ in experiment.variants()]
        report = build_report(asdict(experiment), variants, result.runs, result.seconds, result.finished)
        report["pictures"] = ["length.png"] if save_length_plot(report, out / "length.png") else []
        save_report(out, report, render_markdown)
        print_markdown_tables(out / "report.md", console)
        console.print(f"report: {escape(str(out / 'report.md'))}, {escape(str(out / 'report.json'))}"
                      + (f", {escape(str(out / 'length.png'))}" if report["pictures"] else ""))
    return exit_code(result.finished, console)


def run_norm(*, out: Path, norms: str | None, seeds: int | None, steps: int | None, threads: int | None,
             quick: bool, quiet: bool) -> int:
    """`minitx experiment norm`: every variant and seed, then report.md|json and the table."""
    import json
    from dataclasses import asdict

    from minitx.experiments.engine import run_experiment
    from minitx.experiments.norm import DEFAULT_TRAIN, NormExperiment, build_report, render_markdown

    base = NormExperiment()
    if quick:
        base = NormExperiment(seeds=1, lrs=[1e-2], depths=[4], corpus_bytes=150_000, init_depths=[2, 6, 12],
                              train={**DEFAULT_TRAIN, "steps": 60, "eval_every": 10, "save_every": 20})
    train = dict(base.train)
    if steps is not None:
        train.update(steps=steps, eval_every=max(1, steps // 12), save_every=max(1, steps // 6))
    if threads is not None:
        train["threads"] = threads
    experiment = NormExperiment(
        norms=[n.strip() for n in norms.split(",") if n.strip()] if norms else base.norms,
        warmups=base.warmups, lrs=base.lrs, depths=base.depths,
        seeds=seeds if seeds is not None else base.seeds, train=train, corpus_bytes=base.corpus_bytes,
        init_depths=base.init_depths)
    console = make_console()
    result = run_experiment(out, experiment, EngineView(console, _norm_line), show_progress=not quiet)
    if result.runs:
        grads = json.loads((out / "init_gradients.json").read_text(encoding="utf-8"))
        variants = [name for name, _ in experiment.variants()]
        report = build_report(asdict(experiment), variants, result.runs, result.seconds, result.finished, grads)
        save_report(out, report, render_markdown)
        print_markdown_tables(out / "report.md", console)
        console.print(f"report: {escape(str(out / 'report.md'))}, {escape(str(out / 'report.json'))}")
    return exit_code(result.finished, console)


def run_heads(*, out: Path, heads: str | None, tasks: str | None, seeds: int | None, steps: int | None,
              threads: int | None, quick: bool, quiet: bool) -> int:
    """`minitx experiment heads`: every variant and seed, then report.md|json and the table."""
    from dataclasses import asdict

    from minitx.experiments.engine import run_experiment
    from minitx.experiments.heads import DEFAULT_TRAIN, HeadsExperiment, build_report, render_markdown

    base = HeadsExperiment()
    if quick:
        base = HeadsExperiment(seeds=1, train={**DEFAULT_TRAIN, "steps": 60, "eval_every": 30, "save_every": 60},
                               corpus_bytes=200_000, pairs=120, stories=5, test_pairs=40, align_pairs=10,
                               prune_pairs=30)
    train, mt = dict(base.train), dict(base.mt)  # the translator's recipe is its own (the translate preset's)
    if quick:
        mt.update(steps=60, batch_size=32, eval_every=30, save_every=60)
    if steps is not None:
        for recipe in (train, mt):
            recipe.update(steps=steps, eval_every=max(1, steps // 5), save_every=max(1, steps // 2))
    if threads is not None:
        train["threads"] = threads
    try:
        head_counts = [int(h) for h in heads.split(",") if h.strip()] if heads else base.heads
    except ValueError:
        raise UserError(f"--heads takes comma-separated whole numbers, e.g. 1,2,4,8; not {heads!r}") from None
    experiment = HeadsExperiment(
        heads=head_counts, tasks=[t.strip() for t in tasks.split(",") if t.strip()] if tasks else base.tasks,
        seeds=seeds if seeds is not None else base.seeds, train=train, mt=mt, corpus_bytes=base.corpus_bytes,
        pairs=base.pairs, stories=base.stories, test_pairs=base.test_pairs, align_pairs=base.align_pairs,
        prune_pairs=base.prune_pairs)
    console = make_console()
    result = run_experiment(out, experiment, EngineView(console, _heads_line), show_progress=not quiet)
    if result.runs:
        variants = [name for name, _, _ in experiment.variants()]
        report = build_report(asdict(experiment), variants, result.runs, result.seconds, result.finished)
        save_report(out, report, render_markdown)
        print_markdown_tables(out / "report.md", console)
        console.print(f"report: {escape(str(out / 'report.md'))}, {escape(str(out / 'report.json'))}")
    return exit_code(result.finished, console)


def _heads_line(lab: dict[str, Any]) -> str:
    if lab["task"] == "lm":
        far = lab["minimal_pairs"]["by_phenomenon"].get("agreement_far", {}).get("accuracy")
        return f"val loss {lab['val_loss']:.3f}" + (f" · agreement far {far:.1%}" if far is not None else "")
    aer = f" · best cross AER {lab['best_aer']:.3f}" if lab.get("best_aer") is not None else ""
    return f"exact match {lab['exact_match']['share']:.1%}{aer}"


def _norm_line(lab: dict[str, Any]) -> str:
    final = lab["final_val_loss"]
    shift = lab["shift"]
    return (("diverged" if lab["diverged"] else f"final val loss {final:.3f}")
            + (f" · covariate shift {shift:.3f}" if shift is not None else ""))


def _attention_line(lab: dict[str, Any]) -> str:
    chrf = " ".join(f"{b}:{v['chrf']['score']:.0f}" for b, v in lab["buckets"].items())
    aer = f" · best map AER {lab['best_aer']:.3f}" if lab.get("best_aer") is not None else ""
    return f"chrF by length {chrf}{aer}"


def print_markdown_tables(path: Path, console: Console) -> None:
    """The report's markdown, as it is: its tables read well on a terminal too."""
    console.print(path.read_text(encoding="utf-8"), markup=False, highlight=False)


class EngineView:
    """Prints which run of an experiment is going (new, resumed or reused, with the ETA) and its headline numbers."""

    def __init__(self, console: Console, line: Any) -> None:
        self.console, self.line = console, line

    def preparing(self, what: str) -> None:
        self.console.print(f"[dim]{escape(what)}[/]")

    def run_started(self, index: int, total: int, status: RunStatus, eta_seconds: float | None) -> None:
        doing = {"measured": "done, reused", "trained": "trained, measuring", "partial": "resuming",
                 "new": "training"}[status.state]
        eta = f" · experiment ETA {eta_seconds / 60:.1f} min" if eta_seconds is not None else ""
        self.console.rule(f"run {index + 1}/{total}: {escape(status.kind)} · seed {status.seed} · {doing}{eta}")

    def measuring(self, status: RunStatus) -> None:
        self.console.print(f"[dim]measuring {escape(status.name)}[/]")

    def run_done(self, status: RunStatus, lab: dict[str, Any]) -> None:
        self.console.print(f"{escape(status.name)}: {escape(self.line(lab))}")



def save_report(out: Path, report: dict[str, Any], render_markdown: Callable[[dict[str, Any], str], str]) -> None:
    """An experiment's report as DIR/report.json and DIR/report.md (each written atomically)."""
    from minitx.fileio import atomic_write_json, atomic_write_text

    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", render_markdown(report, _command_line()))


def exit_code(finished: bool, console: Console) -> int:
    """0 when every run finished; after Ctrl-C, one line on how to continue and 130."""
    if finished:
        return 0
    console.print(f"stopped (Ctrl-C) with the current run saved; continue with the same command: "
                  f"{escape(_command_line())}")
    return 130

def _command_line() -> str:
    return "minitx " + " ".join(shlex.quote(a) for a in sys.argv[1:])


class LiveView(EngineView):
    """Prints where the positional lab stands: which run, whether it is new, resumed or reused, and the ETA.

    Each training run shows its own live progress bar (step, loss, ETA) underneath.
    """

    def __init__(self, console: Console) -> None:
        super().__init__(console, line=None)

    def measuring(self, status: RunStatus) -> None:
        self.console.print(f"[dim]measuring {escape(status.name)}: validation, minimal pairs, order test, "
                           "sampled stories, 2× block[/]")

    def run_done(self, status: RunStatus, lab: dict[str, Any]) -> None:
        extra = lab["extrapolation"]["beyond_block_loss"]
        self.console.print(
            f"{escape(status.name)}: val {lab['val_bpb']:.4f} bits/byte · minimal pairs "
            f"{lab['minimal_pairs']['accuracy']:.1%} · order gap {lab['order_test']['words']['bits_per_byte']:.3f} · "
            f"grammatical {lab['grammar']['share']:.1%} · 2× block "
            + (f"{extra:.3f}" if extra is not None else "n/a")
        )
