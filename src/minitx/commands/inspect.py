"""`minitx inspect-attention RUN` and `minitx inspect-positions RUN...`: look inside trained models.

These functions load runs (`load_for_inference`), call the library in `minitx.inspect` and print
its views; they compute nothing themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text

from minitx.commands.loading import load_for_inference, run_architecture
from minitx.errors import UserError

if TYPE_CHECKING:
    import torch
    from rich.console import Console
    from torch import nn

    from minitx.inspect.ablation import AblationReport
    from minitx.inspect.alignment import AlignmentReport
    from minitx.inspect.induction import InductionReport
    from minitx.inspect.over_data import RoleSpread
    from minitx.inspect.views.html import Grid
    from minitx.model import GPT
    from minitx.rundir import Run
    from minitx.text.tokenizer import Tokenizer

#: Validation windows `--ablate` scores each ablated model on, unless --over N says how many.
ABLATION_WINDOWS = 32


def check_attention_flags(
    *, over: int | None, induction: bool, length: int | None, repeats: int | None, generate: int
) -> None:
    """UserErrors for flags that cannot work, before any file is read."""
    if over is not None and over < 1:
        raise UserError(f"--over must be at least 1, got {over}")
    if generate < 0:
        raise UserError(f"--generate must be 0 or more tokens, got {generate}")
    if not induction and (length is not None or repeats is not None):
        raise UserError("--length and --repeats shape the --induction test; add --induction")


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
    from rich.console import Console

    from minitx.inspect.capture import DEFAULT_PROMPT, capture_ids, check_head, prompt_ids
    from minitx.inspect.roles import ROLE_RULES, head_roles, most_telling_head
    from minitx.inspect.views import terminal
    from minitx.inspect.views.heatmap import cells_that_fit
    from minitx.text.files import read_stdin

    check_attention_flags(over=over, induction=induction, length=length, repeats=repeats, generate=generate)
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
    if max_tokens is not None and max_tokens < 1:
        raise UserError(f"--max-tokens must be at least 1, got {max_tokens}")
    console = console if console is not None else Console()
    model, run = load_for_inference(run_dir, device, threads, command="minitx inspect-attention")
    check_head_range(model, layer, head)
    text = DEFAULT_PROMPT if prompt is None else read_stdin() if prompt == "-" else prompt
    ids = prompt_ids(run.tokenizer, text)
    if len(ids) < 2 and not generate:
        raise UserError("the prompt is empty after tokenizing; give --prompt some text")
    new_ids = sample_after(model, ids, generate, seed) if generate else []
    capture = capture_ids(model, run.tokenizer, ids + new_ids, max_tokens=max_tokens)
    check_head(capture, layer, head)
    roles = head_roles(capture)
    candidates = [r for r in roles if (layer is None or r.layer == layer) and (head is None or r.head == head)]
    chosen = most_telling_head(candidates)

    console.print(Text(terminal.HOW_TO_READ))
    if new_ids:
        console.print(Text(f"sampled {len(new_ids)} tokens after the prompt (seed {seed}): ")
                      + Text(run.tokenizer.decode(new_ids), style="bold"))
    note = f"{capture.n_tokens} tokens, {capture.pos} positions"
    console.print(terminal.roles_table(roles, capture.n_layers, capture.n_heads, note))
    console.print(Text(ROLE_RULES, style="dim"))
    fits = min(terminal.MAX_SHOWN_TOKENS, cells_that_fit(console.width))  # an 80-column terminal shows 31 tokens
    console.print(terminal.attention_heatmap(capture, chosen.layer, chosen.head, fits))
    console.print(Text(f"what the last tokens read through layer {chosen.layer} head {chosen.head}:"))
    for query in range(max(1, capture.n_tokens - 4), capture.n_tokens):
        console.print(Text("  " + terminal.readout_line(capture, chosen.layer, chosen.head, query)))

    n_layers, n_heads = model.config.n_layers, model.config.n_heads
    validation = validation_tokens(run) if over is not None or ablate else None  # rebuilt once, used by both
    spreads = roles_over_data(model, validation, over) if over is not None else None
    if spreads is not None:
        console.print(terminal.spread_table(spreads, n_layers, n_heads, over))
    found = induction_test(model, run, length, repeats, seed) if induction else None
    if found is not None:
        console.print(terminal.induction_table(found))
    ablation = head_importance(model, validation, over or ABLATION_WINDOWS) if ablate else None
    if ablation is not None:
        console.print(terminal.ablation_table(ablation, n_layers, n_heads))

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
        from minitx.inspect.views.document import attention_document, save_document

        document = attention_document(capture, run=str(run_dir), prompt=prompt, generated=len(new_ids), over=spreads,
                                      n_windows=over or 0, induction=found, ablation=ablation)
        console.print(Text(f"wrote {save_document(document, json_path)}"))


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


def sample_after(model: GPT, ids: list[int], n_tokens: int, seed: int) -> list[int]:
    """`n_tokens` sampled after `ids` (at the default temperature, with `seed`): the new ids only."""
    from minitx.generation.sampling import SamplingConfig, generate_ids

    context = ids[-model.config.block_size :]
    row = generate_ids(model, context, SamplingConfig(max_new_tokens=n_tokens, seed=seed))[0]
    return row[len(context) :]


def validation_tokens(run: Run) -> torch.Tensor:
    """The run's validation split, rebuilt as `minitx eval` does (same corpus, tokenizer and split)."""
    from minitx.evaluation.scoring import validation_ids

    return validation_ids(run)[0]


