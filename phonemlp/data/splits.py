"""From data settings to normalised splits: the corpus root, the training subset, stats."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from phonemlp.data.cache import (
    default_cache_dir,
    prepare_cached,
    prepare_in_memory,
    stored_normalisation,
)
from phonemlp.data.corpus import Split, feature_dim, list_utterances, split_files
from phonemlp.data.normalize import check_stats, stats_from_moments
from phonemlp.errors import PhonemlpError
from phonemlp.resources import check_memory

if TYPE_CHECKING:
    from phonemlp.data.labels import LabelStatistics
    from phonemlp.data.windows import WindowedSplit

log = logging.getLogger("phonemlp")


def corpus_root(root: str | None, demo_seed: int = 0) -> Path:
    """The corpus to use: `root`, or the embedded demo corpus (generated on first use)."""
    if root is None or str(root) == "":
        from phonemlp.data.demo import demo_corpus

        return demo_corpus(seed=demo_seed)
    path = Path(str(root)).expanduser()
    if not path.is_dir():
        raise PhonemlpError(
            f"data.root={root}: folder not found; give the corpus root (docs/data.md)"
        )
    return path


def training_subset(root: Path, split: str, fraction: float, seed: int) -> list[str] | None:
    """A seeded random subset of the training utterances (sorted), None for all of them."""
    if fraction == 1.0:
        return None
    names = list_utterances(root, split)
    count = max(1, round(fraction * len(names)))
    chosen = np.random.default_rng(seed).choice(len(names), size=count, replace=False)
    return [names[i] for i in sorted(chosen)]


@dataclass(frozen=True)
class Preparation:
    """How a split is read: its normalisation, the dtype its features are stored in, and
    whether it is prepared once into the cache (`cache_dir`, default the user's phonemlp
    cache) and memory-mapped from there, or built in memory each time."""

    normalize: str = "utterance"
    dtype: str = "float32"
    cache: bool = True
    cache_dir: str | Path | None = None
    progress: bool = True

    @classmethod
    def of(cls, data_cfg: Mapping[str, Any], **changes: Any) -> Preparation:
        """A `data` config's settings (defaults for configs older than the cache settings)."""
        settings = {
            "normalize": str(data_cfg.get("normalize", "utterance")),
            "dtype": str(data_cfg.get("dtype", "float32")),
            "cache": bool(data_cfg.get("cache", True)),
            "cache_dir": data_cfg.get("cache_dir"),
        }
        return cls(**{**settings, **changes})


def load_split(
    root: Path,
    split: str,
    how: Preparation,
    labelled: bool = True,
    stats: tuple[np.ndarray, np.ndarray] | None = None,
    utterances: list[str] | None = None,
) -> tuple[Split, tuple[np.ndarray, np.ndarray] | None]:
    """A split read and normalised as `how` says, and the global stats (computed from it if
    its normalisation is global and no `stats` are given).

    From the cache, the whole split is prepared once and memory-mapped; `utterances` then
    selects from it. Global normalisation is left pending in the Split (`pending_stats`) and
    applied when the split is placed on a device, so the prepared features are never copied
    for it.
    """
    stored = stored_normalisation(how.normalize)
    if how.cache:
        files = split_files(root, split, labelled)
        folder = Path(how.cache_dir).expanduser() if how.cache_dir else default_cache_dir()
        data = prepare_cached(files, stored, how.dtype, folder, progress=how.progress)
        if utterances is not None:
            data = data.subset(utterances)
    else:
        files = split_files(root, split, labelled, utterances)
        data = prepare_in_memory(files, stored, how.dtype, progress=how.progress)
    if how.normalize == "global":
        if stats is None:
            stats = stats_from_moments(data.moments, data.frames)
        check_stats(stats, data.feature_dim)
        data.pending_stats = stats
    return data, stats


