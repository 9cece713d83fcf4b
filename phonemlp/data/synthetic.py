"""A synthetic split of any size made directly in memory (seconds for the real 36 M frames).

For speed checks on a machine without the corpus (phonemlp-bench sections=[gpu], and
`data.synthetic_frames` in training): no files are written or read. The split has the
layout of a prepared split (data/cache.py): float32 features with PAD zero rows around
every utterance, so any context up to PAD is a view, and per-utterance moments.

Labels come in runs of a few frames like phones do; every class shifts the mean of a few
mel bands (the same shifts for every seed, so a model trained on one synthetic split
predicts another), under uniform noise of unit variance (uniform: 4 times faster to draw
than Gaussian). A single frame is ambiguous, its context
window much less so: a model's loss falls over the first epoch and dev accuracy climbs
well above chance. Utterance lengths vary around `mean_length` (the real train split
averages 1,265 frames).

Utterances are filled in parallel in fixed groups, each from its own random stream
derived from (seed, frames, feature_dim), so the split is the same whatever the number of
threads, and two splits of different sizes (train and dev) share no frames.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from phonemlp.data.cache import PAD
from phonemlp.data.corpus import Split
from phonemlp.errors import PhonemlpError
from phonemlp.phonemes import CLASSES, EOS, NUM_CLASSES, SOS

_SHIFTED_BANDS = 3  # bands whose mean each class moves
_SHIFT = 1.0  # by this many noise standard deviations, up or down
_MEAN_RUN = 8  # frames per label run on average (a phone lasts about 80 ms)
_GROUP_FRAMES = 1 << 19  # frames filled by one task (about 60 MB of float32 at 28 bands)
_TASK_SEED = 0x5EED  # the class shifts: one fixed task for every seed


def class_means(feature_dim: int) -> np.ndarray:
    """(NUM_CLASSES, feature_dim) float32: each class's mean frame (a few bands shifted)."""
    rng = np.random.default_rng([_TASK_SEED, feature_dim])
    means = np.zeros((NUM_CLASSES, feature_dim), dtype=np.float32)
    bands = min(_SHIFTED_BANDS, feature_dim)
    for c in range(NUM_CLASSES):
        chosen = rng.choice(feature_dim, size=bands, replace=False)
        means[c, chosen] = rng.choice([-_SHIFT, _SHIFT], size=bands)
    return means


