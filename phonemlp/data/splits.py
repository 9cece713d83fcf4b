"""From data settings to normalised splits: the corpus root, the training subset, stats."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from phonemlp.data.corpus import Split, list_utterances, read_split
from phonemlp.data.normalize import MODES, global_stats, normalize
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


def load_split(
    root: Path,
    split: str,
    mode: str,
    labelled: bool = True,
    stats: tuple[np.ndarray, np.ndarray] | None = None,
    utterances: list[str] | None = None,
) -> tuple[Split, tuple[np.ndarray, np.ndarray] | None]:
    """Read and normalise a split; returns it and the global stats (computed if not given)."""
    if mode not in MODES:
        raise PhonemlpError(f"data.normalize={mode!r} is not one of {', '.join(MODES)}")
    data = read_split(root, split, labelled=labelled, utterances=utterances)
    if mode == "global" and stats is None:
        stats = global_stats(data.features)
    normalize(data.features, data.offsets, mode, stats)
    return data, stats
