"""The PNGs phonemlp draws (a run's reports, an ablation table, a search study): matplotlib
Figures drawn off-screen (no pyplot: nothing global, cheaper to import), written atomically.

A run's report plots are drawn by a helper process (`python -m phonemlp.plots`, see
helpers.py) that the run starts with itself: it imports matplotlib on another core while the
run starts, and later runs in the same Python session (a notebook, a sweep) reuse it.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from phonemlp import helpers
from phonemlp.atomic import atomic_path
from phonemlp.phonemes import CLASSES, NUM_CLASSES

_drawer: subprocess.Popen[str] | None = None  # the drawing process, once started


def new_figure(figsize: tuple[float, float]) -> Any:
    """An off-screen Figure; its plots set their own margins or call `tight_layout()`."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def save_figure(figure: Any, path: Path, dpi: int) -> None:
    """The figure as a PNG at `path`, written whole or not at all."""
    with atomic_path(path) as temporary:  # light compression: a few kB more, 4x faster
        figure.savefig(temporary, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})


def label_axes(axes: Any, xlabel: str, ylabel: str, title: str, whole_x: bool = True) -> None:
    """Axis labels, title and a light grid; `whole_x`: ticks on whole numbers only (epochs,
    trials)."""
    from matplotlib.ticker import MaxNLocator

    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    if whole_x:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)


def palette(count: int) -> Any:
    """A qualitative colour map with enough colours for `count` lines (call it with an index)."""
    import matplotlib

    return matplotlib.colormaps["tab10" if count <= 10 else "tab20"]


def plot_confusion(confusion: Any, path: str | Path) -> None:
    """The row-normalised confusion matrix, phoneme names on both axes."""
    confusion = np.asarray(confusion)
    rows = confusion.sum(1, keepdims=True)
    shares = confusion / np.maximum(rows, 1)
    figure = new_figure(figsize=(11, 9.5))  # fixed margins: a layout engine doubles the time
    axes = figure.add_axes((0.07, 0.06, 0.8, 0.88))
    image = axes.imshow(shares, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    ticks = np.arange(NUM_CLASSES)
    axes.set_xticks(ticks, CLASSES, rotation=90, fontsize=7)
    axes.set_yticks(ticks, CLASSES, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    accuracy = np.trace(confusion) / max(1, confusion.sum())
    axes.set_title(
        f"dev confusion (each row sums to 1); accuracy {accuracy:.4f} over {confusion.sum():,} "
        "frames"
    )
    colorbar = figure.add_axes((0.89, 0.06, 0.025, 0.88))
    figure.colorbar(image, cax=colorbar, label="share of the true class")
    save_figure(figure, path, dpi=110)


def plot_learning_curves(history: list[dict[str, float]], path: str | Path) -> None:
    """Loss and accuracy per epoch, train and dev, side by side."""
    epochs = [row["epoch"] for row in history]
    figure = new_figure(figsize=(11, 4))
    panels = figure.subplots(1, 2, gridspec_kw={"left": 0.07, "right": 0.98, "bottom": 0.13,
                                                "top": 0.91, "wspace": 0.22})  # fmt: skip
    for axes, metric in zip(panels, ("loss", "acc"), strict=True):
        for split, style in (("train", "o-"), ("dev", "s-")):
            values = [row[f"{split}_{metric}"] for row in history]
            axes.plot(epochs, values, style, markersize=4, label=split)
        ylabel = "cross-entropy" if metric == "loss" else "frame accuracy"
        label_axes(axes, "epoch", ylabel, "loss" if metric == "loss" else "accuracy")
        if len(epochs) <= 12:
            axes.set_xticks(epochs)  # every epoch (one epoch: a single tick, not 0.95)
        axes.legend()
    save_figure(figure, path, dpi=110)


PLOTS = {"confusion": plot_confusion, "learning_curves": plot_learning_curves}


def start_drawing() -> None:
    """Start the drawing process, unless it runs already."""
    global _drawer
    if _drawer is None or _drawer.poll() is not None:
        try:
            _drawer = helpers.start("phonemlp.plots")
        except OSError:
            _drawer = None  # the plots are drawn in this process


def draw(**plots: tuple[Any, ...]) -> None:
    """Draw the named plots of PLOTS (name=its arguments, JSON values) in the drawing process,
    or here what it could not draw (it is not running; a plot failed: its error is raised)."""
    global _drawer
    left = dict(plots)
    if _drawer is not None and all(
        helpers.send(_drawer, plot=name, args=args) for name, args in plots.items()
    ):
        for answer in helpers.answers(_drawer):
            if "failed" in answer:
                break
            del left[answer["drawn"]]
            if not left:
                break
    if left and _drawer is not None:  # it failed or has gone: a new one next time
        with contextlib.suppress(OSError, AttributeError):
            _drawer.stdin.close()  # type: ignore[union-attr]
        _drawer = None
    for name, args in left.items():
        PLOTS[name](*args)


if __name__ == "__main__":
    requests, reply = helpers.serve(nice=5)
    new_figure((1, 1))  # matplotlib, imported before the first request
    for request in requests:
        try:
            PLOTS[request["plot"]](*request["args"])
            reply(drawn=request["plot"])
        except Exception as error:  # drawn again by the run, which raises it
            reply(failed=request["plot"], error=str(error))
