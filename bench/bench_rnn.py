"""Bahdanau's length curve, small: the fixed-vector RNN encoder-decoder against RNNSearch, by source length.

Both models (model/rnn.py) train on the same joined pairs (`translation_pairs(..., join=K)`), in the same
batches in the same order, for the same number of steps, one thread; each is then scored on held-out pairs
per source-length bucket (`length_bucket_pairs`, sentences never seen in training): greedy translations
through the cached one-token step, exact match (Wilson 95% interval), chrF and BLEU per bucket. For
RNNSearch, the alignment error rate of α against the gold links is printed too (each target word's
most-attended source word; a random map's AER beside it). Tokens are whitespace words (the pairs' own
vocabulary, marks split off, `<unk>` for tokens never seen in training).

    python bench/bench_rnn.py                   # the docs/rnn.md run: 1,500 steps each, ~4 min in all
    python bench/bench_rnn.py --quick           # does it run? (seconds)
    python bench/bench_rnn.py --max-words 30    # train on sources of <= 30 words only ("RNNsearch-30")
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np
import torch

from minitx.config import ModelConfig
from minitx.corpus.translation import length_bucket_pairs, source_sentences, translation_pairs
from minitx.evaluation.intervals import wilson
from minitx.evaluation.translation import (
    attention_to_links,
    bleu,
    chrf,
    corpus_alignment_error_rate,
    exact_match,
    random_head_links,
)
from minitx.model.encoder_decoder import pad_sources
from minitx.model.rnn import RNNEncoderDecoder, RNNSearch

END, UNK = 0, 1  # the boundary token starts and ends a translation, as <|doc|> does in a run


def split(text: str) -> list[str]:
    """Words and marks apart: "¿Acaso Mia corre?" -> ["¿", "Acaso", "Mia", "corre", "?"]."""
    return re.findall(r"\w+|[^\w\s]", text)


def token_words(text: str) -> list[int]:
    """The whitespace word each token of `split(text)` belongs to (for pooling attention to words)."""
    return [index for index, word in enumerate(text.split()) for _ in split(word)]


class Words:
    """A vocabulary of the training pairs' tokens (`split`): 0 the end, 1 <unk>, then tokens by first sight."""

    def __init__(self, pairs: list[dict]) -> None:
        self.words = ["<end>", "<unk>"]
        self.ids: dict[str, int] = {}
        for pair in pairs:
            for word in split(pair["source"] + " " + pair["target"]):
                if word not in self.ids:
                    self.ids[word] = len(self.words)
                    self.words.append(word)

    def encode(self, text: str) -> list[int]:
        return [self.ids.get(word, UNK) for word in split(text)]

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.words[i] for i in ids)


def batches(pairs: list[dict], words: Words, batch_size: int, steps: int, seed: int):
    """`steps` batches (source, target_in, padding, targets) of neighbours by length, from random starts."""
    from minitx.dataset.pairs import collate

    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i]["source"].split()))
    encoded = [(np.array(words.encode(p["source"])), np.array(words.encode(p["target"]))) for p in pairs]
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        start = int(torch.randint(len(pairs), (1,), generator=generator))
        picked = [order[(start + i) % len(pairs)] for i in range(batch_size)]
        yield collate([encoded[i][0] for i in picked], [encoded[i][1] for i in picked], END)


