"""The optimizer a config's `optimizer` group names (any torch.optim class via `_target_`)."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from phonemlp.errors import PhonemlpError


def build_optimizer(
    optimizer_cfg: DictConfig, model: torch.nn.Module, no_decay_norm_bias: bool = False
) -> torch.optim.Optimizer:
    """The torch optimizer; bad values give one clear line. With `no_decay_norm_bias`, weight
    decay applies to the weight matrices only. Fused (one kernel per update) where offered."""
    parameters: Any = model.parameters()
    if no_decay_norm_bias:
        matrices = [p for p in model.parameters() if p.ndim >= 2]
        others = [p for p in model.parameters() if p.ndim < 2]
        parameters = [{"params": matrices}, {"params": others, "weight_decay": 0.0}]
    try:
        factory = instantiate(optimizer_cfg)
        options = {}
        if "fused" not in optimizer_cfg and "fused" in inspect.signature(factory.func).parameters:
            options["fused"] = True
        return factory(parameters, **options)
    except Exception as error:  # torch validates lr, momentum, betas... with ValueError
        cause = error.__cause__ or error
        raise PhonemlpError(f"optimizer: {cause}; check optimizer.* settings") from None
