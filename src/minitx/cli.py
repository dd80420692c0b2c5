"""The `minitx` command line: declares the commands and their typed options; each calls one function in commands/.

Nothing heavy is imported at module level, so `minitx --help` answers at once; each command imports
what it needs when it runs. A `UserError` from any command becomes one line on stderr and exit code 2,
and so does a usage error that Click finds before the command runs (`--steps abc`, an unknown option):

    minitx: error: Invalid value for '--steps': 'abc' is not a valid integer. (see: minitx train --help)

A training run whose loss became NaN or infinite ends with one line too, and exit code 3.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import typer
from typer.core import TyperGroup

from minitx.config import (
    BUILTIN_CORPUS_BYTES,
    BUILTIN_CORPUS_SEED,
    DEFAULT_TEMPERATURE,
    EVALUATION,
    RUN,
    ExportFormat,
    ModelConfig,
    Quantize,
    TokenizerKind,
    TrainConfig,
    WordOrder,
    changeable_on_resume,
    flag_fields,
    flag_of,
    option_name,
)
from minitx.console import error_line
from minitx.device import Device
from minitx.errors import EXIT_DIVERGED, EXIT_USER_ERROR, TrainingDiverged, UserError

#: Click's UsageError (bad option values, unknown options), found through Typer, which may bundle its own click.
_UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


class _OneLineUsageErrors(TyperGroup):
    """A value Typer rejects (a choice not in the list, a word where a number goes, an unknown option) ends
    like every other user mistake: one line on stderr, exit code 2, instead of a usage box."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _UsageError as e:
            _one_line_usage_error(e)

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        """Also the options of `minitx` itself, read before any command is chosen (`minitx --bogus`)."""
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except _UsageError as e:
            _one_line_usage_error(e)


def _one_line_usage_error(e: Exception) -> None:
    if type(e).__name__ == "NoArgsIsHelpError":  # `minitx data` alone shows its help
        raise e
    ctx = getattr(e, "ctx", None)
    where = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
    typer.echo(error_line(f"{e.format_message()}{where}"), err=True)
    raise typer.Exit(EXIT_USER_ERROR) from None


