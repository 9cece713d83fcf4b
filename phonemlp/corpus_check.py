"""Checking a whole corpus: every problem of every split, and the figures a user wants to see.

`read_split` stops at the first problem; `check_split` applies the same rules (it calls the
same helpers) to every utterance and collects all problems, so one run lists them all.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from phonemlp.data.corpus import (
    SplitFiles,
    _feature_header,
    _listing,
    read_utterance,
    split_files,
)
from phonemlp.errors import PhonemlpError
from phonemlp.phonemes import CLASSES, NUM_CLASSES
from phonemlp.progress import progress_bar

EXPECTED_SPLITS: dict[str, bool] = {"train-clean-100": True, "dev-clean": True, "test-clean": False}
"""The split folders of the HW1P2 layout, and whether each has transcripts."""

MAX_LISTED = 20  # problems printed per split; the rest are counted


def layout_problems(root: Path, splits: dict[str, bool] = EXPECTED_SPLITS) -> list[str]:
    """Folder and file-name problems of the expected splits (no file is opened)."""
    problems = []
    for split, labelled in splits.items():
        try:
            split_files(root, split, labelled)
        except PhonemlpError as error:
            problems.append(str(error))
    return problems


@dataclass
class SplitReport:
    """What `check_split` found in one split."""

    name: str
    labelled: bool
    utterances: int = 0
    lengths: list[int] = field(default_factory=list)  # frames of each readable utterance
    feature_dim: int | None = None  # the most common dimension
    class_counts: np.ndarray | None = None  # (40,) frames per class, labelled splits
    problems: list[str] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return int(sum(self.lengths))


def _unpaired(folder: Path, mine: set[str], theirs: set[str], which: str, other: str) -> str:
    names = sorted(mine - theirs)
    shown = ", ".join(f"{name}.npy" for name in names[:3])
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return (
        f"{folder}: {len(names)} utterance(s) in {which}/ have no counterpart in {other}/ "
        f"({shown}{more}); mfcc/ and transcript/ must hold the same file names"
    )


def check_split(root: Path, split: str, labelled: bool, progress: bool = True) -> SplitReport:
    """Check every utterance of `root/split`, collecting all problems instead of stopping."""
    report = SplitReport(split, labelled)
    folder = Path(root) / split
    try:
        mfcc = _listing(folder / "mfcc")
        transcripts = _listing(folder / "transcript") if labelled else {}
    except PhonemlpError as error:
        report.problems.append(str(error))
        return report
    if not mfcc:
        report.problems.append(f"{folder / 'mfcc'}: no .npy feature files found")
        return report
    if labelled:
        for mine, theirs, which, other in (
            (mfcc, transcripts, "mfcc", "transcript"),
            (transcripts, mfcc, "transcript", "mfcc"),
        ):
            if set(mine) - set(theirs):
                report.problems.append(_unpaired(folder, set(mine), set(theirs), which, other))
        report.class_counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    names = sorted(mfcc)
    report.utterances = len(names)
    dims: dict[str, int] = {}
    for name in progress_bar(
        names, len(names), desc=f"checking {split}", unit="utt", disable=not progress
    ):
        try:
            frames, dims[name] = _feature_header(mfcc[name])
            transcript = [transcripts[name]] if name in transcripts else None
            files = SplitFiles(Path(root), split, [name], [mfcc[name]], transcript)
            _, labels = read_utterance(files, 0, frames)
        except PhonemlpError as error:
            report.problems.append(str(error))
            continue
        report.lengths.append(frames)
        if labels is not None:
            report.class_counts += np.bincount(labels, minlength=NUM_CLASSES)
    if dims:
        report.feature_dim = Counter(dims.values()).most_common(1)[0][0]
        for name, dim in dims.items():
            if dim != report.feature_dim:
                report.problems.append(
                    f"{mfcc[name]}: feature dimension {dim} differs from {report.feature_dim} "
                    f"(most files of {split}); all feature files must have the same dimension"
                )
    return report


def splits_to_check(root: Path) -> dict[str, bool]:
    """The expected splits plus any other folder of `root` holding an mfcc/ folder."""
    splits = dict(EXPECTED_SPLITS)
    for child in sorted(Path(root).iterdir()):
        if child.name not in splits and (child / "mfcc").is_dir():
            splits[child.name] = (child / "transcript").is_dir()
    return splits


def check_corpus(root: Path, progress: bool = True) -> tuple[list[SplitReport], list[str]]:
    """Reports for every split of `root`, and the problems across splits."""
    root = Path(root)
    if not root.is_dir():
        raise PhonemlpError(f"{root}: data root not found; give a corpus in the HW1P2 layout")
    reports = []
    for split, labelled in splits_to_check(root).items():
        if not (root / split).is_dir():
            report = SplitReport(split, labelled)
            report.problems.append(f"{root / split}: split folder not found")
        else:
            report = check_split(root, split, labelled, progress)
        reports.append(report)
    dims = {r.name: r.feature_dim for r in reports if r.feature_dim is not None}
    across = []
    if len(set(dims.values())) > 1:
        listed = ", ".join(f"{name} {dim}" for name, dim in dims.items())
        across.append(
            f"{root}: the splits' feature dimensions differ ({listed}); "
            "a model needs the same dimension in every split"
        )
    return reports, across


# --- the printed report ------------------------------------------------------------------


def summary_table(report: SplitReport) -> str:
    lengths = np.asarray(report.lengths)
    figures = {
        "utterances": f"{report.utterances:,}",
        "frames": f"{report.frames:,}",
        "feature dim": "-" if report.feature_dim is None else str(report.feature_dim),
        "frames per utterance (min / median / max)": (
            f"{lengths.min():,} / {np.median(lengths):,.0f} / {lengths.max():,}"
            if len(lengths)
            else "-"
        ),
        "problems": f"{len(report.problems):,}",
    }
    return pd.Series(figures).to_string()


def class_table(counts: np.ndarray, rare: float, columns: int = 4) -> str:
    """Frames per class, `columns` blocks side by side; classes under `rare` are flagged."""
    total = max(int(counts.sum()), 1)
    flags = ["absent" if c == 0 else ("rare" if c / total < rare else "") for c in counts]
    table = pd.DataFrame(
        {
            "class": CLASSES,
            "frames": [f"{c:,}" for c in counts],
            "share": [f"{c / total:.2%}" for c in counts],
            "flag": flags,
        }
    )
    rows = -(-len(table) // columns)
    blocks = [table.iloc[i * rows : (i + 1) * rows].reset_index(drop=True) for i in range(columns)]
    return pd.concat(blocks, axis=1).fillna("").to_string(index=False)


def format_report(report: SplitReport, rare: float) -> str:
    kind = "labelled" if report.labelled else "unlabelled"
    lines = [f"== {report.name} ({kind}) ==", summary_table(report)]
    if report.class_counts is not None and report.class_counts.any():
        lines += [f"class frequencies (flagged: under {rare:.2%} of the frames)"]
        lines += [class_table(report.class_counts, rare)]
    lines += problem_lines(report.problems)
    return "\n".join(lines)


def problem_lines(problems: list[str]) -> list[str]:
    if not problems:
        return ["problems: none"]
    lines = [f"problems ({len(problems):,}):"] + [f"  - {p}" for p in problems[:MAX_LISTED]]
    if len(problems) > MAX_LISTED:
        lines.append(f"  ... and {len(problems) - MAX_LISTED:,} more")
    return lines
