"""Ways to get a run besides loading one: `minitx.train(...)` trains it as `minitx train` does and returns it
loaded; `random_run(...)` builds an untrained one in memory, for trying a verb in a second.

    run = minitx.train("runs/tiny", preset="tiny", steps=200, threads=1)
    run = minitx.random_run(seed=0)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from minitx.api.loaded import LoadedRun, load
from minitx.config import ModelConfig, TrainConfig
from minitx.errors import UserError

#: The text random_run's character tokenizer is made from: the letters and marks of the built-in stories.
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,!?'\"\n"


def _flag_names() -> set[str]:
    from minitx.config import flag_fields

    return {f.name for f in flag_fields(ModelConfig, TrainConfig)}


def train(out: str | Path, preset: str | None = None, steps: int | None = None, *,
          files: Sequence[str | Path] = (), force: bool = False, resume: bool = False, device: str = "auto",
          **flags: Any) -> LoadedRun:
    """Train a run as `minitx train --out OUT` does (quietly) and return it loaded.

    `flags` are the command's flags by their configuration field names (`n_layers=2`, `dim=32`, `lr=3e-3`,
    `arch="encoder-decoder"`, `tokenizer="char"`, `threads=1`, ...); `files` the corpus files (none: the built-in
    stories, or the built-in sentence pairs for an encoder-decoder). The result's `.training` holds the final
    losses and timings.

        run = train("runs/tiny", preset="tiny", steps=200, threads=1)
    """
    from minitx.training.setup import run_training

    known = _flag_names()
    unknown = sorted(set(flags) - known)
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(f"minitx.train has no flag {unknown[0]!r}{hint}; the flags are the fields of ModelConfig "
                        "and TrainConfig, e.g. n_layers=2, dim=64, lr=3e-3")
    arguments = {**flags, "preset": preset, "steps": steps, "device": device}
    _, result = run_training([Path(f) for f in files], Path(out), flags=arguments, resume=resume, force=force,
                             show_progress=False)
    run = load(out, device=device, threads=flags.get("threads") or 0)
    run.training = result
    return run


def random_run(arch: str = "gpt", *, seed: int = 0, text: str = ALPHABET, **shape: Any) -> LoadedRun:
    """An untrained run in memory: a character tokenizer over `text` (with `<|doc|>`), and a small model of
    `arch` (2 layers × 2 heads × 32 wide, block 32, unless `shape` says otherwise) initialised from `seed`.

        >>> run = random_run(seed=0)
        >>> len(run.attention("The dog").tokens)   # <|doc|> and 7 characters
        8
    """
    import torch

    from minitx.model import build_model
    from minitx.rundir import Run
    from minitx.text.tokenizer import Tokenizer

    tokenizer = Tokenizer.train_char(text)
    values = {"block_size": 32, "n_layers": 2, "n_heads": 2, "dim": 32, "arch": arch, **shape}
    config = ModelConfig(vocab_size=tokenizer.vocab_size, **values)
    torch.manual_seed(seed)
    model = build_model(config).eval()
    files = Run(Path(f"random-{arch}"), config, TrainConfig(preset=None), tokenizer)
    return LoadedRun(model, files, name=f"random {arch} (seed {seed})", device="cpu")
