"""One evaluator for both tools: mean cross-entropy per character over the whole validation split.

Each tool's own evaluation averages a few random batches (nanoGPT: `eval_iters` batches; minitx:
`--eval-batches`), so two runs' printed validation losses differ by sampling noise of the order of
the gap being measured. Here both models are scored on the same text, every token of it:

* The validation text. nanoGPT's data/shakespeare_char/prepare.py holds out
  `data[int(n * 0.9):]` of the n characters; minitx holds out the last `int(n_tokens * 0.1)` tokens
  (dataset.batches.split_train_val, tokens/prepare.py), which with the char tokenizer are the last
  `int(n * 0.1)` characters. The two rules round differently: on tiny Shakespeare (n = 1,115,394)
  nanoGPT's split starts at character 1,003,854 and minitx's at 1,003,855, so minitx's validation
  text is nanoGPT's without its first character. The evaluator scores `validation_text`: the later of
  the two starts, i.e. the text *neither* tool trained on, and asserts at load time that it is exactly
  minitx's val.bin (decoded) and a suffix of nanoGPT's val.bin (decoded) -- the same string for both.
* The windows. All non-overlapping windows of block_size + 1 tokens, stride block_size: inputs
  window[:-1], targets window[1:]; a last, shorter window takes the tokens left over, so every
  validation token is predicted exactly once except the first (which only serves as context).
* The number. fp32, torch.no_grad, model.eval(); the summed cross-entropy (nats) over all predicted
  tokens divided by their count. With the char tokenizer one token is one character, checked.

    python bench/full_val.py --data tinyshakespeare.txt --minitx RUN_DIR [--step 600]
    python bench/full_val.py --data tinyshakespeare.txt --nanogpt-ckpt OUT/ckpt.pt --nanogpt CHECKOUT
"""

from __future__ import annotations

import argparse
import importlib.util
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

BATCH = 64


def nanogpt_val_start(n_chars: int) -> int:
    """Where nanoGPT's shakespeare_char/prepare.py starts its validation text: int(n * 0.9)."""
    return int(n_chars * 0.9)


def minitx_val_start(n_tokens: int, val_fraction: float = 0.1) -> int:
    """Where minitx starts its validation tokens: the last int(n * val_fraction) are held out."""
    return n_tokens - int(n_tokens * val_fraction)


def validation_text(corpus: str) -> str:
    """The text both tools held out: from the later of their two split points to the end (see the docstring)."""
    return corpus[max(nanogpt_val_start(len(corpus)), minitx_val_start(len(corpus))):]


def window_count(n_tokens: int, block_size: int) -> tuple[int, int]:
    """(full windows of block_size + 1 tokens at stride block_size, tokens of the last shorter window or 0)."""
    full, left = divmod(n_tokens - 1, block_size)
    return full, (left + 1 if left else 0)


@torch.no_grad()
def score_ids(logits_of: Callable[[torch.Tensor], torch.Tensor], ids: np.ndarray | list[int], block_size: int,
              batch: int = BATCH) -> float:
    """Mean cross-entropy (nats per token) of `logits_of` ([B, T] ids -> [B, T, V] logits) over all of `ids`.

    Windows ids[k*B : k*B + B + 1] for k = 0, 1, ...: each token from the second on is a target once.
    """
    data = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    full, last = window_count(len(data), block_size)
    total, count = 0.0, 0
    groups = [torch.arange(k, min(k + batch, full)) for k in range(0, full, batch)]
    offsets = torch.arange(block_size + 1)
    for group in groups:
        windows = data[group[:, None] * block_size + offsets]  # [b, B + 1]
        logits = logits_of(windows[:, :-1].contiguous()).float()
        total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), windows[:, 1:].reshape(-1),
                                 reduction="sum").item()
        count += windows[:, 1:].numel()
    if last:
        window = data[full * block_size:][None, :]  # the `last` tokens left over
        logits = logits_of(window[:, :-1].contiguous()).float()
        total += F.cross_entropy(logits[0], window[0, 1:], reduction="sum").item()
        count += last - 1
    assert count == len(data) - 1, (count, len(data))  # every token but the first, once
    return total / count


def _run(model: torch.nn.Module, logits_of: Callable[[torch.Tensor], torch.Tensor], ids: Any,
         block_size: int) -> float:
    model.float().eval()
    return score_ids(logits_of, ids, block_size)


# ----------------------------------------------------------------------------------------- minitx


def minitx_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """A run's complete checkpoints, oldest first, as (step, RUN/checkpoints/step-NNNNNN)."""
    from minitx.rundir import list_checkpoints

    return list_checkpoints(Path(run_dir))


