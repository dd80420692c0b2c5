"""Looking inside a trained model: what its attention heads do, which it needs, what its positions encode.

The modules depend on each other in one direction (an import-linter contract in pyproject.toml):

    views/                     terminal, PNG, HTML and JSON views of the results below
    over_data  induction  ablation  positions      measurements, each on its own kind of input
    roles                      naming a head from its weights α (previous token, first token, ...)
    capture  colours           the leaves: α of every head for some tokens; the one colour ramp

capture.py     run tokens through a model and keep every head's attention weights α [L, H, T, T]
roles.py       score one head's α for each simple role and name it
over_data.py   the same roles measured over many validation windows: mean ± spread, named when they hold
induction.py   induction heads, found on repeated random tokens; the loss on the first vs the repeat
ablation.py    the validation loss with each head zeroed or mean-ablated: which heads the model needs
positions.py   what each positional encoding kind gives the model: similarity of positions, decay with distance
colours.py     the white-to-blue ramp shared by the terminal, PNG and HTML views

Nothing here trains or changes a model's weights; everything reads a model in memory.
"""