def _lengths(rng: np.random.Generator, frames: int, mean_length: int) -> np.ndarray:
    """Utterance lengths adding up to `frames`, about `mean_length` each (+-35 %)."""
    count = max(1, round(frames / mean_length))
    shortest = min(50, frames // count)
    shares = rng.lognormal(0.0, 0.35, count)
    return shortest + rng.multinomial(frames - shortest * count, shares / shares.sum())


def _labels(rng: np.random.Generator, frames: int) -> np.ndarray:
    """(frames,) uint8: runs of 1 + Poisson(_MEAN_RUN - 1) frames of one class, classes drawn
    with a fixed skewed prior (some phones are far more common, like silence)."""
    prior = np.random.default_rng(_TASK_SEED).dirichlet(np.full(NUM_CLASSES, 2.0))
    runs = frames // (_MEAN_RUN - 1) + 64  # about 14 % more frames than needed
    classes = rng.choice(NUM_CLASSES, size=runs, p=prior).astype(np.uint8)
    lengths = 1 + rng.poisson(_MEAN_RUN - 1, size=runs)
    while lengths.sum() < frames:  # (practically never) still short: add runs
        classes = np.concatenate([classes, rng.choice(NUM_CLASSES, size=runs, p=prior)])
        lengths = np.concatenate([lengths, 1 + rng.poisson(_MEAN_RUN - 1, size=runs)])
    return np.repeat(classes.astype(np.uint8), lengths)[:frames]


def _groups(lengths: np.ndarray) -> list[tuple[int, int]]:
    """Utterance ranges [first, last) of about _GROUP_FRAMES frames each (fixed by lengths)."""
    bounds = [0]
    total = 0
    for u, length in enumerate(lengths.tolist()):
        total += length
        if total >= _GROUP_FRAMES and u + 1 < len(lengths):
            bounds.append(u + 1)
            total = 0
    bounds.append(len(lengths))
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def utterance_names(count: int) -> list[str]:
    """Sorted names in the LibriSpeech pattern speaker-chapter-utterance, 100 per speaker."""
    return [f"{1000 + u // 100:04d}-{100000 + u // 10:06d}-{u % 10:04d}" for u in range(count)]


def synthetic_split(
    frames: int,
    feature_dim: int = 28,
    seed: int = 0,
    mean_length: int = 1265,
    labelled: bool = True,
    threads: int = 0,
) -> Split:
    """A split named "synthetic" of exactly `frames` frames of `feature_dim` float32 bands
    (see the module doc).

    `labelled=False` leaves the labels out (as for a test split); the features are the same.
    `threads` = 0 uses every CPU.
    """
    if frames < 1 or feature_dim < 1 or mean_length < 1:
        raise PhonemlpError(
            f"a synthetic split needs frames, feature_dim and mean_length >= 1 (got {frames}, "
            f"{feature_dim}, {mean_length}); e.g. data.synthetic_frames=36091157"
        )
    root = np.random.SeedSequence([seed, frames, feature_dim, 0x5917])
    layout_seed, label_seed, noise_seed = root.spawn(3)
    lengths = _lengths(np.random.default_rng(layout_seed), frames, mean_length)
    count = len(lengths)
    offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    starts = offsets[:-1] + PAD * (np.arange(count, dtype=np.int64) + 1)
    split = Split(
        name="synthetic",
        names=utterance_names(count),
        # np.zeros maps fresh zero pages: the padding costs nothing until it is read
        features=np.zeros((frames + PAD * (count + 1), feature_dim), dtype=np.float32),
        offsets=offsets,
        labels=_labels(np.random.default_rng(label_seed), frames),
        starts=starts,
        pad=PAD,
        moments=np.empty((count, 2, feature_dim), dtype=np.float64),
    )
    groups = _groups(lengths)
    jobs = list(zip(groups, noise_seed.spawn(len(groups)), strict=True))
    workers = min(threads or os.cpu_count() or 1, len(groups))
    if workers == 1:
        for group, stream in jobs:
            _fill(split, group, stream)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda job: _fill(split, *job), jobs))  # list(): re-raise any error
    if not labelled:
        split.labels = None
    return split


def _fill(split: Split, group: tuple[int, int], stream: np.random.SeedSequence) -> None:
    """The frames (class mean + uniform noise of variance 1) and moments of a group of
    utterances, from the group's own random stream."""
    scale = np.float32(np.sqrt(12.0))  # U(0, 1) * scale - scale / 2: mean 0, variance 1
    shifted = class_means(split.features.shape[1]) - scale / 2
    rng = np.random.default_rng(stream)
    assert split.labels is not None
    for u in range(*group):
        first, length = split.starts[u], split.offsets[u + 1] - split.offsets[u]
        rows = split.features[first : first + length]
        rng.random(out=rows, dtype=np.float32)
        rows *= scale
        rows += shifted[split.labels[split.offsets[u] : split.offsets[u + 1]]]
        split.moments[u, 0] = rows.sum(axis=0)  # float32 sums of ~1,000 rows: ample for stats
        split.moments[u, 1] = np.einsum("ij,ij->j", rows, rows)


def write_split_files(split: Split, folder: Path, transcripts: bool = True) -> None:
    """Write `split` in the HW1P2 layout: folder/mfcc/<name>.npy per utterance and, when it is
    labelled and `transcripts`, folder/transcript/<name>.npy (SOS, one symbol a frame, EOS)."""
    folder = Path(folder)
    (folder / "mfcc").mkdir(parents=True, exist_ok=True)
    labelled = transcripts and split.labels is not None
    if labelled:
        (folder / "transcript").mkdir(exist_ok=True)
    symbols = np.asarray(CLASSES, dtype="<U5")
    for u, name in enumerate(split.names):
        start, length = int(split.rows[u]), int(split.lengths[u])
        np.save(folder / "mfcc" / f"{name}.npy", split.features[start : start + length])
        if labelled:
            labels = symbols[split.labels[split.offsets[u] : split.offsets[u + 1]]]
            transcript = np.concatenate([[SOS], labels, [EOS]])
            np.save(folder / "transcript" / f"{name}.npy", transcript)
