"""The `minitx` command line: declares the commands and their typed options; each calls one function in commands/.

Nothing heavy is imported at module level, so `minitx --help` answers at once; each command imports
what it needs when it runs. A `UserError` from any command becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from minitx.errors import EXIT_USER_ERROR, UserError

app = typer.Typer(
    name="minitx",
    help="Train, sample and look inside small transformer language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
)
tokenize_app = typer.Typer(
    help="Train a tokenizer, encode text to token ids and decode them back.", no_args_is_help=True
)
data_app = typer.Typer(help="Corpora: write the built-in story corpus, check grammar, fetch tiny Shakespeare.",
                       no_args_is_help=True)
app.add_typer(tokenize_app, name="tokenize")
app.add_typer(data_app, name="data")

F = TypeVar("F", bound=Callable[..., Any])


def _user_errors_exit_2(func: F) -> F:
    """Turn a UserError into one plain line on stderr and exit code 2 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as e:
            typer.echo(f"minitx: error: {e}", err=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
        except OSError as e:  # a path that cannot be read or written: the user's to fix
            where = f": {e.filename}" if getattr(e, "filename", None) else ""
            typer.echo(f"minitx: error: {e.strerror or e}{where}", err=True)
            raise typer.Exit(EXIT_USER_ERROR) from None

    return wrapper  # type: ignore[return-value]


def command(typer_app: typer.Typer, name: str | None = None) -> Callable[[F], F]:
    def register(func: F) -> F:
        return typer_app.command(name)(_user_errors_exit_2(func))

    return register


# ------------------------------------------------------------------------------------------------
# tokenize


@command(tokenize_app, "train")
def tokenize_train(
    files: Annotated[list[str] | None, typer.Argument(help="Text files, directories, globs, .jsonl, .parquet, '-' "
                                                           "(default: the built-in stories).")] = None,
    vocab_size: Annotated[int, typer.Option(help="Vocabulary size (BPE: at least 256 + specials).")] = 1024,
    out: Annotated[Path, typer.Option(help="Where to write tokenizer.json.")] = Path("tokenizer.json"),
    kind: Annotated[str, typer.Option(help="bpe (byte-level BPE) or char (one token per character).")] = "bpe",
    min_frequency: Annotated[int, typer.Option(help="BPE: merge only pairs seen this often.")] = 2,
    special: Annotated[list[str] | None, typer.Option(help="Extra special tokens (repeatable).")] = None,
    max_bytes: Annotated[int | None, typer.Option(help="Train on about the first N bytes of the corpus only "
                                                       "(faster on a large one).")] = None,
    text_field: Annotated[str, typer.Option(help="JSON Lines / Parquet: the field that holds the text.")] = "text",
    force: Annotated[bool, typer.Option(help="Overwrite --out if it exists.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress display.")] = False,
) -> None:
    """Train a tokenizer on a corpus (files, directories, globs, .jsonl, .parquet, '-'); save it as tokenizer.json."""
    from minitx.commands import tokenize

    tokenize.train(files or [], vocab_size=vocab_size, out=out, kind=kind, min_frequency=min_frequency,
                   special=special or [], force=force, quiet=quiet, max_bytes=max_bytes, text_field=text_field)


@command(tokenize_app, "encode")
def tokenize_encode(
    text: Annotated[str, typer.Argument(help="Text to encode; '-' reads stdin.")],
    tokenizer: Annotated[str, typer.Option(help="tokenizer.json, or a run directory.")] = "tokenizer.json",
    ids: Annotated[bool, typer.Option("--ids", help="Print only the ids, space separated.")] = False,
) -> None:
    """Show how a tokenizer splits text: coloured tokens with their ids."""
    from minitx.commands import tokenize

    tokenize.encode(text, tokenizer=tokenizer, ids=ids)


@command(tokenize_app, "decode")
def tokenize_decode(
    ids: Annotated[list[str], typer.Argument(help="Token ids ('-' reads them from stdin).")],
    tokenizer: Annotated[str, typer.Option(help="tokenizer.json, or a run directory.")] = "tokenizer.json",
) -> None:
    """Turn token ids back into text."""
    from minitx.commands import tokenize

    tokenize.decode(ids, tokenizer=tokenizer)


# ------------------------------------------------------------------------------------------------
# data


@command(data_app, "grammar")
def data_grammar(
    out: Annotated[Path, typer.Option(help="File to write.")] = Path("data/stories.txt"),
    bytes_: Annotated[int, typer.Option("--bytes", help="About how many bytes of stories.")] = 1_000_000,
    seed: Annotated[int, typer.Option(help="Same seed, same stories.")] = 0,
    force: Annotated[bool, typer.Option(help="Overwrite --out if it exists.")] = False,
) -> None:
    """Write stories from minitx's built-in English grammar (word order matters in it)."""
    from minitx.commands import data

    data.grammar(out=out, n_bytes=bytes_, seed=seed, force=force)


@command(data_app, "check")
def data_check(
    file: Annotated[Path, typer.Argument(help="Text to check ('-' reads stdin).")],
    json_: Annotated[bool, typer.Option("--json", help="Print the full result as JSON.")] = False,
    examples: Annotated[int, typer.Option(help="How many rejected sentences to show.")] = 5,
) -> None:
    """Parse every sentence with the built-in grammar; exit 0 if all are accepted, 1 otherwise."""
    from minitx.commands import data

    raise typer.Exit(data.check(file, as_json=json_, examples=examples))


@command(data_app, "tinyshakespeare")
def data_tinyshakespeare(
    out: Annotated[Path, typer.Option(help="Where to save the text.")] = Path("data/tinyshakespeare.txt"),
    force: Annotated[bool, typer.Option(help="Overwrite --out if it exists.")] = False,
) -> None:
    """Download the tiny Shakespeare corpus (1.1 MB) and verify its sha256."""
    from minitx.commands import data

    data.tinyshakespeare(out=out, force=force)


# ------------------------------------------------------------------------------------------------
# train / info


@command(app, "train")
def train(
    files: Annotated[list[Path] | None, typer.Argument(help="Text files (default: the built-in stories).")] = None,
    out: Annotated[Path, typer.Option(help="Run directory to create.", rich_help_panel="Run")] = Path("runs/default"),
    preset: Annotated[str | None, typer.Option(help="tiny | small (default) | nanogpt-cpu | medium.",
                                                  rich_help_panel="Model")] = None,
    tokenizer: Annotated[str | None, typer.Option(help="tokenizer.json, or 'char'; default: train a BPE.",
                                                     rich_help_panel="Model")] = None,
    vocab_size: Annotated[int | None, typer.Option(help="BPE vocabulary when training one.",
                                                      rich_help_panel="Model")] = None,
    layers: Annotated[int | None, typer.Option(help="Transformer blocks.", rich_help_panel="Model")] = None,
    heads: Annotated[int | None, typer.Option(help="Attention heads per block.", rich_help_panel="Model")] = None,
    dim: Annotated[int | None, typer.Option(help="Width of the residual stream.", rich_help_panel="Model")] = None,
    block_size: Annotated[int | None, typer.Option(help="Context length in tokens.",
                                                      rich_help_panel="Model")] = None,
    pos: Annotated[str | None, typer.Option(help="sinusoidal | learned | rope | alibi | none.",
                                               rich_help_panel="Model")] = None,
    dropout: Annotated[float | None, typer.Option(help="Dropout while training.", rich_help_panel="Model")] = None,
    bias: Annotated[bool | None, typer.Option("--bias/--no-bias", help="Biases in linears and LayerNorms.",
                                                 rich_help_panel="Model")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimisation steps.", rich_help_panel="Training")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Sequences per micro-batch.",
                                                      rich_help_panel="Training")] = None,
    grad_accum: Annotated[int | None, typer.Option(help="Micro-batches per step.",
                                                      rich_help_panel="Training")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.", rich_help_panel="Training")] = None,
    min_lr: Annotated[float | None, typer.Option(help="Learning rate at the end of the cosine.",
                                                    rich_help_panel="Training")] = None,
    warmup: Annotated[int | None, typer.Option(help="Linear warmup steps.", rich_help_panel="Training")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="AdamW weight decay.",
                                                          rich_help_panel="Training")] = None,
    beta2: Annotated[float | None, typer.Option(help="AdamW beta2.", rich_help_panel="Training")] = None,
    grad_clip: Annotated[float | None, typer.Option(help="Clip the gradient norm (0: off).",
                                                       rich_help_panel="Training")] = None,
    val_fraction: Annotated[float | None, typer.Option(help="Share of tokens held out for validation.",
                                                          rich_help_panel="Evaluation")] = None,
    eval_every: Annotated[int | None, typer.Option(help="Steps between evaluations.",
                                                      rich_help_panel="Evaluation")] = None,
    eval_batches: Annotated[int | None, typer.Option(help="Batches per evaluation.",
                                                        rich_help_panel="Evaluation")] = None,
    save_every: Annotated[int | None, typer.Option(help="Steps between checkpoints.", rich_help_panel="Run")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (a CPU run is bit-for-bit repeatable).",
                                                rich_help_panel="Run")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | mps.", rich_help_panel="Run")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto | float32 | bfloat16.", rich_help_panel="Run")] = "auto",
    compile: Annotated[bool | None, typer.Option("--compile/--no-compile", help="torch.compile the model.",
                                                    rich_help_panel="Run")] = None,
    threads: Annotated[int, typer.Option(help="CPU threads (0: the idle cores, or OMP_NUM_THREADS).",
                                         rich_help_panel="Run")] = 0,
    doc_aligned: Annotated[bool | None, typer.Option("--doc-aligned/--no-doc-aligned",
                                                        help="Start training windows at <|doc|> markers.",
                                                        rich_help_panel="Training")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint, with the same "
                                              "recipe (only --steps, --device, --threads may change).",
                                         rich_help_panel="Run")] = False,
    force: Annotated[bool, typer.Option(help="Replace an existing run in --out.", rich_help_panel="Run")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress display.", rich_help_panel="Run")] = False,
) -> None:
    """Train a decoder-only transformer and save it as a run directory."""
    from minitx.commands import train as train_command

    model_overrides = {
        k: v
        for k, v in dict(n_layers=layers, n_heads=heads, dim=dim, block_size=block_size, pos=pos,
                         dropout=dropout, bias=bias).items()
        if v is not None
    }
    train_overrides = dict(steps=steps, batch_size=batch_size, grad_accum=grad_accum, lr=lr, min_lr=min_lr,
                           warmup=warmup, weight_decay=weight_decay, beta2=beta2, grad_clip=grad_clip,
                           val_fraction=val_fraction, eval_every=eval_every, eval_batches=eval_batches,
                           save_every=save_every, seed=seed, device=device,
                           dtype=None if dtype == "auto" else dtype,  # the default: not a choice made
                           compile=compile, threads=threads, doc_aligned=doc_aligned)
    code = train_command.train(files or [], out=out, preset=preset, tokenizer=tokenizer, vocab_size=vocab_size,
                               model_overrides=model_overrides, train_overrides=train_overrides, resume=resume,
                               force=force, quiet=quiet)
    if code:
        raise typer.Exit(code)


