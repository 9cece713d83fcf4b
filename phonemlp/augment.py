"""Per-batch augmentation of context windows, on the training device.

All three act on a batch of windows viewed as (batch, frames, bands), with one random draw
per example and no Python work per frame:
- time masking: zero a random run of frames inside the window (never the centre frame);
- frequency masking: zero a random run of mel bands across the whole window;
- mel warp: stretch or squeeze the band axis by a random factor around 1 (in the spirit of
  vocal-tract-length perturbation), resampling the bands by linear interpolation.
"""

from __future__ import annotations

from typing import Any

import torch


def augment_enabled(cfg: Any) -> bool:
    """Whether any augmentation is switched on."""
    return (
        (cfg.time_mask_prob > 0 and cfg.time_mask_max > 0)
        or (cfg.freq_mask_prob > 0 and cfg.freq_mask_max > 0)
        or (cfg.warp_prob > 0 and cfg.warp_max > 0)
    )


def _spans(
    batch: int, length: int, max_width: int, prob: float, device: torch.device
) -> torch.Tensor:
    """A (batch, length) bool mask with one random run of 1..max_width per chosen example."""
    width = torch.randint(1, max_width + 1, (batch, 1), device=device)
    start = (torch.rand(batch, 1, device=device) * (length - width + 1)).long()
    position = torch.arange(length, device=device)
    chosen = torch.rand(batch, 1, device=device) < prob
    return (position >= start) & (position < start + width) & chosen


def augment(windows: torch.Tensor, bands: int, cfg: Any) -> torch.Tensor:
    """Augmented copy of flattened windows (batch, frames * bands)."""
    batch = windows.shape[0]
    x = windows.view(batch, -1, bands)
    frames, device = x.shape[1], x.device
    if cfg.warp_prob > 0 and cfg.warp_max > 0:
        factor = 1 + (torch.rand(batch, 1, device=device) * 2 - 1) * cfg.warp_max
        factor = torch.where(torch.rand(batch, 1, device=device) < cfg.warp_prob, factor, 1.0)
        source = (torch.arange(bands, device=device) * factor).clamp(0, bands - 1)
        low = source.floor().long()
        high = (low + 1).clamp(max=bands - 1)
        weight = (source - low).unsqueeze(1).to(x.dtype)
        low = low.unsqueeze(1).expand(-1, frames, -1)
        high = high.unsqueeze(1).expand(-1, frames, -1)
        x = x.gather(2, low) * (1 - weight) + x.gather(2, high) * weight
    if cfg.time_mask_prob > 0 and cfg.time_mask_max > 0 and frames > 1:
        masked = _spans(
            batch, frames, min(cfg.time_mask_max, frames - 1), cfg.time_mask_prob, device
        )
        masked[:, frames // 2] = False  # the centre frame carries the label
        x = x.masked_fill(masked.unsqueeze(2), 0.0)
    if cfg.freq_mask_prob > 0 and cfg.freq_mask_max > 0:
        masked = _spans(batch, bands, min(cfg.freq_mask_max, bands), cfg.freq_mask_prob, device)
        x = x.masked_fill(masked.unsqueeze(1), 0.0)
    return x.reshape(batch, -1)
