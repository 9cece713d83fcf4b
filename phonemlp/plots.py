"""The PNGs phonemlp draws (a run's reports, an ablation table, a search study): matplotlib
Figures drawn off-screen (no pyplot: nothing global, cheaper to import), written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from phonemlp.atomic import atomic_path


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
