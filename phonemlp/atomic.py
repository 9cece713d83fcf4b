"""Atomic file writes: write a temporary sibling, fsync it, then rename it into place.

A reader (or a run killed at any moment) sees the old file or the new one, never a part.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path` atomically."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        yield temporary
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, target)
        with contextlib.suppress(OSError):
            directory = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def write_csv(path: str | os.PathLike, columns: Mapping[str, Sequence[Any]]) -> None:
    """Write a table, given as equally long columns by name, as a CSV file atomically
    (a missing number, NaN, as an empty field, as pandas writes it)."""
    names = list(columns)
    rows = zip(*(_plain(columns[name]) for name in names), strict=True)
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(
            ["" if isinstance(v, float) and math.isnan(v) else v for v in row] for row in rows
        )


def _plain(column: Sequence[Any]) -> list[Any]:
    """Python numbers and strings (a numpy array's numbers print as plain numbers)."""
    return column.tolist() if hasattr(column, "tolist") else list(column)
