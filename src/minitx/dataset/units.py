"""Units of a language model's loss: nats per token, and bits per byte of text.

A loss in nats per token depends on the tokenizer (a token of 4 bytes costs more than one of 1);
bits per byte does not, so runs with different tokenizers compare on it:

    bits/byte = (loss in nats/token) / ln 2 / (bytes per token)

Training reports it at every evaluation and `minitx eval` scores text with it: one formula for both.
"""

from __future__ import annotations

import math


def bits_per_byte(loss_nats_per_token: float, bytes_per_token: float) -> float:
    """Convert a loss in nats per token into bits per byte of text, comparable across tokenizers.

    A token that stands for 4 bytes on average and costs ln 2 nats (1 bit) costs a quarter bit per byte:

    >>> bits_per_byte(math.log(2), bytes_per_token=4.0)
    0.25
    """
    return loss_nats_per_token / math.log(2) / bytes_per_token
