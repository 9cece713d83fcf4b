"""Context windows gathered per batch, on the training device, by index arithmetic.

A split lives on the device as one padded array: `context` zero frames before every
utterance and after the last, so frame i of utterance u sits at row i + context * (u + 1)
and its window is rows [p - context, p + context], which never reaches into a
neighbouring utterance. A batch is one `index_select`; nothing is done per frame in Python.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from phonemlp.data.corpus import Split


class WindowedSplit:
    """A split's padded features, frame positions and labels on one device."""

    def __init__(
        self,
        split: Split,
        context: int,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.context = context
        self.frames = split.frames
        self.feature_dim = split.feature_dim
        utterance = np.repeat(np.arange(len(split.names), dtype=np.int64), split.lengths)
        positions = np.arange(self.frames, dtype=np.int64) + context * (utterance + 1)
        padded = np.zeros(
            (self.frames + context * (len(split.names) + 1), self.feature_dim), np.float32
        )
        padded[positions] = split.features
        self.padded = torch.from_numpy(padded).to(device=device, dtype=dtype)
        self.positions = torch.from_numpy(positions).to(device)
        self.labels = None if split.labels is None else torch.from_numpy(split.labels).to(device)
        self.window = torch.arange(-context, context + 1, device=device)

    @property
    def input_dim(self) -> int:
        return (2 * self.context + 1) * self.feature_dim

    def windows(self, rows: torch.Tensor) -> torch.Tensor:
        """The flattened context windows of frames `rows`: (len(rows), input_dim)."""
        index = (self.positions[rows].unsqueeze(1) + self.window).view(-1)
        return self.padded.index_select(0, index).view(len(rows), self.input_dim)

    def batches(
        self,
        batch_size: int,
        order: torch.Tensor | None = None,
        limit: int = 0,
        start: int = 0,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """(windows, labels) batches over `order` (a permutation of frames) or in frame order,
        from batch `start` on (to resume an epoch part-way)."""
        total = self.frames if order is None else len(order)
        count = -(-total // batch_size)
        if limit:
            count = min(count, limit)
        device = self.padded.device
        for b in range(start, count):
            start, end = b * batch_size, min((b + 1) * batch_size, total)
            rows = torch.arange(start, end, device=device) if order is None else order[start:end]
            labels = None if self.labels is None else self.labels[rows].long()
            yield self.windows(rows), labels

    def num_batches(self, batch_size: int, limit: int = 0) -> int:
        count = -(-self.frames // batch_size)
        return min(count, limit) if limit else count
