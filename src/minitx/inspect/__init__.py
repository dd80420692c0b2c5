"""Looking inside a trained model: what its attention heads do, and what its positions encode.

attention.py   capture the attention weights α of every layer and head for a text; name each head's role
positions.py   what each positional encoding kind gives the model: similarity of positions, decay with distance
heatmap.py     one matrix as a terminal heatmap (rich) or a PNG (matplotlib, the `plot` extra)
html.py        an offline, self-contained HTML page to explore every head (no network, no CDN)

Nothing here trains or changes a model; everything reads a run directory or a model in memory.
"""
