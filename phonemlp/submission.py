"""Checking a Kaggle submission CSV before it is uploaded (DESIGN.md §2).

`Id,Label`, one row per test frame in order (Ids 0..N-1), labels all phoneme symbols
(S25/F24 editions) or all class indices 0..39 (older editions).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from phonemlp.data.corpus import frame_counts, split_files
from phonemlp.errors import PhonemlpError
from phonemlp.phonemes import CLASSES, NUM_CLASSES

HEADER = "Id,Label"


def count_frames(root: Path, split: str) -> int:
    """Frames of an unlabelled split, from its feature files' headers alone."""
    lengths, _ = frame_counts(split_files(root, split, labelled=False))
    return int(lengths.sum())


def _row(index: int) -> str:
    return f"row {index + 1:,} (line {index + 2:,})"


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise PhonemlpError(f"file={path}: not found; give the submission CSV to check")
    with open(path, encoding="utf-8", errors="replace", newline="") as file:
        header = file.readline().rstrip("\r\n")
    if header != HEADER:
        raise PhonemlpError(f"{path}: the header must be exactly '{HEADER}', found '{header[:60]}'")
    try:
        return pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8",
        )
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        detail = " ".join(str(error).split())
        raise PhonemlpError(f"{path}: not a valid Id,Label CSV ({detail})") from None


def _first_false(ok: np.ndarray) -> int | None:
    bad = np.flatnonzero(~ok)
    return int(bad[0]) if len(bad) else None


def validate_submission(path: Path, frames: int, split_name: str = "the test split") -> str:
    """Check the CSV at `path` for `frames` test frames; returns 'symbol' or 'index'."""
    path = Path(path)
    table = _read(path)
    if len(table) != frames:
        raise PhonemlpError(
            f"{path}: {len(table):,} rows but {split_name} has {frames:,} frames; one row per "
            "test frame (is data.root the corpus these predictions are for?)"
        )
    if frames == 0:
        return "symbol"
    ids, labels = table["Id"], table["Label"]
    bad = _first_false(ids.to_numpy() == np.arange(frames).astype(str))
    if bad is not None:
        raise PhonemlpError(
            f"{path}: {_row(bad)} has Id '{ids.iloc[bad]}', expected {bad}; "
            f"Ids must run 0..{frames - 1:,} in order"
        )
    first = labels.iloc[0]
    if first in CLASSES:
        label_format = "symbol"
        ok = labels.isin(CLASSES).to_numpy()
        kind = f"a phoneme symbol (the labels are symbols, like row 1's '{first}')"
    elif first.isdigit() and int(first) < NUM_CLASSES:
        label_format = "index"
        ok = labels.isin([str(i) for i in range(NUM_CLASSES)]).to_numpy()
        kind = f"a class index 0..{NUM_CLASSES - 1} (the labels are indices, like row 1's)"
    else:
        ok, kind = np.zeros(1, bool), "a phoneme symbol or a class index 0..39"
        label_format = "?"
    bad = _first_false(ok)
    if bad is not None:
        raise PhonemlpError(
            f"{path}: {_row(bad)} has Label '{labels.iloc[bad][:40]}', not {kind}; "
            f"expected one of {' '.join(CLASSES)} or 0..{NUM_CLASSES - 1}"
        )
    return label_format
