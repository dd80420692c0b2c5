"""What a run reads, below both training and evaluation: the corpus as a tokenizer and id streams, the split, batches.

    training_data.py   DATA_DIR, corpus files (through the token cache) or the built-in stories -> TrainingData
    batches.py         the train / validation split of the token stream, random next-token windows
    units.py           bits_per_byte: a loss in nats per token as bits per byte of text

Training draws its batches from here, and evaluation rebuilds a run's validation split the same way.
"""

from minitx.dataset.batches import BatchSampler, TokenSplit, split_prepared, split_train_val
from minitx.dataset.training_data import TrainingData, load_training_data
from minitx.dataset.units import bits_per_byte

__all__ = [
    "BatchSampler",
    "TokenSplit",
    "TrainingData",
    "bits_per_byte",
    "load_training_data",
    "split_prepared",
    "split_train_val",
]
