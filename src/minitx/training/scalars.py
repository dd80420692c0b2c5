"""TensorBoard event files beside metrics.jsonl (`--log tensorboard`): the same scalars, for its viewer.

Every record the trainer appends to metrics.jsonl (one per evaluation) becomes one point of each
number in it, at its step, under RUN_DIR/tensorboard: `tensorboard --logdir RUN_DIR/tensorboard`.
The `tensorboard` package is an optional extra (`pip install minitx[tensorboard]`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from minitx.errors import UserError

LOG_DIR = "tensorboard"
#: metrics.jsonl keys -> TensorBoard tags (grouped into sections by the part before the slash)
TAGS = {"train_loss": "loss/train", "val_loss": "loss/val", "val_bpb": "loss/val_bits_per_byte", "lr": "lr",
        "tokens_per_second": "speed/tokens_per_second", "ms_per_step": "speed/ms_per_step", "mfu": "speed/mfu"}


def require_tensorboard() -> None:
    """UserError (one line, exit 2) when the optional package is missing, before any training starts."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise UserError("--log tensorboard needs the tensorboard package: pip install 'minitx[tensorboard]' "
                        "(or leave out --log)") from None


class TensorBoardLog:
    """Writes metric records as TensorBoard scalars under `run_dir/tensorboard`."""

    def __init__(self, run_dir: Path) -> None:
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / LOG_DIR))

    def write(self, record: dict[str, Any]) -> None:
        for key, tag in TAGS.items():
            value = record.get(key)
            if isinstance(value, (int, float)):
                self.writer.add_scalar(tag, value, global_step=record["step"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
