"""The optimizer of a run: AdamW for every weight, or Muon for the hidden matrices and AdamW for the rest.

AdamW (`--optimizer adamw`) gives every weight its own step size from running moments of its gradient,
and pulls matrices towards zero (decoupled weight decay); biases and norm gains are not decayed.

Muon (`--optimizer muon`) treats a hidden weight matrix W as a whole: it keeps a momentum M of the
gradient and steps along its nearest orthogonal matrix, found by five Newton–Schulz iterations,

    M ← μ·M + G          W ← W − lr_muon · NS(G + μ·M)        (Nesterov momentum, torch.optim.Muon)

so every direction of the update moves by about the same amount. It only makes sense for matrices
that map features to features: the token embedding (tied to the output layer), positional tables,
norms and biases stay with AdamW. Both optimizers follow the same warmup-then-cosine schedule, each
scaled to its own peak (`peak_lr` in every parameter group). Measurements: docs/decisions.md.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from minitx.config import TrainConfig
from minitx.errors import UserError

OPTIMIZERS = ("adamw", "muon")


def build_optimizer(model: nn.Module, cfg: TrainConfig, device: str) -> torch.optim.Optimizer:
    """The optimizer `cfg.optimizer` names, over the trainable parameters of `model`."""
    if cfg.optimizer == "adamw":
        return adamw(list(model.parameters()), cfg, device)
    if cfg.optimizer == "muon":
        muon_class = getattr(torch.optim, "Muon", None)
        if muon_class is None:
            raise UserError(f"--optimizer muon needs torch.optim.Muon, which torch {torch.__version__} lacks; "
                            "upgrade torch (2.9 or newer) or use --optimizer adamw")
        hidden = hidden_matrices(model)
        ids = {id(p) for p in hidden}
        rest = [p for p in model.parameters() if id(p) not in ids]
        muon = muon_class(hidden, lr=cfg.muon_lr, weight_decay=cfg.weight_decay, momentum=cfg.muon_momentum,
                          adjust_lr_fn="original")
        for group in muon.param_groups:
            group["peak_lr"] = cfg.muon_lr
        return ChainedOptimizer([muon, adamw(rest, cfg, device)])
    raise UserError(f"unknown optimizer {cfg.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")


def adamw(params: list[nn.Parameter], cfg: TrainConfig, device: str) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (2 or more dimensions: linear weights, embedding tables).

    Biases and LayerNorm gains (1-D) scale or shift rather than mix features; pulling them towards 0
    only fights the normalisation. The fused kernel (one kernel for all parameters) where torch has
    one for the device, else the multi-tensor `foreach` implementation.
    """
    params = [p for p in params if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay, "peak_lr": cfg.lr},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0, "peak_lr": cfg.lr},
    ]
    betas = (cfg.beta1, cfg.beta2)
    if device.split(":")[0] in ("cpu", "cuda", "mps", "xpu"):
        try:
            return torch.optim.AdamW(groups, lr=cfg.lr, betas=betas, fused=True)
        except (RuntimeError, TypeError, ValueError):
            pass  # this torch build has no fused kernel for the device
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=betas, foreach=True)


def hidden_matrices(model: nn.Module) -> list[nn.Parameter]:
    """The 2-D weights of the linear layers inside the network: not the embeddings, not the output layer.

    The output layer (`lm_head`) scores tokens like an embedding table (here it *is* the token table,
    tied), so it is excluded by name as well as by identity with an embedding's weight.
    """
    embedding_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    found, seen = [], set()
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or name.split(".")[-1] == "lm_head":
            continue
        weight = module.weight
        if weight.requires_grad and id(weight) not in embedding_weights and id(weight) not in seen:
            seen.add(id(weight))
            found.append(weight)
    return found


def set_schedule(optimizer: torch.optim.Optimizer, fraction: float, cfg: TrainConfig) -> None:
    """Set every group's learning rate to `fraction` of its own peak (`peak_lr`; runs saved before
    there was a choice of optimizer have none, and were AdamW at `--lr`)."""
    for group in optimizer.param_groups:
        group["lr"] = fraction * group.get("peak_lr", cfg.lr)


class ChainedOptimizer(torch.optim.Optimizer):
    """Several optimizers over disjoint parameters, stepped together and saved as one.

    `param_groups` lists the groups of each in turn; `state_dict()` numbers the parameters across all
    of them in that order, the layout `rundir` saves (safetensors) and loads back for an exact resume.
    """

    def __init__(self, optimizers: list[torch.optim.Optimizer]) -> None:
        self.optimizers = optimizers
        self.defaults: dict[str, Any] = {}

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for opt in self.optimizers for g in opt.param_groups]

    @property
    def state(self) -> dict[Any, Any]:
        return {p: s for opt in self.optimizers for p, s in opt.state.items()}

    def step(self, closure: None = None) -> None:
        for opt in self.optimizers:
            opt.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        state: dict[int, Any] = {}
        groups: list[dict[str, Any]] = []
        offset = 0
        for opt in self.optimizers:
            sd = opt.state_dict()
            state.update({offset + int(i): s for i, s in sd["state"].items()})
            groups += [{**g, "params": [offset + i for i in g["params"]]} for g in sd["param_groups"]]
            offset += sum(len(g["params"]) for g in sd["param_groups"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        groups, offset, first_group = state_dict["param_groups"], 0, 0
        for opt in self.optimizers:
            n_groups = len(opt.param_groups)
            n_params = sum(len(g["params"]) for g in opt.param_groups)
            own_groups = [{**g, "params": [i - offset for i in g["params"]]}
                          for g in groups[first_group:first_group + n_groups]]
            own_state = {int(i) - offset: s for i, s in state_dict["state"].items()
                         if offset <= int(i) < offset + n_params}
            opt.load_state_dict({"state": own_state, "param_groups": own_groups})
            offset += n_params
            first_group += n_groups
