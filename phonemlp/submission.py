"""The Kaggle submission CSV: its header, and checking it before it is uploaded (docs/data.md).

Header `id,label` in any case (the official starter notebook writes `id,label`, the S25
write-up says `Id` and `Label`), one row per test frame in order (ids 0..N-1), labels all
phoneme symbols (S25/F24 editions) or all class indices 0..39 (older editions).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from phonemlp.data.corpus import frame_counts, split_files
from phonemlp.errors import PhonemlpError
from phonemlp.phonemes import CLASSES, NUM_CLASSES

COLUMNS = ("id", "label")  # the starter notebook's header, written when no sample says otherwise
SAMPLE = "sample_submission.csv"  # the competition's own example, at the data root when downloaded

log = logging.getLogger("phonemlp")


def is_header(names: list[str]) -> bool:
    """Whether `names` are the two submission columns, id and label, in any case."""
    return [name.lower() for name in names] == list(COLUMNS)


def submission_header(root: Path | None) -> tuple[str, str]:
    """The column names to write: those of ROOT/sample_submission.csv when it has one (the
    competition's own spelling), else the starter notebook's `id,label`."""
    sample = None if root is None else Path(root) / SAMPLE
    if sample is None or not sample.is_file():
        return COLUMNS
    try:
        with open(sample, encoding="utf-8-sig", newline="") as file:
            names = next(csv.reader(file), [])
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        log.warning(f"{sample}: unreadable ({error}); writing the header {','.join(COLUMNS)}")
        return COLUMNS
    names = [name.strip() for name in names]
    if not is_header(names):
        log.warning(
            f"{sample}: its header '{','.join(names)[:60]}' is not id,label; "
            f"writing the header {','.join(COLUMNS)}"
        )
        return COLUMNS
    return names[0], names[1]


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
    if not is_header(header.split(",")):
        raise PhonemlpError(
            f"{path}: the header must be id,label (Id,Label or any other case), "
            f"found '{header[:60]}'"
        )
    try:
        table = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8",
        )
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        detail = " ".join(str(error).split())
        raise PhonemlpError(f"{path}: not a valid id,label CSV ({detail})") from None
    table.columns = list(COLUMNS)
    return table


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
    ids, labels = table["id"], table["label"]
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


def submit_csv(path: Path, message: str | None, competition: str, frames: int, where: str) -> str:
    """Validate the CSV for `frames` test frames (of `where`), then upload it."""
    from phonemlp.kaggle_api import submit_to_kaggle

    label_format = validate_submission(path, frames, where)
    print(f"{path}: valid ({frames:,} rows, labels as {label_format})", flush=True)
    answer = submit_to_kaggle(path, message or f"phonemlp: {path.name}", competition)
    print(
        f"submitted {path} to {competition}: {answer or 'accepted'}; scores at "
        f"https://www.kaggle.com/competitions/{competition}/submissions",
        flush=True,
    )
    return answer
