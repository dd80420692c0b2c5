"""`minitx inspect-attention RUN` and `minitx inspect-positions RUN`: look inside a trained model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text

from minitx.commands.loading import load_for_inference
from minitx.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

def run_inspect_attention(
    run_dir: str | Path,
    *,
    prompt: str | None = None,
    layer: int | None = None,
    head: int | None = None,
    png: str | Path | None = None,
    html: str | Path | None = None,
    device: str = "auto",
    max_tokens: int | None = None,
    console: Console | None = None,
    threads: int = 0,
) -> None:
    """`minitx inspect-attention RUN_DIR`: print what every head attends to for `prompt` ("-": stdin).

    Prints how to read the view, the roles grid, one head's heatmap -- the given --layer/--head, or
    the most telling head (`most_telling_head`, within --layer or --head if only one is given) --
    and what the last few tokens read through that head. --png / --html also write those files.
    """
    from rich.console import Console

    from minitx.inspect.attention import (
        DEFAULT_PROMPT,
        HOW_TO_READ,
        MAX_SHOWN_TOKENS,
        attention_heatmap,
        capture_attention,
        check_head,
        readout_line,
        save_attention_png,
    )
    from minitx.inspect.heatmap import cells_that_fit
    from minitx.inspect.html import save_attention_html
    from minitx.inspect.roles import ROLE_RULES, head_roles, most_telling_head, roles_table
    from minitx.text.files import read_stdin

    console = console if console is not None else Console()
    model, run = load_for_inference(run_dir, device, threads)
    text = DEFAULT_PROMPT if prompt is None else read_stdin() if prompt == "-" else prompt
    capture = capture_attention(model, run.tokenizer, text, max_tokens=max_tokens)
    check_head(capture, layer, head)
    if capture.n_tokens < 2:
        raise UserError("the prompt is empty after tokenizing; give --prompt some text")
    roles = head_roles(capture)
    candidates = [r for r in roles if (layer is None or r.layer == layer) and (head is None or r.head == head)]
    chosen = most_telling_head(candidates)

    console.print(Text(HOW_TO_READ))
    note = f"{capture.n_tokens} tokens, {capture.pos} positions"
    console.print(roles_table(roles, capture.n_layers, capture.n_heads, note))
    console.print(Text(ROLE_RULES, style="dim"))
    fits = min(MAX_SHOWN_TOKENS, cells_that_fit(console.width))  # an 80-column terminal shows 31 tokens
    console.print(attention_heatmap(capture, chosen.layer, chosen.head, fits))
    last = range(max(1, capture.n_tokens - 4), capture.n_tokens)
    console.print(Text(f"what the last tokens read through layer {chosen.layer} head {chosen.head}:"))
    for query in last:
        console.print(Text("  " + readout_line(capture, chosen.layer, chosen.head, query)))
    if png is not None:
        console.print(Text(f"wrote {save_attention_png(capture, png, layer=layer)}"))
    if html is not None:
        title = f"attention of {Path(run_dir).name}: {capture.n_tokens} tokens"
        path = save_attention_html(capture, roles, html, title=title, selected=(chosen.layer, chosen.head))
        console.print(Text(f"wrote {path} (open it in a browser; it works offline)"))


def run_inspect_positions(
    run_dir: str | Path,
    *,
    positions: int | None = None,
    png: str | Path | None = None,
    device: str = "auto",
    console: Console | None = None,
    threads: int = 0,
) -> None:
    """`minitx inspect-positions RUN_DIR`: print what the run's positional encoding gives its model.

    Looks at `positions` positions (default: the block size, at most DEFAULT_POSITIONS). --png also
    writes the heatmap(s) there and, unless the model has no positions, the plot by distance beside
    it: pos.png -> pos-by-distance.png.
    """
    from rich.console import Console

    from minitx.inspect.positions import DEFAULT_POSITIONS, inspect_positions, position_report_view

    console = console if console is not None else Console()
    model, _ = load_for_inference(run_dir, device, threads)
    n_positions = positions if positions is not None else min(model.config.block_size, DEFAULT_POSITIONS)
    report = inspect_positions(model, n_positions)
    console.print(position_report_view(report, console.width))
    if png is not None:
        from minitx.inspect.position_pictures import save_distance_png, save_positions_png

        console.print(Text(f"wrote {save_positions_png(report, png)}"))
        if report.has_signal:
            distance_png = Path(png).with_name(f"{Path(png).stem}-by-distance.png")
            console.print(Text(f"wrote {save_distance_png(report, distance_png)}"))
