"""Checking that work fits the machine before starting it."""

from __future__ import annotations

import os
from pathlib import Path

from phonemlp.errors import PhonemlpError

# Peak host bytes per raw feature byte while a split is loaded and windowed on the CPU.
LOAD_FACTOR = 2.0


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable), None if unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def feature_bytes(root: Path, splits: list[str]) -> int:
    """The bytes of the feature files of `splits` (about the float32 size in memory)."""
    total = 0
    for split in splits:
        folder = Path(root) / split / "mfcc"
        if folder.is_dir():
            with os.scandir(folder) as entries:
                total += sum(e.stat().st_size for e in entries if e.name.endswith(".npy"))
    return total


def gib(count: float) -> str:
    return f"{count / 2**30:.1f} GiB"


def check_memory(root: Path, splits: list[str], fraction: float = 1.0) -> None:
    """Refuse, with the figures, to load splits that cannot fit in memory."""
    available = available_memory()
    if available is None:
        return
    needed = int(feature_bytes(root, splits) * fraction * LOAD_FACTOR)
    if needed > available:
        raise PhonemlpError(
            f"{root}: loading {', '.join(splits)} needs about {gib(needed)} of memory but only "
            f"{gib(available)} is available; train on a subset (data.fraction=0.5) or free memory"
        )
