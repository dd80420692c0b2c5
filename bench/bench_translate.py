"""Translation speed: minitx's greedy decoding vs transformers' cached `generate` of a BART of the same shape.

Both models are random (no download), built in this process with the same shape -- the `translate`
preset's: encoder 2 + decoder 2 layers, 4 heads, 128 wide, MLP 512, vocabulary 1024 -- and decode a
batch of 32 random sources of 8-16 tokens greedily for exactly `--new` tokens each (the end token is
made unreachable in both, so neither stops early), fp32, the same torch threads. Both use a KV cache
for the decoder's self-attention and compute the encoder's keys and values once. Runs alternate
A B A B ...; the median sentences/s of each and their ratio are printed. Goal: minitx ≥ 2x.

`--quantize int8` adds a third row: the same minitx model with int8 weights (`quantize_int8`, as
`minitx translate --quantize int8`), timed in the same alternation, with its speed-up over fp32 and
over BART, and how often its greedy outputs on these sources equal the fp32 model's. `--run RUN` also
translates the first `--sentences` held-out pairs of a trained encoder-decoder run in fp32 and int8
(`generation.translate.translate`, greedy, batch 32): sentences/s, exact match and chrF against the
references, and int8's exact match against fp32's outputs.

    python bench/bench_translate.py               # 5 repeats of each
    python bench/bench_translate.py --quick       # 1 repeat: does it run?
    python bench/bench_translate.py --quantize int8 --run runs/translate --sentences 500
    python bench/bench_translate.py --quantize int8 --layers 6 --dim 384     # a larger shape than the preset's
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from minitx.config import ModelConfig
from minitx.generation.translate import greedy
from minitx.model import build_model
from minitx.model.quantize import QUANTIZE_CHOICES, quantize_int8

VOCAB, DIM, HEADS, LAYERS, MLP, BLOCK = 1024, 128, 4, 2, 512, 64
END = 2  # the end token both sides are told about, made unreachable


def set_shape(layers: int, dim: int) -> None:
    """Another shape for both models (`--layers`, `--dim`): MLP 4 × dim, heads of 32 (4 at the preset's 128)."""
    global LAYERS, DIM, HEADS, MLP
    LAYERS, DIM, HEADS, MLP = layers, dim, dim // 32, 4 * dim


def minitx_model() -> torch.nn.Module:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=VOCAB, block_size=BLOCK, n_layers=LAYERS, encoder_layers=LAYERS, n_heads=HEADS,
                         dim=DIM, arch="encoder-decoder")
    model = build_model(config).eval()
    with torch.no_grad():
        model.wte.weight[END] = 0.0  # tied: its logit is 0, and some other token always scores higher
    return model


def bart_model():
    from transformers import BartConfig, BartForConditionalGeneration

    torch.manual_seed(0)
    config = BartConfig(vocab_size=VOCAB, d_model=DIM, encoder_layers=LAYERS, decoder_layers=LAYERS,
                        encoder_attention_heads=HEADS, decoder_attention_heads=HEADS, encoder_ffn_dim=MLP,
                        decoder_ffn_dim=MLP, max_position_embeddings=BLOCK, pad_token_id=1, bos_token_id=0,
                        eos_token_id=END, decoder_start_token_id=END, forced_eos_token_id=None,
                        forced_bos_token_id=None)
    return BartForConditionalGeneration(config).eval()


