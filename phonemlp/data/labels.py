"""Label statistics of a training split: class counts and label bigrams inside utterances.

Training stores them in every checkpoint; prediction's HMM smoothing (smoothing.py) reads
them back as transition and prior probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

_COUNT_CHUNK_FRAMES = 1 << 22  # training labels counted at once


@dataclass
class LabelStatistics:
    """What the HMM needs from training labels: label bigram counts and class counts."""

    transitions: np.ndarray  # (classes, classes) int64: a followed by b inside an utterance
    classes: np.ndarray  # (classes,) int64 frame counts

    def to_checkpoint(self) -> dict[str, torch.Tensor]:
        return {
            "transition_counts": torch.from_numpy(self.transitions),
            "class_counts": torch.from_numpy(self.classes),
        }

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any]) -> LabelStatistics | None:
        if "transition_counts" not in checkpoint or "class_counts" not in checkpoint:
            return None
        return cls(
            np.asarray(checkpoint["transition_counts"], dtype=np.int64),
            np.asarray(checkpoint["class_counts"], dtype=np.int64),
        )


def count_labels(labels: np.ndarray, offsets: np.ndarray, num_classes: int) -> LabelStatistics:
    """Bigram and class counts of frame labels (utterance u: labels[offsets[u]:offsets[u+1]]),
    counted in chunks so that 36 M training labels need tens of MB, not a GB."""
    labels = np.asarray(labels)
    last_frames = np.asarray(offsets[1:-1], dtype=np.int64) - 1  # no pair across these borders
    outside = num_classes * num_classes  # the bin for pairs that straddle a border
    transitions = np.zeros(outside + 1, dtype=np.int64)
    classes = np.zeros(num_classes, dtype=np.int64)
    for start in range(0, len(labels), _COUNT_CHUNK_FRAMES):
        chunk = labels[start : start + _COUNT_CHUNK_FRAMES + 1].astype(np.int64)
        classes += np.bincount(chunk[:_COUNT_CHUNK_FRAMES], minlength=num_classes)
        pairs = chunk[:-1] * num_classes + chunk[1:]
        borders = last_frames[(last_frames >= start) & (last_frames < start + len(pairs))]
        pairs[borders - start] = outside
        transitions += np.bincount(pairs, minlength=outside + 1)
    return LabelStatistics(transitions[:outside].reshape(num_classes, num_classes), classes)