@command(app, "info")
def info(
    path: Annotated[Path, typer.Argument(help="A run directory, or a data directory from minitx prepare.")],
    json_: Annotated[bool, typer.Option("--json", help="Print it as JSON.")] = False,
) -> None:
    """Show a run's configuration, size, progress and last losses, or what prepared data holds."""
    from minitx.commands.info import info as show_info

    show_info(path, as_json=json_)


@command(app, "prepare")
def prepare(
    corpus: Annotated[list[str], typer.Argument(help="Text files, directories, globs, .jsonl, .parquet (.gz too); "
                                                     "'-' reads stdin.")],
    tokenizer: Annotated[str, typer.Option(help="tokenizer.json, a run directory, or 'char'.")],
    out: Annotated[Path, typer.Option(help="Data directory to write (train.bin, val.bin, meta.json).")],
    val_fraction: Annotated[float, typer.Option(help="Share of tokens held out for validation.")] = 0.1,
    text_field: Annotated[str, typer.Option(help="JSON Lines / Parquet: the field that holds the text.")] = "text",
    force: Annotated[bool, typer.Option(help="Replace prepared data already in --out.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress display.")] = False,
) -> None:
    """Tokenize a corpus of any size on every core into token files that training memory-maps."""
    from minitx.commands.prepare import prepare as run_prepare

    run_prepare(corpus, tokenizer=tokenizer, out=out, val_fraction=val_fraction, text_field=text_field,
                force=force, quiet=quiet)


