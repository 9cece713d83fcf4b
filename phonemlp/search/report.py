"""A study's results: trials.csv, search.png and report.md in the study folder, and the text
printed at the end of a search (or by `report=true` at any time)."""

from __future__ import annotations

import math
import shlex
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from phonemlp.atomic import atomic_path, write_text
from phonemlp.search.study import SearchStudy

STATES = {
    TrialState.COMPLETE: "finished",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
}
OUTPUTS = ("trials.csv", "search.png", "report.md")


def trial_value(trial: FrozenTrial) -> float:
    """A finished trial's best dev accuracy; a pruned or running one's best epoch so far."""
    if trial.state == TrialState.COMPLETE and trial.value is not None:
        return float(trial.value)
    values = list(trial.intermediate_values.values())
    return max(values) if values else math.nan


def trials_table(trials: list[FrozenTrial], keys: list[str]) -> pd.DataFrame:
    rows = []
    for trial in sorted(trials, key=lambda t: t.number):
        duration = trial.duration.total_seconds() if trial.duration is not None else None
        rows.append(
            {
                "trial": trial.number,
                "state": STATES.get(trial.state, trial.state.name.lower()),
                "best_dev_acc": trial_value(trial),
                "epochs": len(trial.intermediate_values),
                **{key: trial.params.get(key) for key in keys},
                "duration_s": duration,
                "run": f"trials/{trial.number}",
                "error": trial.user_attrs.get("error", ""),
            }
        )
    columns = ["trial", "state", "best_dev_acc", "epochs", *keys, "duration_s", "run", "error"]
    return pd.DataFrame(rows, columns=columns)


def train_command(trial: FrozenTrial) -> str:
    overrides = trial.user_attrs.get("overrides", [])
    return "phonemlp-train " + " ".join(shlex.quote(str(o)) for o in overrides)


def importances(study: SearchStudy) -> tuple[dict[str, float], str | None]:
    """Optuna's parameter importances (fANOVA) over the finished trials, or why there are none."""
    import optuna

    finished = study.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(finished) < 2:
        return {}, f"parameter importances need 2 finished trials ({len(finished)} so far)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(study.study)
    except (ValueError, RuntimeError) as error:  # a single value everywhere, no parameter...
        return {}, f"parameter importances unavailable: {str(error).splitlines()[0]}"
    if not found:
        return {}, "parameter importances unavailable: no searched parameter"
    return dict(found), None


def draw(table: pd.DataFrame, trials: list[FrozenTrial], scores: dict[str, float], path: Path):
    """Best dev accuracy per trial with the best so far; dev accuracy per epoch (pruned trials
    dashed); parameter importances."""
    from phonemlp.plots import label_axes, new_figure, save_figure

    figure = new_figure(figsize=(16, 4.5))
    history, curves, bars = figure.subplots(1, 3)
    colors = {"finished": "tab:blue", "pruned": "tab:orange", "running": "tab:green"}
    for state, color in colors.items():
        rows = table[(table["state"] == state) & table["best_dev_acc"].notna()]
        if rows.empty:
            continue
        history.scatter(rows["trial"], rows["best_dev_acc"], color=color, label=state, s=22)
    finished = table[table["state"] == "finished"].sort_values("trial")
    if len(finished):
        history.step(
            finished["trial"], finished["best_dev_acc"].cummax(), where="post", color="black",
            linewidth=1, label="best so far",
        )  # fmt: skip
    label_axes(history, "trial", "best dev accuracy", "optimisation history")
    history.legend(fontsize=8, loc="lower right")

    for trial in trials:
        if not trial.intermediate_values:
            continue
        epochs, accs = zip(*sorted(trial.intermediate_values.items()), strict=True)
        pruned = trial.state == TrialState.PRUNED
        curves.plot(
            epochs, accs, linestyle="--" if pruned else "-", marker="o", markersize=2,
            linewidth=1, color="tab:orange" if pruned else "tab:blue", alpha=0.7,
        )  # fmt: skip
    label_axes(curves, "epoch", "dev accuracy", "dev accuracy per epoch (pruned dashed)")

    if scores:
        names = list(scores)[::-1]
        bars.barh(names, [scores[name] for name in names], color="tab:blue")
        bars.set_xlabel("importance (fANOVA, sums to 1)")
        bars.tick_params(axis="y", labelsize=8)
    else:
        bars.text(0.5, 0.5, "not enough finished trials", ha="center", va="center")
        bars.set_axis_off()
    bars.set_title("parameter importances")
    figure.tight_layout()
    save_figure(figure, path, dpi=100)


def _markdown(table: pd.DataFrame) -> str:
    def cell(column: str, value: Any) -> str:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return ""
        if column == "best_dev_acc":
            return f"{value:.4f}"
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(table.columns) + " |"]
    lines.append("| " + " | ".join("---" for _ in table.columns) + " |")
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(cell(c, row[c]) for c in table.columns) + " |")
    return "\n".join(lines) + "\n"


def write_report(study: SearchStudy, plot: bool = True) -> str:
    """Write trials.csv, search.png and report.md into the study folder; return the text."""
    trials = study.study.get_trials(deepcopy=False)
    keys: list[str] = []
    for trial in trials:
        keys += [key for key in trial.params if key not in keys]
    table = trials_table(trials, keys)
    folder = study.dir
    with atomic_path(folder / "trials.csv") as temporary:
        table.to_csv(temporary, index=False)
    scores, why_not = importances(study)
    if plot:
        draw(table, trials, scores, folder / "search.png")

    counts = table["state"].value_counts()
    done = int(counts.get("finished", 0) + counts.get("pruned", 0))
    tally = ", ".join(f"{counts[s]} {s}" for s in counts.index) or "no trials"
    lines = [
        f"study {study.settings.study}: {done} of n_trials={study.settings.n_trials} done "
        f"({tally}); {folder}"
    ]
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if complete:
        best = max(complete, key=lambda t: (t.value, -t.number))
        params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in best.params.items())  # fmt: skip
        lines += [
            f"best: trial {best.number}, best dev accuracy {best.value:.4f} "
            f"({study.trial_dir(best.number)}): {params}",
            "  " + train_command(best),
        ]
    else:
        lines.append("best: no finished trial yet")
    if scores:
        lines.append(
            "importances: " + ", ".join(f"{key} {value:.2f}" for key, value in scores.items())
        )
    else:
        lines.append(str(why_not))
    ranked = table.sort_values(["best_dev_acc", "trial"], ascending=[False, True])
    shown = ranked.drop(columns=["run", "error"]).head(15)
    printable = shown.to_string(index=False, na_rep="", float_format=lambda v: f"{v:.4g}")
    failed = table[table["error"] != ""]
    notes = [f"trial {row.trial}: {row.error}" for row in failed.itertuples()]
    markdown = "# " + lines[0] + "\n\n" + "\n\n".join(lines[1:]) + "\n\n" + _markdown(ranked)
    if notes:
        markdown += "\n" + "\n".join(f"- {note}" for note in notes) + "\n"
    write_text(folder / "report.md", markdown)
    written = ", ".join(str(folder / name) for name in OUTPUTS if plot or name != "search.png")
    return "\n".join([*lines, "", printable, *notes, "", f"wrote {written}"])
