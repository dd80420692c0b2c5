"""minitx from Python: load a run (or train one) and ask it what the commands ask, in a notebook or a script.

    import minitx
    run = minitx.load("runs/tiny")
    run.generate("The dog", seed=0)
    run.lens("The dogs run.")

loaded.py   `load` and `LoadedRun`, whose verbs are the commands': generate, translate, evaluate, and (from
            inside.py) run_with_cache, attention, lens, attribute, patch, roles_over, induction, ablate,
            alignment_over
inside.py   the inspect verbs: what inspect-attention, inspect-lens and inspect-patch compute
evaluate.py what `minitx eval` measures, for a language model and for a translator
train.py    `train` (as `minitx train`) and `random_run` (an untrained run in memory)
results.py  what the verbs return: `to_dict()` / `to_json()` (the commands' --json documents), `_repr_html_`
inputs.py   how what a user types becomes what the library reads, and the checks of the choices (shared
            with the commands, which call the verbs and print)
html.py     the notebook's pictures: shaded tables and inline SVG, no script, nothing fetched

The tour: docs/python.md and examples/tour.ipynb.

Example (an untrained model, so the numbers are noise; the shapes are a trained run's):
    >>> from minitx.api import random_run
    >>> run = random_run(seed=0)
    >>> result = run.attention("The dog sees the dog.")
    >>> result.weights.shape[:2], result._repr_html_().count('class="minitx-head"')
    (torch.Size([2, 2]), 4)
"""

from minitx.api.loaded import LoadedRun, RunConfig, load
from minitx.api.results import (
    AttentionResult,
    AttributionResult,
    CacheResult,
    Evaluation,
    Generation,
    LensResult,
    PairAttentionResult,
    PatchResult,
    Result,
    Translations,
)
from minitx.api.train import random_run, train

__all__ = [
    "AttentionResult", "AttributionResult", "CacheResult", "Evaluation", "Generation", "LensResult", "LoadedRun",
    "PairAttentionResult", "PatchResult", "Result", "RunConfig", "Translations", "load", "random_run", "train",
]
