"""Context windows gathered per batch, on the training device, by index arithmetic.

A split lives as one padded array: every utterance has at least `context` zero rows
before and after it, so the window of frame i of utterance u is the contiguous block of
rows [r - context, r + context] around its row r = i + base[u], and never reaches into a
neighbouring utterance. Seen as overlapping rows of (2 * context + 1) * dim numbers (a
strided view, no copy), a batch of windows is one `index_select`; nothing is done per
frame in Python.

Where the padded array lives:
- CPU: the prepared split's memory map itself when it is already in the batch dtype (no
  copy), else one copy in the batch dtype (bf16 halves it; the model casts its input to
  bf16 under autocast anyway, so the numbers are the same).
- GPU: the whole array in GPU memory when it fits; otherwise pinned host memory, each
  batch gathered on the CPU into one of two pinned buffers and copied asynchronously on a
  side stream while the GPU works on the previous batch.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np
import torch

from phonemlp.data.cache import read_rows
from phonemlp.data.corpus import Split

_CHUNK_BYTES = 64 << 20
_GPU_RESERVE = 2 << 30  # GPU memory left for the model, activations and the other split


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    return torch.from_numpy(np.empty(0, dtype)).dtype


def _runs(split: Split, pad: int) -> list[tuple[int, int]]:
    """Utterance ranges [first, last) that are contiguous in `split.features` with exactly
    `split.pad` zero rows between neighbours, when that padding is at least `pad`."""
    count = len(split.names)
    if count == 0:
        return []
    starts, lengths = split.rows, split.lengths
    joined = np.zeros(count, dtype=bool)
    if split.pad >= pad and count > 1:
        joined[1:] = starts[1:] == starts[:-1] + lengths[:-1] + split.pad
    firsts = np.flatnonzero(~joined)
    return list(zip(firsts.tolist(), [*firsts[1:].tolist(), count], strict=True))


def padded_copy(
    split: Split,
    pad: int,
    dtype: torch.dtype,
    device: torch.device,
    pin_memory: bool = False,
) -> tuple[torch.Tensor, np.ndarray]:
    """The split's utterances with at least `pad` zero rows around each, in `dtype` on
    `device`, and each utterance's first row in it.

    Rows are copied in chunks of about 64 MB (read from the file when `split.features` is
    a memory map), with any pending global normalisation applied on the way; no
    temporary of the split's size is made.
    """
    dim = split.feature_dim
    runs = _runs(split, pad)
    starts, lengths = split.rows, split.lengths
    # each run keeps its inner padding and gets `pad` zero rows before it; one more at the end
    spans = [int(starts[b - 1] + lengths[b - 1] - starts[a]) for a, b in runs]
    total = int(sum(spans)) + pad * (len(runs) + 1)
    target = torch.zeros((total, dim), dtype=dtype, device=device, pin_memory=pin_memory)
    new_starts = np.empty(len(split.names), dtype=np.int64)
    chunk_rows = max(1, _CHUNK_BYTES // (dim * split.features.itemsize))
    mean_std = split.pending_stats
    row = pad
    for (first, last), span in zip(runs, spans, strict=True):
        source = int(starts[first])
        new_starts[first:last] = starts[first:last] - source + row
        for offset in range(0, span, chunk_rows):
            n = min(chunk_rows, span - offset)
            chunk = read_rows(split.features, source + offset, source + offset + n)
            if mean_std is not None:
                chunk = chunk.astype(np.float32)
                chunk -= mean_std[0]
                chunk /= mean_std[1]
                # normalising moved the padding between utterances off zero: clear it again
                inside = np.arange(source + offset, source + offset + n)
                u = first + np.searchsorted(starts[first:last], inside, side="right") - 1
                chunk[inside >= starts[u] + lengths[u]] = 0.0
            target[row + offset : row + offset + n].copy_(torch.from_numpy(chunk))
        row += span + pad
    return target, new_starts


class WindowedSplit:
    """A split's padded features, utterance bases and labels, placed for one device.

    Batches come in `dtype` (the model's input dtype: bf16 under bf16 autocast, else
    float32). `placement` is `auto` (on the device; on a GPU, pinned host memory when the
    split does not fit), `device` or `host`.
    """

    def __init__(
        self,
        split: Split,
        context: int,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        placement: str = "auto",
    ) -> None:
        if placement not in ("auto", "device", "host"):
            raise ValueError(f"placement={placement!r} is not one of auto, device, host")
        device = torch.device(device)
        self.device = device
        self.context = context
        self.frames = split.frames
        self.feature_dim = split.feature_dim
        self.dtype = dtype
        stored = _torch_dtype(split.features.dtype)
        # keep the narrower of the stored and the batch dtype: a 16-bit split cast per batch
        resident = dtype if dtype.itemsize <= stored.itemsize else stored
        nbytes = (split.frames + (context + 1) * (len(split.names) + 1)) * self.feature_dim
        nbytes *= resident.itemsize
        on_host = placement == "host" or (
            placement == "auto" and device.type == "cuda" and not _fits_on_gpu(device, nbytes)
        )
        if (
            device.type == "cpu"
            and resident == stored
            and split.pending_stats is None
            and split.pad >= context
        ):
            self.padded = torch.from_numpy(split.features)  # shares the memory map: no copy
            starts = split.rows
            self.pad = split.pad
        else:
            pin = on_host and device.type == "cuda"
            where = torch.device("cpu") if on_host else device
            self.padded, starts = padded_copy(split, context, resident, where, pin_memory=pin)
            self.pad = context
        self.on_host = on_host
        index_device = self.padded.device
        self._ends = torch.from_numpy(split.offsets[1:].copy()).to(index_device)
        self._first_rows = torch.from_numpy(starts - split.offsets[:-1]).to(index_device)
        self.labels = None
        if split.labels is not None:
            self.labels = torch.from_numpy(np.asarray(split.labels)).to(index_device)
        self._set_view()

    def _set_view(self) -> None:
        """The padded array as overlapping windows: row r is the window starting at row r."""
        rows, dim = self.padded.shape
        width = (2 * self.context + 1) * dim
        self._windows = self.padded.as_strided(
            (max(0, rows - 2 * self.context), width), (dim, 1), self.padded.storage_offset()
        )
        self._base = self._first_rows - self.context

    def with_context(self, context: int) -> WindowedSplit:
        """The same placed split with another context, sharing its memory (context <= pad)."""
        if context > self.pad:
            raise ValueError(f"context {context} is wider than the padding ({self.pad})")
        other = copy.copy(self)
        other.context = context
        other._set_view()
        return other

    @property
    def input_dim(self) -> int:
        return (2 * self.context + 1) * self.feature_dim

    def window_rows(self, frames: torch.Tensor) -> torch.Tensor:
        """The first padded row of each frame's window (frames in split order)."""
        utterance = torch.searchsorted(self._ends, frames, right=True)
        return frames + self._base[utterance]

    def windows(self, frames: torch.Tensor) -> torch.Tensor:
        """The flattened context windows of `frames`: (len(frames), input_dim) in `dtype`."""
        frames = frames.to(self._ends.device)
        gathered = self._windows.index_select(0, self.window_rows(frames))
        return gathered if gathered.dtype == self.dtype else gathered.to(self.dtype)

    def batches(
        self,
        batch_size: int,
        order: torch.Tensor | None = None,
        limit: int = 0,
        first: int = 0,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """(windows, labels) batches over `order` (a permutation of frames) or in frame order,
        from batch `first` on (to resume an epoch part-way)."""
        if self.on_host:
            yield from self._host_batches(batch_size, order, limit, first)
            return
        index_device = self._ends.device
        if order is not None:
            order = order.to(index_device)
        for start, end in self._bounds(batch_size, order, limit, first):
            if order is None:
                frames = torch.arange(start, end, device=index_device)
            else:
                frames = order[start:end]
            labels = None if self.labels is None else self.labels[frames].long()
            yield self.windows(frames), labels

    def _bounds(
        self, batch_size: int, order: torch.Tensor | None, limit: int, first: int = 0
    ) -> Iterator[tuple[int, int]]:
        total = self.frames if order is None else len(order)
        count = -(-total // batch_size)
        if limit:
            count = min(count, limit)
        for b in range(first, count):
            yield b * batch_size, min((b + 1) * batch_size, total)

    def _host_batches(
        self, batch_size: int, order: torch.Tensor | None, limit: int, first: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """Batches gathered on the CPU into two (pinned) buffers and copied to the GPU on a
        side stream, overlapping the GPU's work on the previous batch; a buffer is refilled
        only once its previous copy has finished. (On a CPU: the same gather, no copies.)"""
        cuda = self.device.type == "cuda"
        if order is not None:
            order = order.cpu()  # once per pass, not per batch
        rows = min(batch_size, self.frames)  # an absurd batch_size must not allocate terabytes
        buffers = [
            (
                torch.empty((rows, self.input_dim), dtype=self.padded.dtype, pin_memory=cuda),
                torch.empty(rows, dtype=torch.uint8, pin_memory=cuda),
            )
            for _ in range(2)
        ]
        copied: list[torch.cuda.Event | None] = [None, None]
        stream = torch.cuda.Stream(self.device) if cuda else None
        for b, (start, end) in enumerate(self._bounds(batch_size, order, limit, first)):
            frames = torch.arange(start, end) if order is None else order[start:end]
            n = end - start
            slot = b % 2
            if copied[slot] is not None:
                copied[slot].synchronize()
            windows, labels = buffers[slot][0][:n], buffers[slot][1][:n]
            torch.index_select(self._windows, 0, self.window_rows(frames), out=windows)
            if self.labels is None:
                labels = None
            else:
                torch.index_select(self.labels, 0, frames, out=labels)
            if stream is None:
                yield windows.to(self.dtype, copy=True), None if labels is None else labels.long()
                continue
            with torch.cuda.stream(stream):
                windows = windows.to(self.device, non_blocking=True)
                if labels is not None:
                    labels = labels.to(self.device, non_blocking=True)
                copied[slot] = torch.cuda.Event()
                copied[slot].record(stream)
            compute = torch.cuda.current_stream(self.device)
            compute.wait_stream(stream)
            windows.record_stream(compute)  # allocated on the side stream, used on this one
            if labels is not None:
                labels.record_stream(compute)
                labels = labels.long()
            yield windows.to(self.dtype), labels

    def num_batches(self, batch_size: int, limit: int = 0) -> int:
        count = -(-self.frames // batch_size)
        return min(count, limit) if limit else count


def _fits_on_gpu(device: torch.device, nbytes: int) -> bool:
    """Whether `nbytes` more fit in the GPU's free memory, leaving room to train."""
    free, total = torch.cuda.mem_get_info(device)
    return nbytes + max(_GPU_RESERVE, total // 10) <= free