app = typer.Typer(
    cls=_OneLineUsageErrors,
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
experiment_app = typer.Typer(help="Experiments: train many models the same way and compare them with error bars.",
                             no_args_is_help=True)
app.add_typer(tokenize_app, name="tokenize")
app.add_typer(data_app, name="data")
app.add_typer(experiment_app, name="experiment")

F = TypeVar("F", bound=Callable[..., Any])


def _user_errors_exit_2(func: F) -> F:
    """Turn a UserError into one plain line on stderr and exit code 2 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as e:
            typer.echo(error_line(e), err=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
        except TrainingDiverged as e:
            typer.echo(error_line(e), err=True)
            raise typer.Exit(EXIT_DIVERGED) from None
        except OSError as e:  # a path that cannot be read or written: the user's to fix
            where = f": {e.filename}" if getattr(e, "filename", None) else ""
            typer.echo(error_line(f"{e.strerror or e}{where}"), err=True)
            raise typer.Exit(EXIT_USER_ERROR) from None

    return cast(F, wrapper)


def command(typer_app: typer.Typer, name: str | None = None) -> Callable[[F], F]:
    def register(func: F) -> F:
        return typer_app.command(name)(_user_errors_exit_2(func))

    return register


#: What a command decorated with `config_options` receives: config field name -> the value given,
#: None when the flag was not given (a preset or the field's default then decides).
ConfigFlags = dict[str, Any]


def config_options(*configs: type, exclude: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Give a command one option per flag field of `configs` (see config.py), where it declares `flags`.

    The options are built from the fields: name, type, help, panel and choices come from each field's
    `Flag`; every option defaults to None, "not given". The command receives them all as one
    `flags: ConfigFlags` dict, choices as plain strings. `minitx train` takes every flag of ModelConfig
    and TrainConfig this way; another command reuses a set of them with the same decorator.
    """
    fields = flag_fields(*configs, exclude=exclude)
    hints = {name: hint for cls in configs for name, hint in typing.get_type_hints(cls).items()}
    options = [_option_parameter(f, hints[f.name]) for f in fields]
    return lambda func: _options_as_one(func, "flags", options, lambda given: {k: _plain(v) for k, v in given.items()})


def _options_as_one(func: F, name: str, options: list[inspect.Parameter], collect: Callable[[dict], Any]) -> F:
    """`func` with its parameter `name` replaced, in its place, by the typer `options`; a call gathers their values
    back into that one argument, `collect({option name: value})`. (What config_options and inspect_outputs share.)"""
    signature = inspect.signature(func, eval_str=True)
    if name not in signature.parameters:
        raise TypeError(f"{func.__name__} has no `{name}` parameter to fill with options")
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        parameters += options if parameter.name == name else [parameter]

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        gathered = collect({option.name: kwargs.pop(option.name) for option in options})
        return func(**kwargs, **{name: gathered})

    wrapper.__signature__ = signature.replace(parameters=parameters)
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return cast(F, wrapper)


def _option_parameter(field: Any, hint: Any) -> inspect.Parameter:
    """`--layers` for ModelConfig.n_layers: Annotated[int | None, typer.Option("--layers", help=...)] = None."""
    flag = flag_of(field)
    option = option_name(field)
    value_type = flag.choices or next(t for t in (*typing.get_args(hint), hint) if t is not type(None))
    declaration = f"{option}/--no-{option.removeprefix('--')}" if value_type is bool else option
    info = typer.Option(declaration, help=flag.help, rich_help_panel=flag.panel)
    return inspect.Parameter(field.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                             annotation=Annotated[value_type | None, info])


def _plain(value: Any) -> Any:
    """A choice as the string config.json stores (Typer passes Enum members)."""
    return value.value if isinstance(value, Enum) else value


# ------------------------------------------------------------------------------------------------
# tokenize


@command(tokenize_app, "train")
def tokenize_train(
    files: Annotated[list[str] | None, typer.Argument(help="Text files, directories, globs, .jsonl, .parquet, '-' "
                                                           "(default: the built-in stories).")] = None,
    vocab_size: Annotated[int, typer.Option(help="Vocabulary size (BPE: at least 256 + specials).")] = 1024,
    out: Annotated[Path, typer.Option(help="Where to write tokenizer.json.")] = Path("tokenizer.json"),
    kind: Annotated[TokenizerKind, typer.Option(help="bpe (byte-level BPE) or char (one token per character).")]
    = TokenizerKind.bpe,
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

    tokenize.train(files or [], vocab_size=vocab_size, out=out, kind=kind.value, min_frequency=min_frequency,
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
    bytes_: Annotated[int, typer.Option("--bytes", help="About how many bytes of stories (default: as many as "
                                                         "`minitx train` uses).")] = BUILTIN_CORPUS_BYTES,
    seed: Annotated[int, typer.Option(help="Same seed, same stories.")] = BUILTIN_CORPUS_SEED,
    force: Annotated[bool, typer.Option(help="Overwrite --out if it exists.")] = False,
) -> None:
    """Write stories from minitx's built-in English grammar (word order matters in it)."""
    from minitx.commands import data

    data.grammar(out=out, n_bytes=bytes_, seed=seed, force=force)


@command(data_app, "translation")
def data_translation(
    out: Annotated[Path, typer.Option(help="JSON Lines file to write.")] = Path("data/translation.jsonl"),
    pairs: Annotated[int, typer.Option(help="How many sentence pairs (distinct English sentences).")] = 10_000,
    seed: Annotated[int, typer.Option(help="Same seed, same pairs.")] = 0,
    order: Annotated[WordOrder, typer.Option(help="Target word order: svo (verb after the subject) or sov "
                                                  "(verb last in every clause).")] = WordOrder.svo,
    join: Annotated[int, typer.Option(help="Long pairs: join 1 to JOIN consecutive sentences into one pair "
                                           "(10 gives sources of up to 60+ words).")] = 1,
    max_words: Annotated[int | None, typer.Option(help="Leave out pairs whose source has more words "
                                                       "(e.g. 30: trained on sentences of <= 30 words).")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite --out if it exists.")] = False,
) -> None:
    """Write story sentences with their translations into a Spanish-like language and gold word alignments."""
    from minitx.commands import data

    data.translation(out=out, n_pairs=pairs, seed=seed, order=_plain(order), force=force, join=join,
                     max_words=max_words)


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
@config_options(TrainConfig, ModelConfig)  # --preset and --tokenizer first, then the model shape
def train(
    files: Annotated[list[Path] | None, typer.Argument(
        help="A data directory from minitx prepare, or a corpus (text files, directories, globs, .jsonl, .parquet; "
             "prepared once into the token cache, then reused). Default: the built-in stories.")] = None,
    out: Annotated[Path, typer.Option(help="Run directory to create.", rich_help_panel=RUN)] = Path("runs/default"),
    flags: ConfigFlags | None = None,  # one option per flag of ModelConfig and TrainConfig
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint, with the same "
                                              f"recipe (only {', '.join(changeable_on_resume())} may change).",
                                         rich_help_panel=RUN)] = False,
    force: Annotated[bool, typer.Option(help="Replace an existing run in --out.", rich_help_panel=RUN)] = False,
    quiet: Annotated[bool, typer.Option(help="No progress display.", rich_help_panel=RUN)] = False,
    nproc: Annotated[int, typer.Option(help="Processes training together (DistributedDataParallel via torchrun).",
                                       rich_help_panel="Distributed")] = 1,
    port: Annotated[int | None, typer.Option(help="With --nproc: rendezvous port on 127.0.0.1 (default: a free one).",
                                                rich_help_panel="Distributed")] = None,
) -> None:
    """Train a model of any architecture (--arch; a decoder-only GPT by default) and save it as a run directory."""
    from minitx.commands import train as train_command

    code = train_command.train(files or [], out=out, flags=flags, resume=resume, force=force, quiet=quiet,
                               nproc=nproc, port=port)
    if code:
        raise typer.Exit(code)


@command(app, "info")
def info(
    paths: Annotated[list[Path] | None, typer.Argument(help="Run directories, or data directories from minitx "
                                                            "prepare.", show_default=False)] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print it as JSON.")] = False,
    png: Annotated[Path | None, typer.Option(help="Draw the runs' train/val loss, lr, tokens/s and MFU, overlaid, "
                                                  "into this PNG (needs matplotlib).")] = None,
    device: Annotated[bool, typer.Option("--device", help="This machine's measured matmul peak (the 100% of MFU); "
                                                          "measures it the first time (a few seconds).")] = False,
) -> None:
    """Show a run's configuration, size, progress and last losses, or what prepared data holds."""
    from minitx.commands.info import info_command

    info_command(paths or [], as_json=json_, png=png, device=device)


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

    code = run_prepare(corpus, tokenizer=tokenizer, out=out, val_fraction=val_fraction, text_field=text_field,
                       force=force, quiet=quiet)
    if code:
        raise typer.Exit(code)


# ------------------------------------------------------------------------------------------------
# generate / eval


QUANTIZE_HELP = "int8: int8 weights and bfloat16 activations, faster decoding of larger models on a CPU."
DEVICE_HELP = "Where to compute (auto: cuda, then mps, then cpu)."


@command(app, "generate")
def generate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    prompt: Annotated[str, typer.Option(help="Text to continue ('-' reads stdin; default: a new story).")] = "",
    max_new_tokens: Annotated[int, typer.Option(help="Tokens to generate per sample.")] = 200,
    temperature: Annotated[float, typer.Option(help="Softmax temperature; 0 means greedy.")] = DEFAULT_TEMPERATURE,
    top_k: Annotated[int | None, typer.Option(help="Sample only from the k most likely tokens.")] = None,
    top_p: Annotated[float | None, typer.Option(help="Sample from the smallest set with this much mass.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed for reproducible samples.")] = None,
    num_samples: Annotated[int, typer.Option(help="Samples, generated together as one batch.")] = 1,
    stop: Annotated[list[str] | None, typer.Option(help="Stop a sample at this text (repeatable).")] = None,
    stream: Annotated[bool, typer.Option("--stream/--no-stream", help="Print text as it is produced.")] = True,
    device: Annotated[Device, typer.Option(help=DEVICE_HELP)] = Device.auto,
    quantize: Annotated[Quantize, typer.Option(help=QUANTIZE_HELP)] = Quantize.none,
    quiet: Annotated[bool, typer.Option(help="No statistics on stderr.")] = False,
) -> None:
    """Sample text from a trained model (with a KV cache)."""
    from minitx.commands.generate import run_generate

    run_generate(run_dir, prompt=prompt,
                 max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                 num_samples=num_samples, stop=stop or [], stream=stream, device=device.value, quiet=quiet,
                 quantize=quantize.value)