# ------------------------------------------------------------------------------------------------
# generate / eval


QUANTIZE_HELP = "none | int8: int8 weights and bfloat16 activations, faster decoding of larger models on a CPU."


@command(app, "generate")
def generate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    prompt: Annotated[str, typer.Option(help="Text to continue ('-' reads stdin; default: a new story).")] = "",
    max_new_tokens: Annotated[int, typer.Option(help="Tokens to generate per sample.")] = 200,
    temperature: Annotated[float, typer.Option(help="Softmax temperature; 0 means greedy.")] = 0.7,
    top_k: Annotated[int | None, typer.Option(help="Sample only from the k most likely tokens.")] = None,
    top_p: Annotated[float | None, typer.Option(help="Sample from the smallest set with this much mass.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed for reproducible samples.")] = None,
    num_samples: Annotated[int, typer.Option(help="Samples, generated together as one batch.")] = 1,
    stop: Annotated[list[str] | None, typer.Option(help="Stop a sample at this text (repeatable).")] = None,
    stream: Annotated[bool, typer.Option("--stream/--no-stream", help="Print text as it is produced.")] = True,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | mps.")] = "auto",
    quantize: Annotated[str, typer.Option(help=QUANTIZE_HELP)] = "none",
    quiet: Annotated[bool, typer.Option(help="No statistics on stderr.")] = False,
) -> None:
    """Sample text from a trained model (with a KV cache)."""
    from minitx.commands.generate import run_generate
    from minitx.commands.tokenize import read_stdin

    run_generate(run_dir, prompt=read_stdin() if prompt == "-" else prompt,
                 max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                 num_samples=num_samples, stop=stop or [], stream=stream, device=device, quiet=quiet,
                 quantize=quantize)