class MinitxScorer:
    """Scores any checkpoint of one minitx run directory on `validation_text(corpus)`.

    The weights of a given step are read the way `minitx.rundir.load_model` reads the newest: the
    run's ModelConfig, build_model, the checkpoint's model.safetensors, strictly (names and shapes).
    """

    def __init__(self, run_dir: Path, corpus: str) -> None:
        from minitx.rundir import load_run

        self.run = load_run(run_dir)
        text = validation_text(corpus)
        self.ids = np.asarray(self.run.tokenizer.encode(text), dtype=np.int64)
        if len(self.ids) != len(text):
            raise SystemExit(f"{run_dir}: its tokenizer is not one token per character ({len(self.ids)} tokens for "
                             f"{len(text)} characters); full_val compares char-level models")
        prepared = self.run.train_config.prepared_data
        if prepared:  # minitx's own held-out tokens must be exactly the evaluator's text
            from minitx.tokens.store import open_prepared

            val = np.asarray(open_prepared(prepared).val, dtype=np.int64)
            assert np.array_equal(val, self.ids), f"{prepared}/val.bin is not the evaluator's validation text"

    def score(self, checkpoint: Path) -> float:
        """Full-split loss of the weights in `checkpoint` (a RUN/checkpoints/step-NNNNNN directory)."""
        from minitx.model import build_model
        from minitx.rundir import WEIGHTS, load_weights_into, read_tensors

        tensors, _ = read_tensors(Path(checkpoint) / WEIGHTS, "weights file")
        model = build_model(self.run.model_config)
        load_weights_into(model, tensors, Path(checkpoint) / WEIGHTS)
        return _run(model, lambda x: model(x)[0], self.ids, self.run.model_config.block_size)


def score_minitx(run_dir: Path, corpus: str, step: int | None = None) -> float:
    """Full-split loss of a minitx run's checkpoint of `step` (default: its newest)."""
    found = dict(minitx_checkpoints(run_dir))
    if not found:
        raise SystemExit(f"{run_dir} has no checkpoints/step-*/")
    step = max(found) if step is None else step
    if step not in found:
        raise SystemExit(f"{run_dir} has no checkpoint of step {step} (it has {sorted(found)})")
    return MinitxScorer(run_dir, corpus).score(found[step])


# ---------------------------------------------------------------------------------------- nanoGPT


def _nanogpt_model_module(checkout: Path) -> Any:
    """nanoGPT's model.py from the checkout given, imported under its own name (no sys.path change)."""
    spec = importlib.util.spec_from_file_location("nanogpt_model", Path(checkout) / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_nanogpt(ckpt_path: Path, checkout: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """nanoGPT's GPT(GPTConfig(**ckpt['model_args'])) with the checkpoint's weights ('_orig_mod.' stripped)."""
    nano = _nanogpt_model_module(checkout)
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    model = nano.GPT(nano.GPTConfig(**ckpt["model_args"]))
    state = {k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()}
    model.load_state_dict(state)
    return model, ckpt


def score_nanogpt(ckpt_path: Path, checkout: Path, corpus: str) -> tuple[float, int]:
    """Full-split loss of a nanoGPT ckpt.pt, and the iteration it was saved at (ckpt['iter_num']).

    Tokenized with data/shakespeare_char/meta.pkl's stoi; nanoGPT's val.bin is checked to end with
    exactly the evaluator's text.
    """
    ddir = Path(checkout) / "data" / "shakespeare_char"
    with open(ddir / "meta.pkl", "rb") as f:
        meta = pickle.load(f)
    text = validation_text(corpus)
    ids = np.asarray([meta["stoi"][c] for c in text], dtype=np.int64)
    own = np.fromfile(ddir / "val.bin", dtype=np.uint16).astype(np.int64)
    assert len(own) >= len(ids) and np.array_equal(own[len(own) - len(ids):], ids), \
        f"{ddir}/val.bin does not end with the evaluator's validation text (prepared from another corpus?)"
    model, ckpt = load_nanogpt(ckpt_path, checkout)
    # nanoGPT's forward returns every position's logits only when given targets (its loss is not used)
    loss = _run(model, lambda x: model(x, x)[0], ids, ckpt["model_args"]["block_size"])
    return loss, int(ckpt["iter_num"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the corpus both were trained on")
    ap.add_argument("--minitx", type=Path, help="a minitx run directory")
    ap.add_argument("--step", type=int, default=None, help="--minitx: which checkpoint (default: the newest)")
    ap.add_argument("--nanogpt-ckpt", type=Path, help="a nanoGPT ckpt.pt")
    ap.add_argument("--nanogpt", type=Path, help="--nanogpt-ckpt: the nanoGPT checkout (its model.py, meta.pkl)")
    args = ap.parse_args(argv)
    if not args.data.is_file():
        print(f"--data {args.data} not found", file=sys.stderr)
        return 2
    corpus = args.data.read_text(encoding="utf-8")
    if args.minitx:
        print(f"minitx {args.minitx}: {score_minitx(args.minitx, corpus, args.step):.4f}")
    if args.nanogpt_ckpt:
        if args.nanogpt is None:
            print("--nanogpt-ckpt needs --nanogpt CHECKOUT", file=sys.stderr)
            return 2
        loss, step = score_nanogpt(args.nanogpt_ckpt, args.nanogpt, corpus)
        print(f"nanoGPT {args.nanogpt_ckpt} (iter {step}): {loss:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