@command(app, "translate")
def translate(
    run_dir: Annotated[Path, typer.Argument(help="An encoder-decoder run directory.")],
    sentences: Annotated[list[str] | None, typer.Argument(help="Sentences to translate (or --file).")] = None,
    file: Annotated[Path | None, typer.Option(help="Translate each line of FILE ('-': stdin).")] = None,
    beam: Annotated[int, typer.Option(help="Beam width; 1 is greedy decoding.")] = 1,
    batch_size: Annotated[int, typer.Option(help="Sentences translated together.")] = 32,
    max_new_tokens: Annotated[int | None, typer.Option(help="At most this many tokens per translation "
                                                            "(default: the block).")] = None,
    device: Annotated[Device, typer.Option(help=DEVICE_HELP)] = Device.auto,
    quantize: Annotated[Quantize, typer.Option(help=QUANTIZE_HELP)] = Quantize.none,
    quiet: Annotated[bool, typer.Option(help="No sentences/s on stderr.")] = False,
) -> None:
    """Translate sentences with an encoder-decoder run (greedy or beam search, with a KV cache)."""
    from minitx.commands.translate import run_translate

    run_translate(run_dir, sentences or [], file=file, beam=beam, batch_size=batch_size,
                  max_new_tokens=max_new_tokens, device=device.value, quiet=quiet, quantize=quantize.value)


