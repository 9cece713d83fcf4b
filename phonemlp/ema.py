"""An exponential moving average of the weights (and BatchNorm statistics)."""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from phonemlp.errors import PhonemlpError


def make_ema(model: torch.nn.Module, decay: float) -> AveragedModel | None:
    """The EMA twin of `model` updated after every step, or None when decay is 0."""
    if decay == 0:
        return None
    if not 0.0 < decay < 1.0:
        raise PhonemlpError(f"ema={decay} must be 0 (off) or in (0, 1), e.g. 0.999")
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