def checkpoint_split(
    root: Path, split: str, checkpoint: Mapping[str, Any], labelled: bool
) -> Split:
    """A split normalised as a checkpoint's model was trained (its mode, its global stats),
    through the prepared-split cache its run used."""
    stats = checkpoint["norm_stats"]
    if stats is not None:
        stats = tuple(np.asarray(s, dtype=np.float32) for s in stats)
    how = Preparation.of(checkpoint.get("config", {}).get("data", {}))
    normalize = checkpoint["normalize"]
    return load_split(root, split, replace(how, normalize=normalize), labelled, stats)[0]


SYNTHETIC_DIM = 28


def locate_data(data_cfg: Any) -> tuple[Path, int]:
    """The corpus root and its feature dimension (read from one file header), before any data
    is loaded; `data.synthetic_frames` > 0 stands for a generated split of that size."""
    if data_cfg.get("synthetic_frames", 0):
        return Path(f"synthetic-{data_cfg.synthetic_frames}"), SYNTHETIC_DIM
    root = corpus_root(data_cfg.root, data_cfg.demo_seed)
    return root, feature_dim(root, data_cfg.train_split)


@dataclass
class TrainingData:
    """The train and dev splits placed for training, and what the checkpoints keep of them."""

    root: Path
    dim: int
    train: WindowedSplit
    dev: WindowedSplit
    stats: tuple[np.ndarray, np.ndarray] | None  # global normalisation statistics, if any
    label_counts: LabelStatistics  # for smooth=hmm at prediction
    dev_names: list[str]
    dev_offsets: np.ndarray


def _read_splits(cfg: Any, root: Path, dim: int) -> tuple[Split, Split, Any]:
    data = cfg.data
    if data.get("synthetic_frames", 0):
        from phonemlp.data.synthetic import synthetic_split

        dev_frames = max(10_000, data.synthetic_frames // 50)
        train = synthetic_split(data.synthetic_frames, dim, cfg.seed)
        return train, synthetic_split(dev_frames, dim, cfg.seed + 1), None
    check_memory(root, [data.train_split, data.dev_split], data.fraction)
    subset = training_subset(root, data.train_split, data.fraction, cfg.seed)
    how = Preparation.of(data)  # normalisation and the prepared-split cache (data/cache.py)
    train, stats = load_split(root, data.train_split, how, utterances=subset)
    dev, _ = load_split(root, data.dev_split, how, stats=stats)
    for split in (train, dev):
        if split.feature_dim != dim:
            raise PhonemlpError(
                f"{root / split.name / 'mfcc'}: feature dimension {split.feature_dim} differs "
                f"from {dim} in {root / data.train_split / 'mfcc'}; all splits must match"
            )
    return train, dev, stats


def load_training_data(cfg: Any, root: Path, dim: int, device: Any, precision: str) -> TrainingData:
    """Read (or generate), normalise and place the train and dev splits for `cfg`."""
    import torch

    from phonemlp.data.labels import count_labels
    from phonemlp.data.windows import WindowedSplit
    from phonemlp.phonemes import NUM_CLASSES

    train, dev, stats = _read_splits(cfg, root, dim)
    if train.frames == 0 or dev.frames == 0:
        raise PhonemlpError(f"{root}: the train or dev split has no frames")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    placement = cfg.data.get("placement", "auto")
    log.info(f"data: {root}  (normalize={cfg.data.normalize}, fraction={cfg.data.fraction})")
    log.info(
        f"train: {len(train.names):,} utterances, {train.frames:,} frames; "
        f"dev: {len(dev.names):,} utterances, {dev.frames:,} frames; feature dim {dim}"
    )
    return TrainingData(
        root=root,
        dim=dim,
        train=WindowedSplit(train, cfg.context, device, dtype, placement),
        dev=WindowedSplit(dev, cfg.context, device, dtype, placement),
        stats=stats,
        label_counts=count_labels(train.labels, train.offsets, NUM_CLASSES),
        dev_names=dev.names,
        dev_offsets=dev.offsets,
    )
