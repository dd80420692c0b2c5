"""minitx: train, sample and look inside small transformer language models.

Importing this package is cheap on purpose: torch and the other heavy libraries are imported
by the modules that need them, so `minitx --help` answers instantly.
"""

__version__ = "0.1.0"

#: Version of the on-disk checkpoint layout (config.json's "format"). Bump it when the layout changes.
CHECKPOINT_FORMAT = 1