def sources(batch: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(1)
    return [torch.randint(3, VOCAB, (int(torch.randint(8, 17, (1,), generator=g)),), generator=g).tolist()
            for _ in range(batch)]


def time_minitx(model: torch.nn.Module, batch: list[list[int]], new: int) -> float:
    started = time.perf_counter()
    out = greedy(model, batch, boundary_id=END, max_new_tokens=new)
    seconds = time.perf_counter() - started
    assert all(len(row) == new for row in out), "a translation ended early"
    return len(batch) / seconds


def agreement(model: torch.nn.Module, reference: torch.nn.Module, batch: list[list[int]],
              new: int) -> tuple[float, float]:
    """(share of rows, share of tokens) of `model`'s greedy outputs equal to `reference`'s."""
    ours, theirs = (greedy(m, batch, boundary_id=END, max_new_tokens=new) for m in (model, reference))
    rows = sum(a == b for a, b in zip(ours, theirs, strict=True)) / len(batch)
    tokens = sum(x == y for a, b in zip(ours, theirs, strict=True) for x, y in zip(a, b, strict=True))
    return rows, tokens / sum(len(b) for b in theirs)


def trained_run(run_dir: str, sentences: int, repeats: int) -> None:
    """Translate a trained run's held-out pairs in fp32 and int8: speed, exact match and chrF, int8 vs fp32."""
    from minitx.evaluation.translation import chrf, exact_match
    from minitx.evaluation.translation_eval import held_out_pairs
    from minitx.generation.translate import translate
    from minitx.rundir import load_model

    fp32, run = load_model(run_dir, device="cpu")
    int8 = copy.deepcopy(fp32)
    quantize_int8(int8)
    block = fp32.config.block_size
    pairs = [p for p in held_out_pairs(run) if len(run.tokenizer.encode(p["source"])) + 1 <= block][:sentences]
    sources, references = [p["source"] for p in pairs], [p["target"] for p in pairs]
    outputs, rates = {}, {"fp32": [], "int8": []}
    for name, model in (("fp32", fp32), ("int8", int8)):
        outputs[name] = translate(model, run.tokenizer, sources)  # also the warm-up
    for _ in range(repeats):  # alternated
        for name, model in (("fp32", fp32), ("int8", int8)):
            started = time.perf_counter()
            assert translate(model, run.tokenizer, sources) == outputs[name]
            rates[name].append(len(sources) / (time.perf_counter() - started))
    print(f"{run_dir}: {len(sources)} held-out pairs, greedy, batch 32, median of {repeats}")
    for name in ("fp32", "int8"):
        print(f"  {name}  {statistics.median(rates[name]):8.1f} sentences/s   exact match "
              f"{exact_match(outputs[name], references):.1%}   chrF {chrf(outputs[name], references):.1f}")
    print(f"  int8 / fp32: {statistics.median(rates['int8']) / statistics.median(rates['fp32']):.2f}x; int8 output "
          f"= fp32 output: {exact_match(outputs['int8'], outputs['fp32']):.1%}, chrF of int8 against fp32 "
          f"{chrf(outputs['int8'], outputs['fp32']):.1f}")


def time_bart(model, batch: list[list[int]], new: int) -> float:
    longest = max(len(s) for s in batch) + 1
    ids = torch.full((len(batch), longest), 1)
    mask = torch.zeros(len(batch), longest, dtype=torch.long)
    for row, s in enumerate(batch):
        ids[row, : len(s) + 1] = torch.tensor([*s, END])
        mask[row, : len(s) + 1] = 1
    started = time.perf_counter()
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
                             do_sample=False, num_beams=1, use_cache=True)
    seconds = time.perf_counter() - started
    assert out.shape[1] == new + 1, out.shape  # the start token and `new` tokens
    return len(batch) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--new", type=int, default=24, help="tokens per translation")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quantize", choices=QUANTIZE_CHOICES, default="none",
                        help="int8: also time the minitx model with int8 weights")
    parser.add_argument("--run", help="a trained encoder-decoder run: also translate its held-out pairs, fp32 and int8")
    parser.add_argument("--sentences", type=int, default=500, help="held-out pairs of --run to translate")
    parser.add_argument("--layers", type=int, default=LAYERS, help="encoder and decoder layers, each")
    parser.add_argument("--dim", type=int, default=DIM, help="width (a multiple of 32)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    set_shape(args.layers, args.dim)
    repeats = 1 if args.quick else args.repeats
    ours, theirs, batch = minitx_model(), bart_model(), sources(args.batch)
    rows = {"minitx": lambda: time_minitx(ours, batch, args.new)}
    if args.quantize == "int8":
        int8 = copy.deepcopy(ours)
        quantize_int8(int8)
        rows["minitx int8"] = lambda: time_minitx(int8, batch, args.new)
    rows["transformers BART"] = lambda: time_bart(theirs, batch, args.new)
    for timed in rows.values():  # warm up each
        timed()
    rates: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(repeats):  # alternated: A B (C) A B (C) ...
        for name, timed in rows.items():
            rates[name].append(timed())
    print(f"{LAYERS} + {LAYERS} layers × {DIM} wide, vocabulary {VOCAB}: batch {args.batch}, {args.new} new tokens "
          f"each, greedy, fp32{' and int8' if len(rows) > 2 else ''}, {args.threads} threads, median of {repeats}")
    median = {name: statistics.median(values) for name, values in rates.items()}
    for name, value in median.items():
        print(f"  {name:18s} {value:8.1f} sentences/s")
    print(f"  minitx / transformers: {median['minitx'] / median['transformers BART']:.2f}x (goal: 2x)")
    if "minitx int8" in median:
        same_rows, same_tokens = agreement(int8, ours, batch, args.new)
        print(f"  minitx int8 / minitx fp32: {median['minitx int8'] / median['minitx']:.2f}x, "
              f"int8 / transformers: {median['minitx int8'] / median['transformers BART']:.2f}x; "
              f"int8 greedy output = fp32's: {same_rows:.0%} of rows, {same_tokens:.1%} of tokens")
    if args.run:
        trained_run(args.run, args.sentences, repeats)


if __name__ == "__main__":
    main()
