"""`python -m minitx ...` runs the command line (torchrun launches it this way)."""

from minitx.cli import app

app()