def roles_over_data(model: GPT, ids: torch.Tensor, n_windows: int) -> list[RoleSpread]:
    """Roles over `n_windows` windows of block_size tokens spread over the validation tokens `ids`."""
    from minitx.inspect.over_data import evenly_spaced_windows, roles_over_windows

    return roles_over_windows(model, evenly_spaced_windows(ids, n_windows, model.config.block_size))


def induction_test(model: GPT, run: Run, length: int | None, repeats: int | None, seed: int) -> InductionReport:
    """`measure_induction` on random ordinary tokens of the run's tokenizer, after <|doc|> when it has one."""
    from minitx.inspect.induction import DEFAULT_REPEATS, measure_induction
    from minitx.model.inputs import document_start

    tokenizer = run.tokenizer
    special = {tokenizer.token_id(token) for token in tokenizer.special_tokens}
    ordinary = [i for i in range(tokenizer.vocab_size) if i not in special]
    return measure_induction(model, ordinary, length=length, repeats=repeats or DEFAULT_REPEATS, seed=seed,
                             first_id=document_start(tokenizer))


def head_importance(model: GPT, ids: torch.Tensor, n_windows: int) -> AblationReport:
    """`ablate_heads` on the first `n_windows` block_size windows of the validation tokens `ids`."""
    from minitx.inspect.ablation import ablate_heads

    return ablate_heads(model, ids[: n_windows * model.config.block_size + 1])


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
    models = [load_for_inference(run_dir, device, threads, command="minitx inspect-positions")[0] for run_dir in dirs]
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


#: The sentence `inspect-attention` reads on an encoder-decoder run when no --source is given.
DEFAULT_SOURCE = "The big dog sees the red ball."


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
    from rich.console import Console

    from minitx.inspect.alignment import alignment_report, capture_pair, check_links_fit, parse_alignment
    from minitx.inspect.views import alignment as views
    from minitx.text.files import read_stdin

    outputs: dict[str, str | Path | None] = {"--json": json_path, "--html": html}
    if png is not None:
        outputs.update({f"--png ({kind})": path for kind, path in views.png_paths(png).items()})
    refuse_existing_outputs(outputs, force)
    gold = parse_alignment(alignment) if alignment is not None else None
    console = console if console is not None else Console()
    model, run = load_for_inference(run_dir, device, threads, command="minitx inspect-attention")
    check_head_range(model, layer, head)
    text = DEFAULT_SOURCE if source is None else read_stdin().strip() if source == "-" else source
    if not text.strip():
        raise UserError("the source is empty; give --source a sentence")
    target, target_from, corpus_gold = choose_target(model, run.tokenizer, text, target)
    gold = gold if gold is not None else corpus_gold
    capture = capture_pair(model, run.tokenizer, text, target)
    if gold is not None:
        check_links_fit(gold, capture)
    report = alignment_report([capture], [gold], seed) if gold is not None else None
    over_report = alignment_over_pairs(model, run, over, seed) if over is not None else None

    console.print(Text(f"source: {text}\ntarget ({target_from}): {target}\n"
                       f"positions: encoder {capture.encoder_pos}, decoder {capture.pos}; cross-attention has none"))
    chosen_layer = layer if layer is not None else (report.best.layer if report else len(capture.weights["cross"]) - 1)
    chosen_head = head if head is not None else (report.best.head if report else 0)
    for kind in ("encoder", "decoder", "cross"):
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
        title = f"attention of {Path(run_dir).name}: {text}"
        path = views.save_alignment_html(capture, report, gold, html, title=title)
        console.print(Text(f"wrote {path} (open it in a browser; it works offline)"))
    if json_path is not None:
        import json

        from minitx.fileio import atomic_write_text

        document = {"run": str(run_dir), "target_from": target_from, "pair": capture.to_dict(),
                    "gold": [list(link) for link in gold] if gold is not None else None,
                    "alignment": report.to_dict() if report is not None else None,
                    "over": over_report.to_dict() if over_report is not None else None,
                    "shown": {"layer": chosen_layer, "head": chosen_head, "links": [list(link) for link in links]}}
        atomic_write_text(Path(json_path), json.dumps(document, ensure_ascii=False) + "\n")
        console.print(Text(f"wrote {json_path}"))


def choose_target(model: nn.Module, tokenizer: Tokenizer, source: str, target: str | None
                  ) -> tuple[str, str, list | None]:
    """(target text, where it came from, gold links or None): --target, the corpus's rendering, or the model's."""
    if target is not None:
        if not target.strip():
            raise UserError("--target is empty; give the translation to read, or leave it out")
        return target.strip(), "--target", None
    from minitx.corpus.grammar import SentenceRejected
    from minitx.corpus.translation import translate as render

    try:
        pair = render(source.strip())
        return pair["target"], "the built-in corpus's rendering, with its gold alignment", pair["alignment"]
    except (SentenceRejected, ValueError):
        from minitx.generation.translate import translate

        return translate(model, tokenizer, [source])[0], "the model's own translation", None


def alignment_over_pairs(model: nn.Module, run: Run, n_pairs: int, seed: int) -> AlignmentReport:
    """Every cross-attention head's AER over the first `n_pairs` held-out pairs that have gold alignments."""
    from minitx.evaluation.translation_eval import held_out_pairs
    from minitx.inspect.alignment import alignment_report, capture_pair

    pairs = [p for p in held_out_pairs(run) if p.get("alignment")][:n_pairs]
    if not pairs:
        raise UserError(f"{run.path}'s held-out pairs have no gold alignments; --over needs the built-in corpus "
                        "or pairs written by minitx data translation")
    captures = [capture_pair(model, run.tokenizer, p["source"], p["target"]) for p in pairs]
    return alignment_report(captures, [p["alignment"] for p in pairs], seed)