@command(app, "eval")
def eval_(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    files: Annotated[list[Path] | None, typer.Argument(help="Text to score (default: the run's validation split).")]
    = None,
    grammar: Annotated[int, typer.Option(help="Also sample N stories and check them with the grammar.")] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | mps.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed for the grammar samples.")] = 0,
    temperature: Annotated[float, typer.Option(help="Softmax temperature of the grammar samples.")] = 0.7,
    quantize: Annotated[str, typer.Option(help=QUANTIZE_HELP)] = "none",
    json_: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Loss, perplexity and bits per byte on text; optionally the grammaticality of samples."""
    from minitx.commands.eval import run_eval

    run_eval(run_dir, files or [], grammar=grammar, device=device, seed=seed, temperature=temperature,
             as_json=json_, quantize=quantize)


# ------------------------------------------------------------------------------------------------
# inspect


@command(app, "inspect-attention")
def inspect_attention(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    prompt: Annotated[str | None, typer.Option(help="Text to read ('-' reads stdin; default: a short story).")]
    = None,
    layer: Annotated[int | None, typer.Option(help="Show this layer (default: the most telling head's).")] = None,
    head: Annotated[int | None, typer.Option(help="Show this head (default: the most telling one).")] = None,
    png: Annotated[Path | None, typer.Option(help="Also save every head (or --layer's heads) as a PNG.")] = None,
    html: Annotated[Path | None, typer.Option(help="Also save an offline HTML page to explore every head.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Keep only the last N tokens (default: block size).")]
    = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | mps.")] = "auto",
) -> None:
    """Show what each attention head looks at: the weights α as heatmaps, and the role of every head."""
    from minitx.commands.inspect import run_inspect_attention
    from minitx.commands.tokenize import read_stdin

    run_inspect_attention(run_dir, prompt=read_stdin() if prompt == "-" else prompt, layer=layer,
                          head=head, png=png, html=html, device=device, max_tokens=max_tokens)


@command(app, "inspect-positions")
def inspect_positions(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    positions: Annotated[int | None, typer.Option(help="Positions to look at (default: block size, at most 128).")]
    = None,
    png: Annotated[Path | None, typer.Option(help="Also save the view as FILE.png and FILE-by-distance.png.")]
    = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | mps.")] = "auto",
) -> None:
    """Show what the positional encoding gives the model: how positions relate, and how that changes with distance."""
    from minitx.commands.inspect import run_inspect_positions

    run_inspect_positions(run_dir, positions=positions, png=png, device=device)


@app.command("version")
def version() -> None:
    """Print the minitx version."""
    from minitx import __version__

    typer.echo(__version__)


if __name__ == "__main__":  # python -m minitx.cli
    app()
