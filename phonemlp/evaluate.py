"""Running a model over a whole split: dev loss/accuracy and class probabilities."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from phonemlp.data.windows import WindowedSplit
from phonemlp.progress import progress_bar
from phonemlp.runtime import autocast


@torch.inference_mode()
def logits_batches(
    model: torch.nn.Module,
    split: WindowedSplit,
    batch_size: int,
    precision: str,
    desc: str | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """(float32 logits, labels) for every frame of `split` in order, batch by batch."""
    model.eval()
    device = split.device
    batches = split.batches(batch_size)
    if desc:
        batches = progress_bar(batches, split.num_batches(batch_size), desc=desc)
    for windows, labels in batches:
        with autocast(device, precision):
            logits = model(windows)
        yield logits.float(), labels


def evaluate(
    model: torch.nn.Module, split: WindowedSplit, batch_size: int, precision: str
) -> tuple[float, float, torch.Tensor]:
    """Mean cross-entropy, frame accuracy and the predicted class of every frame (uint8, on
    the CPU, in frame order) over a labelled split."""
    device = split.device
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    predicted = []
    for logits, labels in logits_batches(model, split, batch_size, precision, desc="dev"):
        loss_sum += F.cross_entropy(logits, labels, reduction="sum")
        classes = logits.argmax(1)
        correct += (classes == labels).sum()
        predicted.append(classes.to(torch.uint8))  # on the device: one copy at the end
    predictions = torch.cat(predicted).cpu() if predicted else torch.zeros(0, dtype=torch.uint8)
    return loss_sum.item() / split.frames, correct.item() / split.frames, predictions


def class_probabilities(
    model: torch.nn.Module, split: WindowedSplit, batch_size: int, precision: str, desc: str
) -> torch.Tensor:
    """Softmax probabilities (frames, classes) on the CPU, in frame order."""
    parts = [
        logits.softmax(1).cpu()
        for logits, _ in logits_batches(model, split, batch_size, precision, desc=desc)
    ]
    return torch.cat(parts)
