"""Views of what `minitx.inspect` measured: the terminal (rich), PNG (matplotlib), HTML (Jinja2) and JSON.

heatmap.py     one matrix as a terminal heatmap or a PNG, on the shared colour ramp
terminal.py    attention in the terminal: one head's heatmap, what a token reads, the tables of roles,
               roles over data, induction and ablation
pictures.py    attention and ablation as PNG files
html.py        the offline HTML explorer, rendered from templates/attention.html.j2
document.py    everything as one JSON document, checked against inspect-attention.schema.json
positions.py   the positional-encoding views, for one run or several side by side

Views compute nothing new: they lay out what the modules above them returned.
"""
