"""phonemlp-ablate PATH...: every run under the folders in one table, as CSV, Markdown and a plot.

    phonemlp-ablate multirun/2026-11-25/10-00-00
    phonemlp-ablate multirun/2026-11-25 outputs/2026-11-26
    phonemlp-ablate searches/s1                   # a phonemlp-search study: trials/<n>/

A run is a folder with `.hydra/` (or status.json or summary.json): single runs, the jobs of
multirun trees and the trials of a search, finished, pruned, failed or still running. A row
per run: the overrides whose values differ between the runs, params, best dev accuracy, best
epoch, epochs done, train seconds per epoch and the status; best first. Writes ablations.csv,
ablations.md and ablations.png (dev accuracy per epoch, pruned runs dashed, and the best dev
accuracy of each run) at the root of the first PATH.
The same table is written into every sweep folder when a multirun ends.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

from phonemlp.atomic import atomic_path, write_text
from phonemlp.errors import PhonemlpError, exit_on_user_error
from phonemlp.records import (
    FAILED,
    FINISHED,
    INTERRUPTED,
    KILLED,
    PRUNED,
    read_status,
    run_status,
)

OUTPUTS = ("ablations.csv", "ablations.md", "ablations.png")
RESULT_COLUMNS = ["params", "best_dev_acc", "best_epoch", "epochs_done", "s_per_epoch", "status"]
NOT_RUNS = {"wandb", "checkpoints", ".submitit", ".hydra", "__pycache__", ".git"}
MISSING = object()  # a key a run's config does not have


@dataclass
class Run:
    """What one run folder holds, read without importing torch."""

    path: Path
    status: str
    error: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # key -> typed value
    choices: dict[str, Any] = field(default_factory=dict)  # config group -> option
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    params: int | None = None
    dev_acc: list[tuple[int, float]] = field(default_factory=list)  # (epoch, dev accuracy)
    epoch_s: list[float] = field(default_factory=list)

    def value(self, key: str) -> Any:
        """The run's value for an override key: its own override, else what its config had."""
        if key in self.overrides:
            return self.overrides[key]
        name = key.lstrip("+~").split("@")[0]
        if name in self.choices:
            return self.choices[name]
        node: Any = self.config
        for part in name.split("."):
            if not isinstance(node, dict) or part not in node:
                return MISSING
            node = node[part]
        return node

    @property
    def best(self) -> tuple[float, int | None]:
        if self.summary.get("best_dev_acc") is not None and self.summary.get("epochs"):
            return float(self.summary["best_dev_acc"]), self.summary.get("best_epoch")
        if not self.dev_acc:
            return math.nan, None
        epoch, acc = max(self.dev_acc, key=lambda pair: pair[1])
        return acc, epoch


# --- reading runs --------------------------------------------------------------------------


def is_run(folder: Path) -> bool:
    return any(
        (folder / name).exists() for name in (".hydra/config.yaml", "status.json", "summary.json")
    )


def find_runs(root: Path) -> list[Path]:
    """Every run folder under `root` (itself included), in path order."""
    if is_run(root):
        return [root]
    runs = []
    for folder, subfolders, _ in os.walk(root):
        here = Path(folder)
        if here != root and is_run(here):
            runs.append(here)
            subfolders.clear()  # a run holds no runs
            continue
        subfolders[:] = sorted(s for s in subfolders if s not in NOT_RUNS)
    return sorted(runs)


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """`key=value` command-line overrides as key -> typed value (Hydra's own grammar)."""
    parsed = {}
    parser = OverridesParser.create()
    for text in overrides:
        if text.startswith(("resume=", "hydra.", "hydra/")):
            continue
        try:
            (override,) = parser.parse_overrides([text])
            key = override.get_key_element()
            value = None if override.is_delete() else override.value()
        except Exception:  # a form this Hydra cannot parse: keep it as text
            key, _, value = text.partition("=")
        parsed[key] = value
    return parsed


def _yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def read_run(path: Path) -> Run:
    run = Run(path=path, status=run_status(path))
    record = read_status(path) or {}
    run.error = record.get("error")
    try:
        run.summary = json.loads((path / "summary.json").read_text())
    except (OSError, ValueError):
        run.summary = {}
    run.params = run.summary.get("params", record.get("params"))
    overrides = run.summary.get("overrides")
    if overrides is None:
        overrides = _yaml(path / ".hydra" / "overrides.yaml") or []
    run.overrides = parse_overrides([str(o) for o in overrides])
    run.config = _yaml(path / ".hydra" / "config.yaml") or {}
    hydra = _yaml(path / ".hydra" / "hydra.yaml") or {}
    run.choices = (hydra.get("hydra", {}).get("runtime", {}) or {}).get("choices", {}) or {}
    metrics = path / "metrics.csv"
    if metrics.is_file():
        try:
            table = pd.read_csv(metrics)
        except (OSError, ValueError):  # written atomically, so only a foreign file
            table = pd.DataFrame()
        if {"epoch", "dev_acc"} <= set(table.columns):
            epochs, accs = table["epoch"].astype(int), table["dev_acc"].astype(float)
            run.dev_acc = list(zip(epochs, accs, strict=True))
        if "epoch_s" in table.columns:
            run.epoch_s = table["epoch_s"].astype(float).tolist()
    return run