def train(model: torch.nn.Module, data: list[tuple], lr: float) -> tuple[float, float]:
    """Adam with gradient clipping at 1 (as Bahdanau et al. clip): (seconds, last loss)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    start = time.perf_counter()
    for step, batch in enumerate(data):
        _, loss = model(*batch)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 200 == 0:
            elapsed = time.perf_counter() - start
            print(f"    step {step:5d}  loss {float(loss.detach()):.3f}  {elapsed:6.1f} s", flush=True)
    return time.perf_counter() - start, float(loss.detach())


@torch.no_grad()
def greedy(model: torch.nn.Module, sources: list[list[int]], max_new: int) -> list[list[int]]:
    """Greedy translations with the cached decoder state (new_cache, prefill_cross, decode_next)."""
    model.eval()
    source, padding = pad_sources(sources, END)
    cache, plan = model.new_cache(len(sources)), model.decode_plan(padding)
    model.prefill_cross(model.encode(source, padding), cache, plan)
    token = torch.full((len(sources), 1), END)
    written, done = [], torch.zeros(len(sources), dtype=torch.bool)
    for _ in range(max_new):
        token = model.decode_next(token, cache, padding, plan).argmax(-1, keepdim=True)
        token[done] = END
        written.append(token[:, 0])
        done |= token[:, 0] == END
        if bool(done.all()):
            break
    rows = torch.stack(written, dim=1).tolist()
    return [row[: row.index(END)] if END in row else row for row in rows]


def alignment_error(model: RNNSearch, words: Words, pairs: list[dict]) -> tuple[float, float]:
    """(AER of α's links, AER of random maps' links) over `pairs`, read with teacher forcing."""
    predicted, random_links, gold = [], [], []
    rng = np.random.default_rng(0)
    for pair in pairs:
        src, tgt = words.encode(pair["source"]), words.encode(pair["target"])
        source, padding = pad_sources([src], END)
        alpha = model.attention_map(source, torch.tensor([[END, *tgt]]), padding)[0]  # [T, S]
        # row t of α writes target token t; the end tokens belong to no word
        src_words, tgt_words = [*token_words(pair["source"]), -1], [*token_words(pair["target"]), -1]
        predicted.append(attention_to_links(alpha.numpy(), src_words, tgt_words))
        random_links.append(random_head_links(src_words, tgt_words, rng))
        gold.append([tuple(link) for link in pair["alignment"]])
    return corpus_alignment_error_rate(predicted, gold), corpus_alignment_error_rate(random_links, gold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=6000)
    parser.add_argument("--join", type=int, default=6, help="training pairs: 1 to JOIN sentences each")
    parser.add_argument("--max-words", type=int, default=None, help="train on sources of at most this many words")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--per-bucket", type=int, default=40)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.steps, args.per_bucket, args.dim = 300, 20, 4, 32
    torch.set_num_threads(1)

    train_pairs = translation_pairs(args.pairs, seed=0, join=args.join, max_words=args.max_words)
    seen = {s for p in train_pairs for s in source_sentences(p)}
    held_out = length_bucket_pairs(args.per_bucket, seed=1, exclude=seen)
    words = Words(train_pairs)
    lengths = [len(p["source"].split()) for p in train_pairs]
    print(f"{len(train_pairs)} training pairs, sources {min(lengths)}-{max(lengths)} words (mean "
          f"{sum(lengths) / len(lengths):.1f}), vocabulary {len(words.words)}; {args.steps} steps of "
          f"{args.batch_size}, dim {args.dim}, one thread")
    data = list(batches(train_pairs, words, args.batch_size, args.steps, seed=0))
    longest = max(max(b[0].shape[1], b[1].shape[1]) for b in data)
    block = max(longest, *(len(split(p["target"])) + 12 for ps in held_out.values() for p in ps))

    results = {}
    for name, cls in (("rnn", RNNEncoderDecoder), ("rnn-attention", RNNSearch)):
        torch.manual_seed(0)
        config = ModelConfig(vocab_size=len(words.words), block_size=block, n_layers=1, n_heads=1, dim=args.dim,
                             pos="none")
        model = cls(config)
        print(f"  {name}: {model.num_parameters():,} parameters", flush=True)
        seconds, loss = train(model, data, args.lr)
        tokens = sum(int((b[3] >= 0).sum()) for b in data)
        row = {"seconds": seconds, "loss": loss, "tokens_per_s": tokens / seconds}
        for bucket, pairs in held_out.items():
            sources = [words.encode(p["source"]) for p in pairs]
            hypotheses = [words.decode(ids) for ids in greedy(model, sources, block - 1)]
            references = [" ".join(split(p["target"])) for p in pairs]  # as the hypotheses are spelled
            exact = round(exact_match(hypotheses, references) * len(pairs))
            row[bucket] = (exact, len(pairs), chrf(hypotheses, references), bleu(hypotheses, references))
        if name == "rnn-attention":
            row["aer"] = alignment_error(model, words, [p for ps in held_out.values() for p in ps])
        results[name] = row

    print(f"\n{'bucket':>8}  " + "  ".join(f"{name + ' exact (95%)':>26} {'chrF':>5} {'BLEU':>5}"
                                           for name in results))
    for bucket in held_out:
        cells = []
        for row in results.values():
            exact, n, chrf_score, bleu_score = row[bucket]
            low, high = wilson(exact, n)
            cells.append(f"{exact / n:>9.0%} ({low:4.0%}-{high:4.0%}) n={n:<3} {chrf_score:5.1f} {bleu_score:5.1f}")
        print(f"{bucket:>8}  " + "  ".join(f"{c:>38}" for c in cells))
    for name, row in results.items():
        print(f"{name}: {row['seconds']:.0f} s training, {row['tokens_per_s']:,.0f} target tokens/s, "
              f"last loss {row['loss']:.3f}")
    aer, random_aer = results["rnn-attention"]["aer"]
    print(f"rnn-attention alignment error rate (α, all buckets): {aer:.3f}; random maps: {random_aer:.3f}")


if __name__ == "__main__":
    main()
