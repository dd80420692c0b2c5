"""Translation speed: minitx's greedy decoding vs transformers' cached `generate` of a BART of the same shape.

Both models are random (no download), built in this process with the same shape -- the `translate`
preset's: encoder 2 + decoder 2 layers, 4 heads, 128 wide, MLP 512, vocabulary 1024 -- and decode a
batch of 32 random sources of 8-16 tokens greedily for exactly `--new` tokens each (the end token is
made unreachable in both, so neither stops early), fp32, the same torch threads. Both use a KV cache
for the decoder's self-attention and compute the encoder's keys and values once. Runs alternate
A B A B ...; the median sentences/s of each and their ratio are printed. Goal: minitx ≥ 2x.

    python bench/bench_translate.py               # 5 repeats of each
    python bench/bench_translate.py --quick       # 1 repeat: does it run?
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from minitx.config import ModelConfig
from minitx.generation.translate import greedy
from minitx.model import build_model

VOCAB, DIM, HEADS, LAYERS, MLP, BLOCK = 1024, 128, 4, 2, 512, 64
END = 2  # the end token both sides are told about, made unreachable


def minitx_model() -> torch.nn.Module:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=VOCAB, block_size=BLOCK, n_layers=LAYERS, encoder_layers=LAYERS, n_heads=HEADS,
                         dim=DIM, arch="encoder-decoder")
    model = build_model(config).eval()
    with torch.no_grad():
        model.wte.weight[END] = 0.0  # tied: its logit is 0, and some other token always scores higher
    return model


def bart_model():  # noqa: ANN201 - transformers is optional
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


def time_bart(model, batch: list[list[int]], new: int) -> float:  # noqa: ANN001
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
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = 1 if args.quick else args.repeats
    ours, theirs, batch = minitx_model(), bart_model(), sources(args.batch)
    time_minitx(ours, batch, args.new), time_bart(theirs, batch, args.new)  # warm up both
    rates: dict[str, list[float]] = {"minitx": [], "transformers BART": []}
    for _ in range(repeats):  # alternated: A B A B
        rates["minitx"].append(time_minitx(ours, batch, args.new))
        rates["transformers BART"].append(time_bart(theirs, batch, args.new))
    print(f"batch {args.batch}, {args.new} new tokens each, greedy, fp32, {args.threads} threads, "
          f"median of {repeats}")
    for name, values in rates.items():
        print(f"  {name:18s} {statistics.median(values):8.1f} sentences/s")
    ratio = statistics.median(rates["minitx"]) / statistics.median(rates["transformers BART"])
    print(f"  minitx / transformers: {ratio:.2f}x (goal: 2x)")


if __name__ == "__main__":
    main()
