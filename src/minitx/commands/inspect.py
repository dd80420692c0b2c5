"""`minitx inspect-attention RUN` and `minitx inspect-positions RUN...`: look inside trained models.

These functions load runs (`open_run`), call the API's verbs (`LoadedRun.attention`, `.roles_over`,
`.induction`, `.ablate`, `.alignment_over`; `minitx.api.inside`) and print the results with the views
of `minitx.inspect.views`; they prepare and compute nothing themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text

from minitx.api.inputs import ABLATION_WINDOWS, check_attention_choice, check_max_tokens
from minitx.commands.loading import open_run, run_architecture
from minitx.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

    from minitx.inspect.ablation import AblationReport
    from minitx.inspect.induction import InductionReport
    from minitx.inspect.over_data import RoleSpread
    from minitx.inspect.views.html import Grid
    from minitx.model import GPT


def run_inspect_attention(
    run_dir: str | Path,
    *,
    prompt: str | None = None,
    layer: int | None = None,
    head: int | None = None,
    png: str | Path | None = None,
    html: str | Path | None = None,
    json_path: str | Path | None = None,
    device: str = "auto",
    max_tokens: int | None = None,
    over: int | None = None,
    induction: bool = False,
    length: int | None = None,
    repeats: int | None = None,
    ablate: bool = False,
    generate: int = 0,
    seed: int = 0,
    console: Console | None = None,
    threads: int = 0,
    force: bool = False,
    source: str | None = None,
    target: str | None = None,
    alignment: str | None = None,
) -> None:
    """`minitx inspect-attention RUN_DIR`: print what every head attends to for `prompt` ("-": stdin), and more.

    Prints how to read the view, the roles grid, one head's heatmap -- the given --layer/--head, or
    the most telling head (`most_telling_head`, within --layer or --head if only one is given) --
    and what the last few tokens read through that head. --generate N first samples N tokens after
    the prompt; --over N, --induction and --ablate add their tables; --png / --html / --json also
    write those files (--png with --ablate also FILE-ablation.png), refusing existing ones without `force`.
    """
    import dataclasses

    from rich.console import Console

    from minitx.inspect.capture import check_head
    from minitx.inspect.roles import ROLE_RULES, most_telling_head
    from minitx.inspect.views import terminal
    from minitx.inspect.views.heatmap import cells_that_fit
    from minitx.text.files import read_stdin

    check_attention_choice(over=over, induction=induction, length=length, repeats=repeats, generate=generate)
    arch = run_architecture(run_dir)
    if arch.reads_source:
        refused = {"--prompt": prompt is not None, "--induction": induction, "--ablate": ablate,
                   "--generate": generate > 0, "--max-tokens": max_tokens is not None}
        for flag, given in refused.items():
            if given:
                raise UserError(f"{flag} reads a decoder-only model; {run_dir} is {arch.noun} run: drop it "
                                f"(give the sentence with --source)")
        run_inspect_pair(run_dir, source=source, target=target, alignment=alignment, layer=layer, head=head, png=png,
                         html=html, json_path=json_path, device=device, over=over, seed=seed, console=console,
                         threads=threads, force=force)
        return
    for flag, given in {"--source": source, "--target": target, "--alignment": alignment}.items():
        if given is not None:
            raise UserError(f"{flag} reads an encoder-decoder; {run_dir} is {arch.noun} run: give --prompt instead")
    outputs = {"--png": png, "--html": html, "--json": json_path}
    if png is not None and ablate:
        outputs["--png (with --ablate)"] = Path(png).with_name(f"{Path(png).stem}-ablation.png")
    refuse_existing_outputs(outputs, force)
    check_max_tokens(max_tokens)
    console = console if console is not None else Console()
    run = open_run(run_dir, device, threads, command="minitx inspect-attention")
    check_head_range(run.model, layer, head)
    text = read_stdin() if prompt == "-" else prompt
    result = run.attention(text, max_tokens=max_tokens, generate=generate, seed=seed)
    capture, roles, new_ids = result.capture, result.roles, result.generated
    check_head(capture, layer, head)
    candidates = [r for r in roles if (layer is None or r.layer == layer) and (head is None or r.head == head)]
    chosen = most_telling_head(candidates)

    console.print(Text(terminal.HOW_TO_READ))
    if new_ids:
        console.print(Text(f"sampled {len(new_ids)} tokens after the prompt (seed {seed}): ")
                      + Text(run.tokenizer.decode(new_ids), style="bold"))
    note = f"{capture.n_tokens} tokens, {capture.pos} positions"
    if capture.dropped:  # a prompt longer than the block (or --max-tokens): say what is not shown
        why = "--max-tokens" if max_tokens is not None and max_tokens < run.model.config.block_size else \
            f"the model's block of {run.model.config.block_size}"
        console.print(Text(f"note: the first {capture.dropped} tokens are left out: {why} keeps the last "
                           f"{capture.n_tokens}"), soft_wrap=True)
    console.print(terminal.roles_table(roles, capture.n_layers, capture.n_heads, note))
    console.print(Text(ROLE_RULES, style="dim"))
    fits = min(terminal.MAX_SHOWN_TOKENS, cells_that_fit(console.width))  # an 80-column terminal shows 31 tokens
    console.print(terminal.attention_heatmap(capture, chosen.layer, chosen.head, fits))
    console.print(Text(f"what the last tokens read through layer {chosen.layer} head {chosen.head}:"))
    for query in range(max(1, capture.n_tokens - 4), capture.n_tokens):
        console.print(Text("  " + terminal.readout_line(capture, chosen.layer, chosen.head, query)))

    n_layers, n_heads = capture.n_layers, capture.n_heads
    spreads = run.roles_over(over) if over is not None else None
    if spreads is not None:
        console.print(terminal.spread_table(spreads, n_layers, n_heads, over))
    found = run.induction(length, repeats, seed) if induction else None
    if found is not None:
        console.print(terminal.induction_table(found))
    ablation = run.ablate(over or ABLATION_WINDOWS) if ablate else None
    if ablation is not None:
        console.print(terminal.ablation_table(ablation, n_layers, n_heads))
    result = dataclasses.replace(result, over=spreads, n_windows=over or 0, induction=found, ablation=ablation)

    if png is not None:
        from minitx.inspect.views.pictures import save_ablation_png, save_attention_png

        console.print(Text(f"wrote {save_attention_png(capture, png, layer=layer)}"))
        if ablation is not None:
            ablation_png = Path(png).with_name(f"{Path(png).stem}-ablation.png")
            console.print(Text(f"wrote {save_ablation_png(ablation, n_layers, n_heads, ablation_png)}"))
    if html is not None:
        from minitx.inspect.views.html import save_attention_html

        title = f"attention of {Path(run_dir).name}: {capture.n_tokens} tokens"
        grids = page_grids(spreads, over or 0, found, ablation, n_layers, n_heads)
        path = save_attention_html(capture, roles, html, title=title, selected=(chosen.layer, chosen.head),
                                   grids=grids)
        console.print(Text(f"wrote {path} (open it in a browser; it works offline)"))
    if json_path is not None:
        from minitx.inspect.views.document import save_document

        console.print(Text(f"wrote {save_document(result.to_dict(), json_path)}"))


def refuse_existing_outputs(outputs: dict[str, str | Path | None], force: bool) -> None:
    """Before any work: each file a flag names (flag -> path, None: not asked for) is free, or `force`."""
    from minitx.fileio import refuse_existing

    for flag, path in outputs.items():
        if path is not None:
            refuse_existing(path, force, flag.split()[0])


def check_head_range(model: GPT, layer: int | None, head: int | None) -> None:
    """A UserError naming the valid range when --layer or --head does not exist in `model`."""
    from minitx.inspect.capture import check_layer_head

    check_layer_head(model.config.n_layers, model.config.n_heads, layer, head)


def page_grids(
    spreads: list[RoleSpread] | None,
    n_windows: int,
    found: InductionReport | None,
    ablation: AblationReport | None,
    n_layers: int,
    n_heads: int,
) -> list[Grid]:
    """The extra layers × heads tables of the HTML page: the same figures as the terminal tables."""
    from minitx.inspect.views.html import Grid
    from minitx.inspect.views.terminal import spread_label

    def grid_of(cell_of: dict[tuple[int, int], str]) -> list[list[str]]:
        return [[cell_of[layer, head] for head in range(n_heads)] for layer in range(n_layers)]

    grids = []
    if spreads is not None:
        grids.append(Grid(f"roles over {n_windows} validation windows (mean±spread)",
                          grid_of({(s.layer, s.head): spread_label(s) for s in spreads})))
    if found is not None:
        losses = ", ".join(f"copy {c + 1}: {loss:.2f}" for c, loss in enumerate(found.copy_losses))
        grids.append(Grid(f"induction score on {found.repeats} copies of {found.length} random tokens",
                          grid_of({(h.layer, h.head): f"{h.induction:.2f}" + (" induction" if h.is_induction else "")
                                   for h in found.heads}),
                          [f"loss (nats/token) on {losses}; uniform guess {found.chance_loss:.2f}"]))
    if ablation is not None:
        grids.append(Grid("validation loss rise without the head: mean-ablated/zeroed "
                          f"(base loss {ablation.base_loss:.4f})",
                          grid_of({(h.layer, h.head): f"{h.mean_rise:+.3f}/{h.zero_rise:+.3f}"
                                   for h in ablation.heads})))
    return grids


def run_inspect_positions(
    run_dirs: str | Path | list[str | Path],
    *,
    positions: int | None = None,
    png: str | Path | None = None,
    device: str = "auto",
    console: Console | None = None,
    threads: int = 0,
    force: bool = False,
) -> None:
    """`minitx inspect-positions RUN_DIR...`: print what each run's positional encoding gives its model.

    Looks at `positions` positions (default: the block size, at most DEFAULT_POSITIONS; with several
    runs, the smallest of theirs). One run: its full view; --png also writes the heatmap(s) there and,
    unless the model has no positions, the plot by distance beside it: pos.png -> pos-by-distance.png.
    Several runs: one table and (--png) one picture with the runs side by side.
    """
    from rich.console import Console

    from minitx.inspect.positions import DEFAULT_POSITIONS, inspect_positions
    from minitx.inspect.views import positions as views

    dirs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    if png is not None:  # the by-distance picture is only drawn for a model with positions: refuse it anyway
        by_distance = Path(png).with_name(f"{Path(png).stem}-by-distance.png") if len(dirs) == 1 else None
        refuse_existing_outputs({"--png": png, "--png (by distance)": by_distance}, force)
    console = console if console is not None else Console()
    models = [open_run(run_dir, device, threads, command="minitx inspect-positions").model for run_dir in dirs]
    n_positions = positions if positions is not None else min(
        min(model.config.block_size, DEFAULT_POSITIONS) for model in models)
    reports = [inspect_positions(model, n_positions) for model in models]
    if len(reports) == 1:
        report = reports[0]
        console.print(views.position_report_view(report, console.width))
        if png is not None:
            console.print(Text(f"wrote {views.save_positions_png(report, png)}"))
            if report.has_signal:
                distance_png = Path(png).with_name(f"{Path(png).stem}-by-distance.png")
                console.print(Text(f"wrote {views.save_distance_png(report, distance_png)}"))
        return
    names = [Path(run_dir).name or str(run_dir) for run_dir in dirs]
    console.print(views.comparison_table(reports, names))
    if png is not None:
        console.print(Text(f"wrote {views.save_comparison_png(reports, names, png)}"))


def run_inspect_pair(
    run_dir: str | Path, *, source: str | None, target: str | None, alignment: str | None, layer: int | None,
    head: int | None, png: str | Path | None, html: str | Path | None, json_path: str | Path | None, device: str,
    over: int | None, seed: int, console: Console | None, threads: int, force: bool,
) -> None:
    """`minitx inspect-attention` on an encoder-decoder run: its three attentions for one pair, and alignment.

    The target read is --target, else the built-in corpus's rendering of a source in the story grammar
    (which brings gold links), else the model's own translation. Gold links (the corpus's or --alignment)
    give every cross-attention head an AER beside random heads; --over N scores the heads on N held-out pairs.
    """
    import dataclasses

    from rich.console import Console

    from minitx.inspect.alignment import parse_alignment
    from minitx.inspect.views import alignment as views
    from minitx.text.files import read_stdin

    outputs: dict[str, str | Path | None] = {"--json": json_path, "--html": html}
    if png is not None:
        outputs.update({f"--png ({kind})": path for kind, path in views.png_paths(png).items()})
    refuse_existing_outputs(outputs, force)
    gold = parse_alignment(alignment) if alignment is not None else None
    console = console if console is not None else Console()
    run = open_run(run_dir, device, threads, command="minitx inspect-attention")
    check_head_range(run.model, layer, head)
    result = run.attention(source=read_stdin().strip() if source == "-" else source, target=target, alignment=gold,
                           seed=seed)
    over_report = run.alignment_over(over, seed) if over is not None else None
    chosen_layer = layer if layer is not None else result.shown[0]
    chosen_head = head if head is not None else result.shown[1]
    result = dataclasses.replace(result, shown=(chosen_layer, chosen_head), over=over_report)
    capture, report, gold = result.capture, result.alignment, result.gold

    console.print(Text(f"source: {capture.source}\ntarget ({result.target_from}): {capture.target}\n"
                       f"positions: encoder {capture.encoder_pos}, decoder {capture.pos}; cross-attention has none"))
    for kind in (kind for kind in ("encoder", "decoder", "cross") if capture.weights[kind]):  # an RNN: cross only
        shown_layer = min(chosen_layer, len(capture.weights[kind]) - 1)
        console.print(views.head_heatmap(capture, kind, shown_layer, chosen_head))
    console.print(Text("every cross-attention head, pooled to words (rows: target words; columns: source words):"))
    console.print(views.word_legend(capture))
    console.print(views.cross_word_heatmaps(capture, report))
    if report is not None:
        console.print(views.alignment_table(report, "this pair"))
    links = capture.head_links(chosen_layer, chosen_head)
    console.print(Text(f"what each target word reads most through layer {chosen_layer} head {chosen_head}:"))
    for line in views.link_lines(capture, links, gold):
        console.print(Text("  " + line))
    if over_report is not None:
        console.print(views.alignment_table(over_report, f"{over_report.pairs} held-out pairs, mean ± spread per pair"))

    if png is not None:
        for path in views.save_pair_pngs(capture, png):
            console.print(Text(f"wrote {path}"))
    if html is not None:
        title = f"attention of {Path(run_dir).name}: {capture.source}"
        path = views.save_alignment_html(capture, report, gold, html, title=title)
        console.print(Text(f"wrote {path} (open it in a browser; it works offline)"))
    if json_path is not None:
        from minitx.fileio import atomic_write_text

        atomic_write_text(Path(json_path), result.to_json(indent=None) + "\n")
        console.print(Text(f"wrote {json_path}"))
