"""Decoding speed: minitx (KV cache + sliding window) vs nanoGPT (no cache) vs HF transformers (KV cache).

All three generate the same number of new tokens from a one-token prompt, batch 1, fp32, random
weights, plain sampling (temperature 1, no top-k), the same torch thread count, in one process;
runs alternate A B C A B C ... and the median tokens/s of each is reported. Two shapes:

  (a) 6 layers, 6 heads, 384 wide, vocab 65, block 1024 -- the context never fills the block.
  (b) 4 layers, 4 heads, 128 wide, vocab 65, block 64 -- the context outgrows the block, so minitx
      slides its window (refill every block/4 tokens) and nanoGPT crops to the last 64 tokens every
      step. HF GPT-2 raises an error past `n_positions` and has no window of its own, so it gets
      n_positions = prompt + new tokens and attends over the whole growing context (more attention
      work than the others, but at this width attention is a small share of a step).

minitx runs twice: in fp32 like the others, and with int8 weights (`--quantize int8`, weight-only,
activations rounded to bfloat16 at each product; see minitx.model.quantize) -- the numbers differ
slightly from fp32, so that row is a different trade, reported beside the fp32 one, not instead.

Goals: (a) minitx ≥ 3x HF and ≥ 10x nanoGPT; (b) ≥ 2x both. Floors per token, "if only the matrix
work counted": (1) its FLOPs -- 2·(non-embedding params) + 2·vocab·dim + 4·layers·dim·context,
context averaged over minitx's windows -- at the fp32 rate of large `torch.mm` calls, a bound no
batch-1 step comes near, because (2) in a batch-1 step each weight is used once, so the products
are bound by streaming the weights in: the bench times exactly those products (every block linear
and the output layer, one vector each, nothing else), in fp32 and in int8. (2) is the floor an
eager decode step can approach; everything above it is attention, LayerNorm, GELU, sampling and
the Python that calls them.

    python bench/bench_generate.py               # 500 tokens, 3 repeats, both shapes
    python bench/bench_generate.py --quick       # 50 tokens, 1 repeat: does it run?
    python bench/bench_generate.py --threads 2 --nanogpt ~/src/nanoGPT

nanoGPT's model.py is read at run time from a clone at a pinned commit in bench/_work/ (made on first
use; or `--nanogpt`, a checkout) and is never copied into this repository. HF needs
`pip install transformers`; without it that column is skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from minitx.config import ModelConfig
from minitx.generation.sampling import SamplingConfig, default_window_shift, generate_ids, slide_window
from minitx.model import GPT
from minitx.model.decode import linear_function
from minitx.model.quantize import Int8Linear, quantize_int8

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import nanogpt_dir  # noqa: E402 - bench/ helper, importable once bench/ is on the path


@dataclass(frozen=True)
class Shape:
    name: str
    n_layers: int
    n_heads: int
    dim: int
    block_size: int
    vocab_size: int
    goal_vs_hf: float
    goal_vs_nanogpt: float


SHAPES = {
    "a": Shape("(a) 6L 6H 384d block 1024", 6, 6, 384, 1024, 65, goal_vs_hf=3, goal_vs_nanogpt=10),
    "b": Shape("(b) 4L 4H 128d block 64, window slides", 4, 4, 128, 64, 65, goal_vs_hf=2, goal_vs_nanogpt=2),
}
PROMPT = [0]  # one token: all three start from the same context


# ---------------------------------------------------------------------------------------------
# the three generators: each returns a function that generates `new_tokens` tokens once


def minitx_generator(shape: Shape, new_tokens: int, quantize: bool = False) -> tuple[Callable[[], None], GPT]:
    config = ModelConfig(vocab_size=shape.vocab_size, block_size=shape.block_size, n_layers=shape.n_layers,
                         n_heads=shape.n_heads, dim=shape.dim, pos="learned", dropout=0.0, bias=True)
    model = GPT(config).eval()
    if quantize:
        quantize_int8(model)  # the caller seeds torch so that both minitx runners share their weights
    cfg = SamplingConfig(max_new_tokens=new_tokens, temperature=1.0, seed=0)
    return (lambda: generate_ids(model, PROMPT, cfg)), model


def load_nanogpt_module(checkout: Path | None):
    """nanoGPT's model.py as a module (from `checkout`, else a clone at the pinned commit), or None."""
    root = nanogpt_dir(checkout)
    path = root / "model.py" if root is not None else None
    if path is None or not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("nanogpt_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nanogpt_generator(module, shape: Shape, new_tokens: int) -> Callable[[], None]:
    config = module.GPTConfig(block_size=shape.block_size, vocab_size=shape.vocab_size, dropout=0.0,
                              bias=True, n_layer=shape.n_layers, n_head=shape.n_heads, n_embd=shape.dim)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its parameter count
        model = module.GPT(config).eval()
    idx = torch.tensor([PROMPT])
    return lambda: model.generate(idx, new_tokens, temperature=1.0, top_k=None)


def hf_generator(shape: Shape, new_tokens: int) -> Callable[[], None] | None:
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
        from transformers.utils import logging as hf_logging
    except ImportError:
        return None
    hf_logging.set_verbosity_error()
    n_positions = max(shape.block_size, len(PROMPT) + new_tokens)  # HF cannot slide; see the docstring
    config = GPT2Config(vocab_size=shape.vocab_size, n_positions=n_positions, n_embd=shape.dim,
                        n_layer=shape.n_layers, n_head=shape.n_heads, resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, bos_token_id=0, eos_token_id=None, pad_token_id=0)
    model = GPT2LMHeadModel(config).eval()
    idx = torch.tensor([PROMPT])
    mask = torch.ones_like(idx)

    def run() -> None:
        model.generate(idx, attention_mask=mask, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                       max_new_tokens=new_tokens, min_new_tokens=new_tokens, use_cache=True)

    return run


# ---------------------------------------------------------------------------------------------
# measuring


def matmul_flops_per_second(n: int = 1024, calls: int = 5) -> float:
    """The machine's fp32 matmul rate: best of a few n×n @ n×n products (2·n³ FLOPs each)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm up
    best = float("inf")
    for _ in range(calls):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best


def mean_context(shape: Shape, new_tokens: int) -> float:
    """Average number of tokens minitx attends over per decoded token (its window policy, simulated)."""
    shift, start, total = default_window_shift(shape.block_size), 0, 0
    for end in range(len(PROMPT), len(PROMPT) + new_tokens):
        start = slide_window(start, end, shape.block_size, shift)
        total += end - start
    return total / new_tokens


def weight_products_seconds(model: GPT, repeats: int = 200) -> float:
    """Seconds for the matrix-vector products of one decoded token alone, measured on `model`'s weights.

    One token at batch 1 multiplies a single vector by every weight matrix of every block and by
    the output matrix (lm_head, vocabulary × dim: with a large vocabulary the largest of them);
    nothing else is timed here (no attention, LayerNorm, sampling or Python around them). Each
    weight is used once, so unlike a big `torch.mm` these products are bound by how fast the
    kernel streams the weights in. fp32 weights are timed three ways -- F.linear on W [out, in], mm on a
    contiguous Wᵀ [in, out], and the kernel minitx.model.decode picks for each (oneDNN's inner product on
    a packed copy for the large ones on an x86 CPU at two threads or more) -- and the fastest counts: the
    bound of an eager decode step on this machine.
    """
    plain: list[Callable[[], torch.Tensor]] = []
    transposed: list[Callable[[], torch.Tensor]] = []
    chosen: list[Callable[[], torch.Tensor]] = []
    for layer in model.modules():  # the blocks' linears and the output layer
        if isinstance(layer, torch.nn.Linear):
            x = torch.randn(1, layer.in_features, dtype=layer.weight.dtype)
            plain.append(partial(F.linear, x, layer.weight, layer.bias))
            wt = layer.weight.detach().t().contiguous()
            transposed.append(partial(torch.addmm, layer.bias, x, wt) if layer.bias is not None
                              else partial(torch.mm, x, wt))
            chosen.append(partial(linear_function(layer), x))  # the kernel minitx's decode step uses for it
        elif isinstance(layer, Int8Linear):  # the int8 kernel alone, on a bfloat16 vector
            x = torch.randn(1, layer.in_features, dtype=torch.bfloat16)
            plain.append(partial(torch._weight_int8pack_mm, x, layer.qweight, layer.scale.bfloat16()))

    def timed(products: list[Callable[[], torch.Tensor]]) -> float:
        with torch.inference_mode():
            for _ in range(20):
                for product in products:
                    product()
            started = time.perf_counter()
            for _ in range(repeats):
                for product in products:
                    product()
        return (time.perf_counter() - started) / repeats

    return min(timed(products) for products in (plain, transposed, chosen) if products)


def weight_bytes(model: GPT) -> int:
    """Bytes of the weight matrices one decoded token reads: every linear map of the blocks and lm_head."""
    total = 0
    for layer in model.modules():
        if isinstance(layer, torch.nn.Linear):
            total += layer.weight.numel() * layer.weight.element_size()
        elif isinstance(layer, Int8Linear):
            total += layer.qweight.numel()
    return total


def stream_seconds(n_bytes: int, repeats: int = 50) -> float:
    """Seconds to read `n_bytes` of fp32 once (a sum over a buffer that large): the memory floor of a step."""
    buffer = torch.randn(max(1, n_bytes // 4))
    buffer.sum()
    started = time.perf_counter()
    for _ in range(repeats):
        buffer.sum()
    return (time.perf_counter() - started) / repeats


def floors_per_token(
    models: dict[str, GPT], shape: Shape, new_tokens: int, flops_per_second: float
) -> dict[str, float]:
    """Seconds per decoded token if only the matrix work counted: as FLOPs at the big-matmul rate, as
    reading the fp32 weights once at this machine's streaming rate, and as the measured weight products
    of each model (fp32, and int8 when present) -- the last are the bounds the table's "of bound" uses."""
    model = models["minitx"]
    non_embedding = model.num_parameters(exclude_embeddings=True)
    context = mean_context(shape, new_tokens)
    flops = 2 * non_embedding + 2 * shape.vocab_size * shape.dim + 4 * shape.n_layers * shape.dim * context
    n_bytes = weight_bytes(model)
    floors = {"floor: FLOPs at the big-matmul rate": flops / flops_per_second,
              f"floor: reading the fp32 weights once ({n_bytes / 1e6:.0f} MB)": stream_seconds(n_bytes)}
    for name, m in models.items():
        kind = "int8" if name.endswith("int8") else "fp32"
        floors[f"bound: the {kind} weight products alone"] = weight_products_seconds(m)
    return floors


@torch.inference_mode()
def measure(runners: dict[str, Callable[[], None]], new_tokens: int, repeats: int) -> dict[str, float]:
    """Median tokens/s of each runner, alternating them (A B C A B C ...) after one warm-up each."""
    for run in runners.values():
        run()
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            started = time.perf_counter()
            run()
            rates[name].append(new_tokens / (time.perf_counter() - started))
    return {name: statistics.median(values) for name, values in rates.items()}


def ratio_cell(ours: float, theirs: float | None, goal: float) -> str:
    if theirs is None:
        return "[dim]skipped[/dim]"
    ratio = ours / theirs
    mark = "[green]✓[/green]" if ratio >= goal else "[red]✗[/red]"
    return f"{ratio:.1f}x (goal ≥ {goal:g}x) {mark}"


def report(
    console: Console, shape: Shape, rates: dict[str, float], floors: dict[str, float], threads: int
) -> None:
    """One table: each generator's rate, its bound (the measured weight products of its number type,
    fp32 or int8) and the fraction of that bound it reaches, and how minitx compares with the others."""
    bounds = {"fp32": floors["bound: the fp32 weight products alone"],
              "int8": floors.get("bound: the int8 weight products alone")}
    table = Table(title=f"{shape.name}: batch 1, {threads} thread(s), {cpu_name()}")
    for column in ("generator", "tokens/s", "ms/token", "bound tok/s", "of bound", "minitx fp32 is", "minitx int8 is"):
        table.add_column(column, justify="left" if column == "generator" else "right")
    for name, label in (("minitx", "minitx fp32 (KV cache, window)"), ("minitx-int8", "minitx int8 weights"),
                        ("hf", "HF GPT2 generate fp32 (KV cache)"), ("nanogpt", "nanoGPT generate fp32 (no cache)")):
        if name not in rates:
            table.add_row(label, "[dim]skipped[/dim]", "", "", "", "", "")
            continue
        bound = bounds["int8" if name == "minitx-int8" else "fp32"]
        reached = f"{rates[name] * bound:.0%}" if bound else ""
        goal = {"hf": shape.goal_vs_hf, "nanogpt": shape.goal_vs_nanogpt}.get(name)
        vs = ratio_cell(rates["minitx"], rates[name], goal) if goal else ""
        vs8 = ratio_cell(rates["minitx-int8"], rates[name], goal) if goal and "minitx-int8" in rates else ""
        if name == "minitx":
            reached += " (goal ≥ 50%)"
        table.add_row(label, f"{rates[name]:,.0f}", f"{1000 / rates[name]:.2f}",
                      f"{1 / bound:,.0f}" if bound else "", reached, vs, vs8)
    for label, floor in floors.items():
        table.add_row(f"[dim]{label}[/dim]", f"{1 / floor:,.0f}", f"{floor * 1000:.3f}", "", "", "", "")
    console.print(table)
    console.print("  bound: one matrix-vector product per weight matrix (every block's and lm_head), nothing else, "
                  "in the generator's number type, the fastest of F.linear, addmm on Wᵀ and the decode step's own "
                  "kernel; of bound = tokens/s ÷ "
                  "bound tok/s.", highlight=False)


def cpu_name() -> str:
    """The processor the figures were measured on, and whether it has AMX tiles."""
    from minitx.device import cpu_has_amx
    from minitx.training.mfu import device_name

    return f"{device_name('cpu')}, {'AMX' if cpu_has_amx() else 'no AMX'}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=500, help="new tokens per generation")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each generator (median reported)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads, the same for all generators")
    ap.add_argument("--shapes", default="ab", help="which shapes to run: a, b or ab")
    ap.add_argument("--nanogpt", type=Path, default=None, help="nanoGPT checkout (default: cloned into bench/_work)")
    ap.add_argument("--quick", action="store_true", help="50 tokens, 1 repeat: check that it runs")
    args = ap.parse_args(argv)
    if args.quick:
        args.tokens, args.repeats = 50, 1

    console = Console(width=150)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    nanogpt = load_nanogpt_module(args.nanogpt)
    if nanogpt is None:
        console.print("[yellow]nanoGPT not available (see above): skipped[/yellow]")
    if hf_generator(SHAPES["b"], 1) is None:
        console.print("[yellow]transformers is not installed (pip install transformers): HF skipped[/yellow]")
    flops_per_second = matmul_flops_per_second()
    console.print(f"fp32 matmul {flops_per_second / 1e9:.1f} GFLOP/s on {args.threads} thread(s); "
                  f"{args.tokens} new tokens, {args.repeats} repeat(s)")

    for key in args.shapes:
        shape = SHAPES[key]
        torch.manual_seed(0)
        run_minitx, model = minitx_generator(shape, args.tokens)
        torch.manual_seed(0)
        run_int8, model_int8 = minitx_generator(shape, args.tokens, quantize=True)
        runners: dict[str, Callable[[], None]] = {"minitx": run_minitx, "minitx-int8": run_int8}
        run_hf = hf_generator(shape, args.tokens)
        if run_hf is not None:
            runners["hf"] = run_hf
        if nanogpt is not None:
            runners["nanogpt"] = nanogpt_generator(nanogpt, shape, args.tokens)
        rates = measure(runners, args.tokens, args.repeats)
        floors = floors_per_token({"minitx": model, "minitx-int8": model_int8}, shape, args.tokens, flops_per_second)
        report(console, shape, rates, floors, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
