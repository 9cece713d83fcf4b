"""From data settings to normalised splits: the corpus root, the training subset, stats."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from phonemlp.data.cache import (
    default_cache_dir,
    prepare_cached,
    prepare_in_memory,
    storage_dtype,
    stored_normalisation,
)
from phonemlp.data.corpus import Split, list_utterances, split_files
from phonemlp.data.normalize import MODES, check_stats, stats_from_moments
from phonemlp.errors import PhonemlpError


def corpus_root(root: str | None, demo_seed: int = 0) -> Path:
    """The corpus to use: `root`, or the embedded demo corpus (generated on first use)."""
    if root is None or str(root) == "":
        from phonemlp.data.demo import demo_corpus

        return demo_corpus(seed=demo_seed)
    path = Path(str(root)).expanduser()
    if not path.is_dir():
        raise PhonemlpError(
            f"data.root={root}: folder not found; give the corpus root (DESIGN.md §2)"
        )
    return path


def training_subset(root: Path, split: str, fraction: float, seed: int) -> list[str] | None:
    """A seeded random subset of the training utterances (sorted), None for all of them."""
    if not 0.0 < fraction <= 1.0:
        raise PhonemlpError(f"data.fraction={fraction} must be in (0, 1]")
    if fraction == 1.0:
        return None
    names = list_utterances(root, split)
    count = max(1, round(fraction * len(names)))
    chosen = np.random.default_rng(seed).choice(len(names), size=count, replace=False)
    return [names[i] for i in sorted(chosen)]


def storage_options(data_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The cache settings of a `data` config (defaults for configs older than them)."""
    return {
        "cache": bool(data_cfg.get("cache", True)),
        "cache_dir": data_cfg.get("cache_dir"),
        "dtype": str(data_cfg.get("dtype", "float32")),
    }


def load_split(
    root: Path,
    split: str,
    mode: str,
    labelled: bool = True,
    stats: tuple[np.ndarray, np.ndarray] | None = None,
    utterances: list[str] | None = None,
    *,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    dtype: str = "float32",
    progress: bool = True,
) -> tuple[Split, tuple[np.ndarray, np.ndarray] | None]:
    """A normalised split and the global stats (computed from it if `mode` is global and
    no `stats` are given).

    With `cache`, the whole split is prepared once under `cache_dir` (default: the user's
    phonemlp cache) and memory-mapped; `utterances` then selects from it. Global
    normalisation is left pending in the Split (`pending_stats`) and applied when the
    split is placed on a device, so the prepared features are never copied for it.
    """
    if mode not in MODES:
        raise PhonemlpError(f"data.normalize={mode!r} is not one of {', '.join(MODES)}")
    storage_dtype(dtype)
    stored = stored_normalisation(mode)
    if cache:
        files = split_files(root, split, labelled)
        folder = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        data = prepare_cached(files, stored, dtype, folder, progress=progress)
        if utterances is not None:
            data = data.subset(utterances)
    else:
        files = split_files(root, split, labelled, utterances)
        data = prepare_in_memory(files, stored, dtype, progress=progress)
    if mode == "global":
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
    data_cfg = checkpoint.get("config", {}).get("data", {})
    data, _ = load_split(
        root,
        split,
        checkpoint["normalize"],
        labelled=labelled,
        stats=stats,
        **storage_options(data_cfg),
    )
    return data
