"""Experiments: many runs trained the same way, measured the same way, compared with error bars.

    positions.py   the positional-encoding lab: one model per kind x seed, resumable
    measure.py     everything measured on one finished run (lab.json)
    report.py      the runs summarised per kind: report.json, report.md, the sentences of the reading
    plots.py       validation curves and metrics with spread as PNGs (needs matplotlib: minitx[plot])
"""
