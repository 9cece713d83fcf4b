"""Feature normalisation: per utterance (cepstral mean/variance), global, or none.

Everything works one utterance (or one chunk of rows) at a time: nothing allocates a
temporary as large as the split.
"""

from __future__ import annotations

import numpy as np

from phonemlp.errors import PhonemlpError

MODES = ("utterance", "global", "none")
_EPS = 1e-5


def moments(features: np.ndarray) -> np.ndarray:
    """(2, dim) float64: the sum and the sum of squares of an utterance's frames."""
    return np.stack(
        [
            features.sum(axis=0, dtype=np.float64),
            np.square(features, dtype=np.float64).sum(axis=0),
        ]
    )


def _mean_std(sums: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    mean = sums[0] / count
    std = np.sqrt(np.maximum(sums[1] / count - mean**2, 0.0)) + _EPS
    return mean, std


def cmvn(features: np.ndarray, sums: np.ndarray | None = None) -> np.ndarray:
    """One utterance normalised to zero mean and unit variance per dimension, in place."""
    if len(features) == 0:
        return features
    mean, std = _mean_std(moments(features) if sums is None else sums, len(features))
    features -= mean.astype(np.float32)
    features /= std.astype(np.float32)
    return features


def utterance_cmvn(features: np.ndarray, offsets: np.ndarray) -> None:
    """Normalise each utterance of a concatenated split, in place."""
    for start, end in zip(offsets[:-1], offsets[1:], strict=True):
        cmvn(features[start:end])


def stats_from_moments(sums: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Global mean and std from per-utterance moments (utterances, 2, dim)."""
    if frames == 0:
        raise PhonemlpError("global normalisation needs at least one training frame")
    mean, std = _mean_std(sums.sum(axis=0), frames)
    return mean.astype(np.float32), std.astype(np.float32)


def global_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and standard deviation over all frames."""
    mean = features.mean(axis=0, dtype=np.float64)
    std = features.std(axis=0, dtype=np.float64) + _EPS
    return mean.astype(np.float32), std.astype(np.float32)


def check_stats(stats: tuple[np.ndarray, np.ndarray], feature_dim: int) -> None:
    if stats[0].shape[0] != feature_dim:
        raise PhonemlpError(
            f"normalisation statistics have {stats[0].shape[0]} dimensions but the features "
            f"have {feature_dim}; the data does not match the checkpoint"
        )


def normalize(
    features: np.ndarray,
    offsets: np.ndarray,
    mode: str,
    stats: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Normalise a concatenated split in place; `global` needs the training split's `stats`."""
    if mode == "utterance":
        utterance_cmvn(features, offsets)
    elif mode == "global":
        if stats is None:
            raise ValueError("global normalisation needs the training statistics")
        check_stats(stats, features.shape[1])
        mean, std = stats
        features -= mean
        features /= std
    elif mode != "none":
        raise PhonemlpError(f"data.normalize={mode!r} is not one of {', '.join(MODES)}")