# --- the table -----------------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    if a is MISSING or b is MISSING:
        return a is b
    try:
        return bool(a == b)
    except Exception:
        return repr(a) == repr(b)


def varying_keys(runs: list[Run]) -> list[str]:
    """The override keys whose values are not the same in every run, in order of appearance."""
    keys: list[str] = []
    for run in runs:
        keys += [key for key in run.overrides if key not in keys]
    varying = []
    for key in keys:
        values = [run.value(key) for run in runs]
        if any(not _same(values[0], v) for v in values[1:]):
            varying.append(key)
    return varying


def show(value: Any) -> str:
    """An override value as it would be typed on the command line."""
    if value is MISSING:
        return ""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(show(v) for v in value) + "]"
    return str(value)


def label_of(run: Run, keys: list[str], root: Path) -> str:
    if not keys:
        return run_name(run, root)
    return " ".join(f"{key}={show(run.value(key))}" for key in keys)


def run_name(run: Run, root: Path) -> str:
    name = os.path.relpath(run.path, root)
    return run.path.name if name == "." else name


def ablation_table(runs: list[Run], root: Path) -> pd.DataFrame:
    """A row per run, best dev accuracy first."""
    keys = varying_keys(runs)
    rows = []
    for run in runs:
        best_acc, best_epoch = run.best
        rows.append(
            {
                "run": run_name(run, root),
                **{key: show(run.value(key)) for key in keys},
                "params": run.params,
                "best_dev_acc": best_acc,
                "best_epoch": best_epoch,
                "epochs_done": len(run.dev_acc),
                "s_per_epoch": (sum(run.epoch_s) / len(run.epoch_s)) if run.epoch_s else None,
                "status": run.status,
            }
        )
    table = pd.DataFrame(rows, columns=["run", *keys, *RESULT_COLUMNS])
    table = table.sort_values(
        ["best_dev_acc", "run"], ascending=[False, True], na_position="last", kind="stable"
    ).reset_index(drop=True)
    for column in ("params", "best_epoch"):
        table[column] = table[column].astype("Int64")
    return table


def _cell(column: str, value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if column == "params":
        return f"{int(value):,}"
    if column == "best_dev_acc":
        return f"{value:.4f}"
    if column == "s_per_epoch":
        return f"{value:.3g}"
    return str(value).replace("|", "\\|")


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table; numbers right-aligned."""
    numeric = {"params", "best_dev_acc", "best_epoch", "epochs_done", "s_per_epoch"}
    lines = [
        "| " + " | ".join(table.columns) + " |",
        "| " + " | ".join("---:" if c in numeric else "---" for c in table.columns) + " |",
    ]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_cell(c, row[c]) for c in table.columns) + " |")
    return "\n".join(lines) + "\n"


def problems(runs: list[Run], root: Path) -> list[str]:
    """A line per run that did not finish, with its error."""
    return [
        f"{run_name(run, root)}: {run.status}" + (f": {run.error}" if run.error else "")
        for run in runs
        if run.status in (FAILED, INTERRUPTED, KILLED)
    ]


# --- the plot ------------------------------------------------------------------------------


def draw(runs: list[Run], table: pd.DataFrame, keys: list[str], root: Path, path: Path) -> None:
    """Dev accuracy per epoch for every run, and each run's best, labelled by its overrides."""
    from phonemlp.plots import label_axes, new_figure, palette, save_figure

    by_name = {run_name(run, root): run for run in runs}
    ordered = [by_name[name] for name in table["run"]]  # best first
    colors = palette(len(ordered))
    figure = new_figure(figsize=(13, max(3.5, 0.32 * len(ordered) + 1.6)))
    curves, best = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.15]})
    labels = []
    for i, run in enumerate(ordered):
        label = label_of(run, keys, root)
        if run.status != FINISHED:
            label += f" ({run.status})"
        labels.append(label)
        color = colors(i % colors.N)
        if run.dev_acc:
            epochs, accs = zip(*run.dev_acc, strict=True)
            style = "--" if run.status == PRUNED else "-"  # stopped early by a search
            curves.plot(epochs, accs, style, marker="o", markersize=3, color=color, label=label)
    last_epoch = max((epoch for run in ordered for epoch, _ in run.dev_acc), default=1)
    curves.set_xlim(0.5, last_epoch + 0.5)
    label_axes(curves, "epoch", "dev accuracy", "dev accuracy per epoch")
    if last_epoch <= 12:
        curves.set_xticks(range(1, last_epoch + 1))  # every epoch (one epoch: one tick)
    if 0 < len(ordered) <= 10:
        curves.legend(fontsize=7, loc="lower right")

    # a dot per run (not bars from 0, which hide the differences an ablation is about)
    known = [run.best[0] for run in ordered if not math.isnan(run.best[0])]
    low, high = (min(known), max(known)) if known else (0.0, 1.0)
    pad = max(0.005, 0.08 * (high - low))
    positions = list(range(len(ordered)))[::-1]  # the best at the top
    for i, (y, run) in enumerate(zip(positions, ordered, strict=True)):
        acc = run.best[0]
        if math.isnan(acc):
            best.text(low - pad, y, " no epoch done", va="center", fontsize=8, color="grey")
            continue
        best.hlines(y, low - pad, acc, color=colors(i % colors.N), linewidth=2, alpha=0.6)
        best.plot([acc], [y], "o", color=colors(i % colors.N), markersize=7)
        best.text(acc + pad / 4, y, f" {acc:.4f}", va="center", fontsize=8)
    best.set_yticks(positions, labels, fontsize=8)
    best.set_xlim(low - pad, high + 3 * pad)
    best.set_ylim(-0.6, len(ordered) - 0.4)
    best.set_xlabel("best dev accuracy")
    best.set_title("best dev accuracy per run")
    best.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    save_figure(figure, path, dpi=110)


