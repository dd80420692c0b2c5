"""Run directories: everything needed to rebuild, sample from, or resume a model -- and no pickle.

A run directory holds plain files that any tool can read:

    RUN_DIR/
      config.json                format version, minitx version, ModelConfig, TrainConfig
      tokenizer.json             the tokenizer the model was trained with
      metrics.jsonl              one JSON line per evaluation
      checkpoints/
        step-000336/             the newest complete checkpoint (--keep K keeps the last K)
          model.safetensors      the weights, under GPT-2-like names (transformer.h.0.attn.c_attn.weight, ...)
          optimizer.safetensors  AdamW moments + RNG states, for --resume
          trainer_state.json     step, optimizer hyper-parameters, last loss

files.py reads and writes the files; checkpoints.py saves a checkpoint as one unit (a directory
written aside and renamed into place), finds the newest complete one, and cleans up after crashes.
Every reader -- generate, eval, inspect-*, info, --resume -- goes through `latest_checkpoint`.
"""

from minitx.rundir.checkpoints import (
    checkpoint_name,
    checkpoint_step,
    latest_checkpoint,
    leftovers,
    list_checkpoints,
    load_model,
    load_trainer_state,
    prune_checkpoints,
    remove_leftovers,
    require_checkpoint,
    require_weights_match_config,
    save_checkpoint,
    saved_step,
)
from minitx.rundir.files import (
    CHECKPOINTS,
    CONFIG,
    METRICS,
    OPTIMIZER,
    RUN_FILES,
    TOKENIZER,
    TRAINER_STATE,
    WEIGHTS,
    Run,
    append_metrics,
    is_run_dir,
    load_run,
    load_weights_into,
    model_state,
    parameter_count,
    read_config,
    read_metrics,
    read_tensors,
    save_config,
    save_weights,
    tensor_shapes,
    write_metrics,
)

__all__ = [
    "CHECKPOINTS", "CONFIG", "METRICS", "OPTIMIZER", "RUN_FILES", "TOKENIZER", "TRAINER_STATE", "WEIGHTS", "Run",
    "append_metrics", "checkpoint_name", "checkpoint_step", "is_run_dir", "latest_checkpoint", "leftovers",
    "list_checkpoints", "load_model", "load_run", "load_trainer_state", "load_weights_into", "model_state",
    "parameter_count", "prune_checkpoints", "read_config", "read_metrics", "read_tensors", "remove_leftovers",
    "require_checkpoint", "require_weights_match_config", "save_checkpoint", "saved_step", "save_config",
    "save_weights", "tensor_shapes", "write_metrics",
]