@command(app, "eval")
def eval_(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    files: Annotated[list[Path] | None, typer.Argument(help="Text to score (default: the run's validation split).")]
    = None,
    grammar: Annotated[int, typer.Option(help="Also sample N stories and check them with the grammar.")] = 0,
    device: Annotated[Device, typer.Option(help=DEVICE_HELP)] = Device.auto,
    seed: Annotated[int, typer.Option(help="Seed for the grammar samples, minimal pairs and shuffles.")] = 0,
    temperature: Annotated[float, typer.Option(help="Softmax temperature of the grammar samples.")]
    = DEFAULT_TEMPERATURE,
    quantize: Annotated[Quantize, typer.Option(help=QUANTIZE_HELP)] = Quantize.none,
    minimal_pairs: Annotated[int, typer.Option(help="Also score N minimal pairs from the built-in grammar "
                                                    "(--seed picks them).")] = 0,
    order_test: Annotated[bool, typer.Option("--order-test", help="Also compare the loss on the text (FILES, or "
                                                                    "the validation split) with its words and "
                                                                    "sentences shuffled.")] = False,
    context: Annotated[int | None, typer.Option(help="Also read windows of L tokens (longer than the block) and "
                                                     "show the loss by position.")] = None,
    sentences: Annotated[int | None, typer.Option(help="Encoder-decoder runs: translate only the first N held-out "
                                                       "pairs (default: all).", metavar="N")] = None,
    beam: Annotated[int, typer.Option(help="Encoder-decoder runs: beam width of the translations (1: greedy).")]
    = 1,
    json_: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Loss, perplexity and bits per byte on text; optionally grammaticality, minimal pairs, order, length.

    On an encoder-decoder run: its translations of the held-out pairs (or FILE.jsonl), scored.
    """
    from minitx.commands.eval import run_eval

    run_eval(run_dir, files or [], grammar=grammar, device=device.value, seed=seed, temperature=temperature,
             as_json=json_, quantize=quantize.value, minimal_pairs=minimal_pairs, order_test=order_test,
             context=context, sentences=sentences, beam=beam)


# ------------------------------------------------------------------------------------------------
# experiment


@command(experiment_app, "positions")
@config_options(ModelConfig, TrainConfig, exclude=("pos", "seed", "preset", "tokenizer"))
def experiment_positions(
    files: Annotated[list[Path] | None, typer.Argument(help="Text files (default: the built-in stories; minimal pairs "
                                                            "and the grammar check speak the stories' language).")]
    = None,
    out: Annotated[Path, typer.Option(help="Experiment directory (created; rerun the same command to resume).",
                                      rich_help_panel=RUN)] = Path("runs/positions"),
    kinds: Annotated[str | None, typer.Option(help="Comma-separated: sinusoidal,learned,rope,alibi,none (default: "
                                                   "all five).")] = None,
    seeds: Annotated[int | None, typer.Option(help="Runs per kind, seeds 0..K-1 (default 2).")] = None,
    corpus_bytes: Annotated[int | None, typer.Option(help="Bytes of built-in stories (default 2,000,000).")] = None,
    pairs: Annotated[int | None, typer.Option(help="Minimal pairs per run (default 600).",
                                              rich_help_panel=EVALUATION)] = None,
    stories: Annotated[int | None, typer.Option(help="Sampled stories per run (default 60).",
                                                rich_help_panel=EVALUATION)] = None,
    flags: ConfigFlags | None = None,  # the model and optimiser flags of `minitx train` (not --pos, --seed)
    quiet: Annotated[bool, typer.Option(help="No per-run progress bars.", rich_help_panel=RUN)] = False,
    force: Annotated[bool, typer.Option(help="Overwrite report files changed since the lab wrote them.",
                                        rich_help_panel=RUN)] = False,
) -> None:
    """The positional-encoding lab: one model per kind and seed, trained and measured alike, with a report.

    Model and optimiser flags are those of `minitx train`; unset ones take the lab's defaults.

    The defaults (3 layers, 96 wide, block 64, 1200 steps) fit 5 kinds x 2 seeds in ~20 minutes on 2 CPU cores.
    """
    from minitx.commands.experiment import run_positions

    code = run_positions(files or [], out=out, kinds=kinds, seeds=seeds, flags=flags or {},
                         corpus_bytes=corpus_bytes, pairs=pairs, stories=stories, quiet=quiet, force=force)
    if code:
        raise typer.Exit(code)


@command(experiment_app, "norm")
def experiment_norm(
    out: Annotated[Path, typer.Option(help="Experiment directory (created; rerun the same command to resume).",
                                      rich_help_panel=RUN)] = Path("runs/norm"),
    norms: Annotated[str | None, typer.Option(help="Comma-separated PLACE[-KIND][+noise] (default: "
                                                   "pre,post,none,pre-rms,pre+noise).")] = None,
    seeds: Annotated[int | None, typer.Option(help="Runs per variant, seeds 0..K-1 (default 2).")] = None,
    steps: Annotated[int | None, typer.Option(help="Training steps per run (default 300).")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads per run.", rich_help_panel=RUN)] = None,
    quick: Annotated[bool, typer.Option(help="A tiny version (1 seed, 1 lr, 1 depth, 60 steps) to try it out.")]
    = False,
    quiet: Annotated[bool, typer.Option(help="No per-run progress bars.", rich_help_panel=RUN)] = False,
) -> None:
    """Does layer normalization speed up convergence, and is less covariate shift why? (note 004)

    pre-LN, post-LN, no norm, RMSNorm and pre-LN with Santurkar's shifting noise, x warmup on/off x 2 learning
    rates x 2 depths x seeds: divergence, steps and seconds to a target loss, final loss, covariate shift of
    every block's input; and each layer's gradient norm at initialisation for depths 2-12 (Xiong et al. Fig. 3).
    """
    from minitx.commands.experiment import run_norm

    code = run_norm(out=out, norms=norms, seeds=seeds, steps=steps, threads=threads, quick=quick, quiet=quiet)
    if code:
        raise typer.Exit(code)


@command(experiment_app, "heads")
def experiment_heads(
    out: Annotated[Path, typer.Option(help="Experiment directory (created; rerun the same command to resume).",
                                      rich_help_panel=RUN)] = Path("runs/heads"),
    heads: Annotated[str | None, typer.Option(help="Comma-separated head counts at equal width (default 1,2,4,8).")]
    = None,
    tasks: Annotated[str | None, typer.Option(help="lm (stories), mt (translation pairs) or lm,mt (default).")] = None,
    seeds: Annotated[int | None, typer.Option(help="Runs per variant, seeds 0..K-1 (default 2).")] = None,
    steps: Annotated[int | None, typer.Option(help="Training steps per run of both tasks (default: 500 for the GPT, "
                                                   "1200 for the encoder-decoder).")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads per run.", rich_help_panel=RUN)] = None,
    quick: Annotated[bool, typer.Option(help="A tiny version (1 seed, 60 steps, few pairs) to try it out.")] = False,
    quiet: Annotated[bool, typer.Option(help="No per-run progress bars.", rich_help_panel=RUN)] = False,
) -> None:
    """Do more heads help with longer-range dependencies? (note 000) 1, 2, 4, 8 heads at the same width.

    A GPT on the stories (minimal pairs by distance, grammaticality) and an encoder-decoder on the pairs (exact
    match, best cross-attention AER, pruning curves per attention kind, as Michel et al. 2019).
    """
    from minitx.commands.experiment import run_heads

    code = run_heads(out=out, heads=heads, tasks=tasks, seeds=seeds, steps=steps, threads=threads, quick=quick,
                     quiet=quiet)
    if code:
        raise typer.Exit(code)


@command(experiment_app, "attention")
@config_options(TrainConfig, exclude=("seed", "preset", "tokenizer"))
def experiment_attention(
    out: Annotated[Path, typer.Option(help="Experiment directory (created; rerun the same command to resume).",
                                      rich_help_panel=RUN)] = Path("runs/attention"),
    archs: Annotated[str | None, typer.Option(help="Comma-separated architectures that translate (default: "
                                                   "rnn,rnn-attention,encoder-decoder).")] = None,
    seeds: Annotated[int | None, typer.Option(help="Runs per variant, seeds 0..K-1 (default 2).")] = None,
    short_words: Annotated[int | None, typer.Option(help="Also train each arch on pairs of at most this many "
                                                         "words (the \"-30\" variants; 0: none; default 30).")] = None,
    per_bucket: Annotated[int | None, typer.Option(help="Held-out pairs per source-length bucket (default 40).",
                                                   rich_help_panel=EVALUATION)] = None,
    quick: Annotated[bool, typer.Option(help="A tiny version (1 seed, 30 steps, few pairs) to try it out.")] = False,
    flags: ConfigFlags | None = None,  # the optimiser flags of `minitx train` (the shapes are each arch's preset's)
    quiet: Annotated[bool, typer.Option(help="No per-run progress bars.", rich_help_panel=RUN)] = False,
) -> None:
    """Translation quality by source length (Bahdanau et al. 2015, Fig. 2): RNN, RNN + attention, transformer.

    Every architecture trains on the same long pairs (up to 8 sentences joined, ≤ 60 words) with the same steps,
    batch and seeds, plus a "-30" variant trained on short pairs only; each is scored per source-length bucket.
    """
    from minitx.commands.experiment import run_attention

    code = run_attention(out=out, archs=archs, seeds=seeds, short_words=short_words, per_bucket=per_bucket,
                         quick=quick, flags=flags or {}, quiet=quiet)
    if code:
        raise typer.Exit(code)


# ------------------------------------------------------------------------------------------------
# inspect


@dataclass(frozen=True)
class InspectOutputs:
    """The options every `inspect-*` command shares (`inspect_outputs`): files to write, and where to compute."""

    png: Path | None
    html: Path | None
    json_path: Path | None
    force: bool
    device: str
    threads: int


def inspect_outputs(*, png: str, html: str | None) -> Callable[[F], F]:
    """Give an inspect command the options they all share, declared once here: --png (its `png` help), --html (its
    `html` help; None: no --html), --json, --force, --device, --threads. The command receives them as one
    `outputs: InspectOutputs` parameter, where it declares it."""
    def option(name: str, annotation: Any, default: Any, *declarations: str, **kwargs: Any) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default,
                                 annotation=Annotated[annotation, typer.Option(*declarations, **kwargs)])

    options = [option("png", Path | None, None, help=png, rich_help_panel="Files")]
    if html is not None:
        options.append(option("html", Path | None, None, help=html, rich_help_panel="Files"))
    options += [
        option("json_", Path | None, None, "--json", metavar="FILE", rich_help_panel="Files",
               help="Also save everything measured as JSON (docs/inspect-json.md)."),
        option("force", bool, False, help="Overwrite the --png/--html/--json files if they exist.",
               rich_help_panel="Files"),
        option("device", Device, Device.auto, help=DEVICE_HELP),
        option("threads", int, 0, help=flag_of(next(f for f in flag_fields(TrainConfig) if f.name == "threads")).help),
    ]

    def collect(given: dict[str, Any]) -> InspectOutputs:
        return InspectOutputs(given["png"], given.get("html"), given["json_"], given["force"],
                              _plain(given["device"]), given["threads"])

    return lambda func: _options_as_one(func, "outputs", options, collect)


def _outputs(outputs: InspectOutputs | None) -> dict[str, Any]:
    """The shared options as the keyword arguments of every commands.inspect / commands.circuits runner."""
    assert outputs is not None, "filled by @inspect_outputs"
    return {"png": outputs.png, "html": outputs.html, "json_path": outputs.json_path, "force": outputs.force,
            "device": outputs.device, "threads": outputs.threads}


@command(app, "inspect-attention")
@inspect_outputs(png="Also save every head (or --layer's heads) as a PNG; with --ablate also FILE-ablation.png.",
                 html="Also save an offline HTML page to explore every head.")
def inspect_attention(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    prompt: Annotated[str | None, typer.Option(help="Text to read ('-' reads stdin; default: a short story).")]
    = None,
    layer: Annotated[int | None, typer.Option(help="Show this layer (default: the most telling head's).")] = None,
    head: Annotated[int | None, typer.Option(help="Show this head (default: the most telling one).")] = None,
    generate: Annotated[int, typer.Option(help="First sample N tokens after the prompt; show attention over both.",
                                          metavar="N")] = 0,
    over: Annotated[int | None, typer.Option(help="Also score every head's roles on N validation windows: "
                                                  "mean ± spread, named only when a role holds.", metavar="N",
                                             rich_help_panel="Measurements")] = None,
    induction: Annotated[bool, typer.Option("--induction", help="Also find induction heads on repeated random "
                                                                "tokens, and the loss on each copy.",
                                            rich_help_panel="Measurements")] = False,
    length: Annotated[int | None, typer.Option(help="--induction: random tokens per copy (default: up to 32 that fit).",
                                               metavar="L", rich_help_panel="Measurements")] = None,
    repeats: Annotated[int | None, typer.Option(help="--induction: copies of the random tokens (default 2).",
                                                metavar="R", rich_help_panel="Measurements")] = None,
    ablate: Annotated[bool, typer.Option("--ablate", help="Also measure the validation loss with each head zeroed "
                                                          "and mean-ablated: which heads the model needs.",
                                         rich_help_panel="Measurements")] = False,
    seed: Annotated[int, typer.Option(help="Seed of --generate and of --induction's random tokens.")] = 0,
    max_tokens: Annotated[int | None, typer.Option(help="Keep only the last N tokens (default: block size).")]
    = None,
    source: Annotated[str | None, typer.Option(help="Encoder-decoder runs: the sentence to read ('-': stdin; "
                                                    "default: \"The big dog sees the red ball.\").",
                                               rich_help_panel="Encoder-decoder")] = None,
    target: Annotated[str | None, typer.Option(help="Encoder-decoder runs: the translation to read (default: the "
                                                    "built-in corpus's, else the model's own).",
                                               rich_help_panel="Encoder-decoder")] = None,
    alignment: Annotated[str | None, typer.Option(help="Encoder-decoder runs: gold word links SOURCE-TARGET, e.g. "
                                                       "\"0-0 1-2 2-1\" (default: the built-in corpus's).",
                                                  rich_help_panel="Encoder-decoder")] = None,
    outputs: InspectOutputs | None = None,  # --png, --html, --json, --force, --device, --threads
) -> None:
    """Show what each attention head looks at, which heads are induction heads, and which the model needs.

    On an encoder-decoder run: encoder, decoder and cross-attention for --source, and how well each
    cross-attention head aligns the words (AER; --over N on held-out pairs).
    """
    from minitx.commands.inspect import run_inspect_attention

    run_inspect_attention(run_dir, prompt=prompt, layer=layer, head=head, max_tokens=max_tokens, over=over,
                          induction=induction, length=length, repeats=repeats, ablate=ablate, generate=generate,
                          seed=seed, source=source, target=target, alignment=alignment, **_outputs(outputs))


@command(app, "inspect-positions")
def inspect_positions(
    run_dirs: Annotated[list[Path], typer.Argument(help="One run directory, or several to compare side by side.")],
    positions: Annotated[int | None, typer.Option(help="Positions to look at (default: block size, at most 128).")]
    = None,
    png: Annotated[Path | None, typer.Option(help="Also save the view as FILE.png and FILE-by-distance.png "
                                                  "(several runs: one FILE.png side by side).")]
    = None,
    device: Annotated[Device, typer.Option(help=DEVICE_HELP)] = Device.auto,
    force: Annotated[bool, typer.Option(help="Overwrite the --png files if they exist.")] = False,
) -> None:
    """Show what the positional encoding gives the model: how positions relate, and how that changes with distance."""
    from minitx.commands.inspect import run_inspect_positions

    run_inspect_positions(run_dirs, positions=positions, png=png, device=device.value, force=force)


# ------------------------------------------------------------------------------------------------
# what the model computes: the logit lens, direct logit attribution, activation patching


@command(app, "inspect-lens")
@inspect_outputs(png="Also save the lens as a PNG.", html="Also save the offline HTML page, with a logit-lens tab.")
def inspect_lens(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    prompt: Annotated[str | None, typer.Option(help="Text to read ('-' reads stdin; default: a short story). "
                                                    "Encoder-decoder runs: the translation so far (default: the "
                                                    "whole translation).")]
    = None,
    target: Annotated[str | None, typer.Option(help="Follow this word's probability at every position (default: "
                                                    "the token that actually comes next).", metavar="WORD")] = None,
    attribute: Annotated[tuple[str, str] | None, typer.Option(help="Split logit(GOOD) − logit(BAD) at the last "
                                                                   "position into the embedding, every head "
                                                                   "(and cross-attention head) and every MLP.",
                                                              metavar="GOOD BAD")] = None,
    source: Annotated[str | None, typer.Option(help="Encoder-decoder runs: the sentence being translated ('-': "
                                                    "stdin; default: \"The big dog sees the red ball.\").",
                                               metavar="SENTENCE", rich_help_panel="Encoder-decoder")] = None,
    outputs: InspectOutputs | None = None,  # --png, --html, --json, --force, --device, --threads
) -> None:
    """Read the residual stream after every block as a prediction (the logit lens); --attribute splits a logit gap.

    On an encoder-decoder run: the decoder's stream, given --source and the translation so far (--prompt).
    """
    from minitx.commands.circuits import run_inspect_lens

    run_inspect_lens(run_dir, prompt=prompt, target=target, attribute=attribute, source=source, **_outputs(outputs))


@command(app, "inspect-patch")
@inspect_outputs(png="Also save the grids as a PNG.",
                 html="Also save the offline HTML page, with the patching heatmaps.")
def inspect_patch(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    pairs: Annotated[str | None, typer.Option(help="Patch on built-in minimal pairs of this phenomenon "
                                                   "(agreement_local, agreement_far). Encoder-decoder runs: source "
                                                   "pairs with one noun swapped, for one of the same target gender "
                                                   "(noun) or of the other (gender).", metavar="PHENOMENON")]
    = None,
    n: Annotated[int, typer.Option("--n", help="--pairs: how many pairs to average over.", metavar="N")] = 64,
    clean: Annotated[str | None, typer.Option(help="A clean prompt (instead of --pairs). Encoder-decoder runs: a "
                                                   "clean source sentence.", metavar="TEXT")] = None,
    corrupt: Annotated[str | None, typer.Option(help="The corrupt prompt, as many tokens as --clean. "
                                                     "Encoder-decoder runs: the corrupt source (any length).",
                                                metavar="TEXT")] = None,
    answer: Annotated[tuple[str, str] | None, typer.Option(help="--clean/--corrupt: the two answers to compare "
                                                                "(default: each prompt's top next token; "
                                                                "encoder-decoder runs: the two translations' next "
                                                                "tokens).", metavar="GOOD BAD")] = None,
    prompt: Annotated[str | None, typer.Option(help="Encoder-decoder runs, --clean/--corrupt: the translation so far, "
                                                    "the same for both sources (default: where the two "
                                                    "translations part).", metavar="TEXT",
                                               rich_help_panel="Encoder-decoder")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the pairs and of the bootstrap intervals.")] = 0,
    outputs: InspectOutputs | None = None,  # --png, --html, --json, --force, --device, --threads
) -> None:
    """Activation patching: which stream positions, heads and MLPs carry the clean answer into the corrupt run.

    On an encoder-decoder run: between two source sentences, the translation so far fixed; the decoder's
    stream, self- and cross-attention heads and MLPs.
    """
    from minitx.commands.circuits import run_inspect_patch

    run_inspect_patch(run_dir, pairs=pairs, n=n, clean=clean, corrupt=corrupt, answer=answer, prompt=prompt,
                      seed=seed, **_outputs(outputs))


# ------------------------------------------------------------------------------------------------
@command(app, "serve")
def serve(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories to explore, side by side (at most 4).")],
    host: Annotated[str, typer.Option(help="Address to listen on; any but loopback lets others reach the page "
                                           "(a warning says so).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: a free one).")] = 0,
    open_: Annotated[bool, typer.Option("--open", help="Open the page in the web browser.")] = False,
    device: Annotated[Device, typer.Option(help=DEVICE_HELP)] = Device.auto,
    threads: Annotated[int, typer.Option(min=0, help="CPU threads (0: the idle cores).")] = 0,
) -> None:
    """A live explorer in the browser: type, and watch attention, the next token and the translation change.

    Prints the page's URL with a random access token (docs/serve.md); Ctrl-C stops it.
    """
    from minitx.commands.serve import run_serve

    run_serve(run_dirs, host=host, port=port, open_browser=open_, device=device.value, threads=threads)


# to and from Hugging Face transformers


@command(app, "export")
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    format: Annotated[ExportFormat, typer.Option("--format", help="hf: a transformers folder (GPT-2, GPT-NeoX "
                                                                 "or MPT).")] = ExportFormat.hf,
    out: Annotated[Path, typer.Option(help="Folder to write (config.json, model.safetensors, tokenizer).")]
    = Path("export"),
    force: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Export a run for Hugging Face transformers: from_pretrained(DIR) gives the same logits."""
    from minitx.commands.interop import run_export

    run_export(run_dir, format=format.value, out=out, force=force)


@command(app, "import-hf")
def import_hf(
    directory: Annotated[Path, typer.Argument(help="A GPT-2-family checkpoint folder (config.json + safetensors), "
                                                   "e.g. a snapshot in the Hugging Face cache.")],
    out: Annotated[Path, typer.Option(help="Run directory to create.")] = Path("runs/imported"),
    force: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Import a GPT-2 / GPT-NeoX / MPT checkpoint as a run: generate, eval and inspect it. Never loads a pickle."""
    from minitx.commands.interop import run_import_hf

    run_import_hf(directory, out=out, force=force)


@app.command("version")
def version() -> None:
    """Print the minitx version."""
    from minitx import __version__

    typer.echo(__version__)


if __name__ == "__main__":  # python -m minitx.cli
    app()
