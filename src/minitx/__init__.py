"""minitx: train, sample and look inside small transformer language models.

Importing this package is cheap on purpose: torch and the other heavy libraries are imported
by the modules that need them, so `minitx --help` answers instantly.
"""

__version__ = "0.1.0"

#: Version of the on-disk checkpoint layout (config.json's "format"). Bump it when the layout changes.
#: 1: weights, optimizer and trainer state side by side in RUN_DIR (a crash while saving could mix two steps).
#: 2: each checkpoint a directory RUN_DIR/checkpoints/step-NNNNNN/, written whole and renamed into place.
CHECKPOINT_FORMAT = 2
#: Formats this version loads: format 1 runs still sample, evaluate and resume (their next save uses format 2).
READABLE_FORMATS = (1, 2)
