"""Feature normalisation: per utterance (cepstral mean/variance), global, or none."""

from __future__ import annotations

import numpy as np

from phonemlp.errors import PhonemlpError

MODES = ("utterance", "global", "none")
_EPS = 1e-5


def utterance_cmvn(features: np.ndarray, offsets: np.ndarray) -> None:
    """Normalise each utterance to zero mean and unit variance per dimension, in place."""
    lengths = np.diff(offsets)
    nonempty = lengths > 0
    starts = offsets[:-1][nonempty]
    counts = lengths[nonempty][:, None].astype(np.float64)
    mean = np.add.reduceat(features, starts, axis=0, dtype=np.float64) / counts
    square = np.add.reduceat(np.square(features, dtype=np.float64), starts, axis=0) / counts
    std = np.sqrt(np.maximum(square - mean**2, 0.0)) + _EPS
    per_frame = np.repeat(np.flatnonzero(nonempty), lengths[nonempty])
    rank = np.cumsum(nonempty) - 1  # utterance index -> row of mean/std
    rows = rank[per_frame]
    features -= mean[rows].astype(np.float32)
    features /= std[rows].astype(np.float32)


def global_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and standard deviation over all frames."""
    mean = features.mean(axis=0, dtype=np.float64)
    std = features.std(axis=0, dtype=np.float64) + _EPS
    return mean.astype(np.float32), std.astype(np.float32)


def normalize(
    features: np.ndarray,
    offsets: np.ndarray,
    mode: str,
    stats: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Normalise a split in place; `global` needs the training split's `stats`."""
    if mode == "utterance":
        utterance_cmvn(features, offsets)
    elif mode == "global":
        if stats is None:
            raise ValueError("global normalisation needs the training statistics")
        mean, std = stats
        if mean.shape[0] != features.shape[1]:
            raise PhonemlpError(
                f"normalisation statistics have {mean.shape[0]} dimensions but the features "
                f"have {features.shape[1]}; the data does not match the checkpoint"
            )
        features -= mean
        features /= std
    elif mode != "none":
        raise PhonemlpError(f"data.normalize={mode!r} is not one of {', '.join(MODES)}")
