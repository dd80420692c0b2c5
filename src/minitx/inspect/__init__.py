"""Looking inside a trained model: what its attention heads do, which it needs, what it computes, what its
positions encode.

The modules depend on each other in one direction (an import-linter contract in pyproject.toml):

    views/                     terminal, PNG, HTML and JSON views of the results below
    patching                   activation patching over the places of the stream, the heads and the MLPs
    over_data  induction  ablation  positions  lens  attribution  contrasts    measurements
    roles                      naming a head from its weights α (previous token, first token, ...)
    capture  colours  residual the leaves: α of every head; the one colour ramp; the stream by hook name

capture.py      run tokens through a model and keep every head's attention weights α [L, H, T, T]
roles.py        score one head's α for each simple role and name it
over_data.py    the same roles measured over many validation windows: mean ± spread, named when they hold
induction.py    induction heads, found on repeated random tokens; the loss on the first vs the repeat
ablation.py     the validation loss with each head zeroed or mean-ablated: which heads the model needs
positions.py    what each positional encoding kind gives the model: similarity of positions, decay with distance
residual.py     the residual stream of either architecture through the model's hook points (`Stack`, `Reading`)
lens.py         the logit lens: the stream after every block read out as if it were the last
attribution.py  direct logit attribution: each head's, MLP's and the embedding's share of a logit difference
contrasts.py    clean/corrupt prompt pairs (minimal pairs, translations) with their answers and position labels
patching.py     activation patching: how much of the clean answer each place of the corrupt run brings back
alignment.py    an encoder-decoder's attention on a sentence pair, and each cross-attention head's AER
colours.py      the white-to-blue ramp shared by the terminal, PNG and HTML views

Everything reads the model through its named hook points (`minitx.model.hooks`, docs/hooks.md). Nothing here
trains or changes a model's weights; everything reads a model in memory.
"""
