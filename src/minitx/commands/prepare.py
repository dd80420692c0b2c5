"""`minitx prepare`: a corpus of any size -> token files a memory map reads; and the progress bar for it."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from minitx.commands.display import make_console
from minitx.console import safe

if TYPE_CHECKING:
    from collections.abc import Iterator

    from rich.console import Console
    from rich.progress import Task

    from minitx.tokens.prepare import Progress


def prepare(corpus: list[str], *, tokenizer: str, out: Path, val_fraction: float, text_field: str, force: bool,
            quiet: bool) -> int:
    """`minitx prepare CORPUS... --tokenizer PATH|char --out DATA_DIR`; the exit code (130: Ctrl-C, nothing written)."""
    from minitx.tokens.prepare import check_out_dir, prepare
    from minitx.tokens.sources import expand_sources
    from minitx.tokens.vocab import train_tokenizer

    console = make_console(stderr=True)
    sources = expand_sources(corpus)
    check_out_dir(Path(out), force)  # before a char tokenizer reads the whole corpus
    if tokenizer == "char":
        console.print("building a char tokenizer: reading the corpus once for its characters")
        tok, _ = train_tokenizer(sources, kind="char", vocab_size=0, text_field=text_field)
    else:
        from minitx.commands.tokenize import load_tokenizer

        tok = load_tokenizer(tokenizer)
    try:
        with prepare_progress(console, quiet) as progress:
            meta = prepare(sources, tok, out, val_fraction=val_fraction, text_field=text_field, force=force,
                           progress=progress)
    except KeyboardInterrupt:  # prepare removed its partial files; DATA_DIR is as it was
        console.print(f"interrupted: nothing was written, {safe(str(out))} is unchanged")
        return 130
    make_console().print(prepared_summary(Path(out), meta))
    return 0


@contextmanager
def prepare_progress(console: Console, quiet: bool) -> Iterator[Progress | None]:
    """A rich progress bar fed by `tokens.prepare`'s callback: MB read, MB/s, tokens, ETA."""
    if quiet:
        yield None
        return
    from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.text import Text

    class MegabytesPerSecond(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("-- MB/s" if speed is None else f"{speed / 1e6:.1f} MB/s")

    bar = Progress(TextColumn("tokenizing"), BarColumn(), TextColumn("{task.fields[done]}"), MegabytesPerSecond(),
                   TextColumn("{task.fields[tokens]} tokens"), TimeElapsedColumn(), TextColumn("ETA"),
                   TimeRemainingColumn(), console=console, transient=True)
    task = bar.add_task("prepare", total=None, done="0 MB", tokens="0")

    def update(bytes_read: int, total: int | None, tokens: int) -> None:
        done = f"{bytes_read / 1e6:,.0f}" + (f"/{total / 1e6:,.0f} MB" if total else " MB")
        bar.update(task, completed=bytes_read, total=total, done=done, tokens=f"{tokens:,}")

    with bar:
        yield update


def prepared_summary(path: Path, meta: dict[str, Any]) -> Table:
    """What a prepared data directory holds: tokens, dtype, bytes per token, documents, sources."""
    tokens = meta["tokens"]
    table = Table(title=f"prepared tokens {safe(str(path))}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("tokens", f"{tokens['total']:,} (train {tokens['train']:,}, val {tokens['val']:,}: "
                            f"--val-fraction {meta['val_fraction']:g})")
    table.add_row("text", f"{meta['text_bytes']:,} bytes, {meta['text_bytes'] / max(1, tokens['total']):.3f} "
                          "bytes per token")
    itemsize = 2 if meta["dtype"] == "uint16" else 4
    table.add_row("token files", f"{meta['dtype']}, {tokens['total'] * itemsize:,} bytes")
    table.add_row("tokenizer", f"{meta['tokenizer_kind']}, {meta['vocab_size']:,} ids, "
                               f"sha256 {meta['tokenizer_sha256'][:12]}")
    docs = meta.get("documents")
    table.add_row("documents", f"{docs['count']:,} (starting with {safe(docs['token'])})" if docs else "-")
    sources = meta["sources"]
    shown = ", ".join(safe(s["path"]) for s in sources[:3]) + (f", ... ({len(sources)} in all)"
                                                               if len(sources) > 3 else "")
    table.add_row("sources", shown)
    table.add_row("seconds", f"{meta['seconds']:.1f}")
    return table