# --- the command ---------------------------------------------------------------------------


@dataclass
class Ablations:
    table: pd.DataFrame
    text: str  # what is printed
    written: list[Path]


def write_ablations(paths: list[Path], plot: bool = True) -> Ablations:
    """Collect the runs under `paths`; write the table and the plot at the first path."""
    roots = [Path(p) for p in paths]
    for root in roots:
        if not root.is_dir():
            raise PhonemlpError(f"{root}: folder not found; give run or sweep folders")
    found = [path for root in roots for path in find_runs(root)]
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise PhonemlpError(
            f"no runs under {', '.join(map(str, roots))}: a run folder holds .hydra/ "
            "(phonemlp-train writes one per run, or per job of a multirun)"
        )
    out = roots[0]
    runs = [read_run(path) for path in unique]
    base = out.resolve()
    keys = varying_keys(runs)
    table = ablation_table(runs, base)

    written = [out / "ablations.csv", out / "ablations.md"]
    with atomic_path(written[0]) as temporary:
        table.to_csv(temporary, index=False)
    notes = problems(runs, base)
    markdown = to_markdown(table)
    if notes:
        markdown += "\n" + "\n".join(f"- {note}" for note in notes) + "\n"
    write_text(written[1], markdown)
    if plot:
        written.append(out / "ablations.png")
        draw(runs, table, keys, base, written[2])

    counts = table["status"].value_counts()
    tally = ", ".join(f"{counts[s]} {s}" for s in counts.index)
    printable = table.copy()
    for column in ("params", "best_dev_acc", "s_per_epoch"):
        printable[column] = [_cell(column, v) for v in printable[column]]
    text = printable.to_string(index=False, na_rep="")
    text += f"\n\n{len(runs)} runs: {tally}; varying: {', '.join(keys) or 'nothing'}"
    if notes:
        text += "\n" + "\n".join(notes)
    return Ablations(table=table, text=text, written=written)


def main(argv: list[str] | None = None) -> None:
    """phonemlp-ablate PATH... [plot=false]: bare arguments are folders, the rest key=value."""
    from phonemlp.cli import command_config

    args = sys.argv[1:] if argv is None else argv
    with exit_on_user_error("phonemlp-ablate"):
        paths = [Path(a) for a in args if "=" not in a and not a.startswith("-")]
        options = command_config(
            "phonemlp-ablate", "ablate", [a for a in args if "=" in a or a.startswith("-")]
        )
        if options is None:
            return
        if not paths:
            raise PhonemlpError("give at least one run or sweep folder: phonemlp-ablate PATH...")
        result = write_ablations(paths, plot=options.plot)
    print(result.text)
    print("wrote " + ", ".join(str(p) for p in result.written))


if __name__ == "__main__":
    main(sys.argv[1:])
