"""Reports after every run: per-class/per-speaker accuracy, confusion matrix, learning curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from runner import summary, train_run

from phonemlp import plots
from phonemlp.data.corpus import read_split
from phonemlp.phonemes import CLASSES, INDEX
from phonemlp.reports import write_reports
from phonemlp.tracking import log_reports

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def run(tiny_run: tuple[Path, str]) -> tuple[Path, str]:
    """A tiny two-epoch run on the test corpus, and what it printed."""
    return tiny_run


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) > 10_000, f"{path}: only {len(data)} bytes"


def test_a_run_writes_reports_of_its_best_model(run: tuple[Path, str], corpus: Path) -> None:
    run_dir, stdout = run
    reports = run_dir / "reports"
    dev = read_split(corpus, "dev-clean", progress=False)
    confusion = pd.read_csv(reports / "confusion.csv", index_col=0, keep_default_na=False)
    assert list(confusion.columns) == list(CLASSES)
    assert list(confusion.index) == list(CLASSES)
    counts = confusion.to_numpy()
    assert counts.sum() == dev.frames
    assert (counts.sum(1) == np.bincount(dev.labels, minlength=len(CLASSES))).all()
    assert np.trace(counts) / counts.sum() == pytest.approx(summary(run_dir)["best_dev_acc"])

    per_class = pd.read_csv(reports / "per_class.csv", keep_default_na=False)
    assert len(per_class) == 40
    assert list(per_class.columns) == [
        "class", "symbol", "frames", "correct", "accuracy", "most_confused_with",
    ]  # fmt: skip
    assert per_class["symbol"].tolist() == list(CLASSES)
    assert (per_class["frames"].to_numpy() == counts.sum(1)).all()
    assert (per_class["correct"].to_numpy() == np.diag(counts)).all()

    per_speaker = pd.read_csv(reports / "per_speaker.csv", dtype={"speaker": str})
    assert set(per_speaker["speaker"]) == {name.split("-")[0] for name in dev.names}
    assert per_speaker["frames"].sum() == dev.frames
    overall = (per_speaker["accuracy"] * per_speaker["frames"]).sum() / dev.frames
    assert overall == pytest.approx(summary(run_dir)["best_dev_acc"])

    assert_png(reports / "confusion.png")
    assert_png(reports / "learning_curves.png")
    assert f"reports:    {reports}" in stdout
    assert not list(reports.glob(".*tmp*"))  # written atomically, no temporaries left


def test_a_resumed_run_keeps_the_best_checkpoint_it_continues(
    run: tuple[Path, str], tmp_path: Path
) -> None:
    """Resuming a finished run (no epoch left) still has best.pt and reports of it."""
    run_dir, _ = run
    resumed = tmp_path / "resumed"
    train_run(resumed, f"resume={run_dir}")
    assert (resumed / "checkpoints" / "best.pt").read_bytes() == (
        run_dir / "checkpoints" / "best.pt"
    ).read_bytes()
    assert (resumed / "reports" / "confusion.csv").read_text() == (
        run_dir / "reports" / "confusion.csv"
    ).read_text()


def test_tables_from_hand_made_predictions(tmp_path: Path) -> None:
    aa, ae, ah = INDEX["AA"], INDEX["AE"], INDEX["AH"]
    labels = np.array([aa, aa, aa, aa, ae, ae, ah, ah, ah, ah])
    predictions = np.array([aa, aa, ah, ah, ah, ae, ah, ah, ah, aa])
    names = ["19-198-0001", "19-198-0002", "103-1240-0000"]
    offsets = np.array([0, 3, 6, 10])
    history = [
        {"epoch": 1, "train_loss": 2.0, "train_acc": 0.4, "dev_loss": 1.8, "dev_acc": 0.5},
        {"epoch": 2, "train_loss": 1.5, "train_acc": 0.5, "dev_loss": 1.6, "dev_acc": 0.6},
    ]
    paths = write_reports(tmp_path, history, labels, predictions, names, offsets)
    assert set(paths) == {
        "per_class.csv", "confusion.csv", "confusion.png", "learning_curves.png",
        "per_speaker.csv",
    }  # fmt: skip
    assert all(path.parent == tmp_path / "reports" for path in paths.values())
    per_class = pd.read_csv(paths["per_class.csv"]).set_index("symbol")
    assert per_class.loc["AA", ["frames", "correct"]].tolist() == [4, 2]
    assert per_class.loc["AA", "accuracy"] == pytest.approx(0.5)
    assert per_class.loc["AA", "most_confused_with"] == "AH"
    assert per_class.loc["AH", "accuracy"] == pytest.approx(0.75)
    assert per_class.loc["ZH", "frames"] == 0
    assert pd.isna(per_class.loc["ZH", "accuracy"])  # absent: no accuracy rather than 0
    assert pd.isna(per_class.loc["ZH", "most_confused_with"])
    confusion = pd.read_csv(paths["confusion.csv"], index_col=0, keep_default_na=False)
    assert confusion.loc["AA", "AH"] == 2 and confusion.loc["AH", "AA"] == 1
    per_speaker = pd.read_csv(paths["per_speaker.csv"], dtype={"speaker": str})
    by_speaker = per_speaker.set_index("speaker")
    assert by_speaker.loc["19", "frames"] == 6 and by_speaker.loc["103", "frames"] == 4
    assert by_speaker.loc["19", "accuracy"] == pytest.approx(3 / 6)  # aa aa ah | ah ah ae
    assert by_speaker.loc["103", "accuracy"] == pytest.approx(3 / 4)
    for name in ("confusion.png", "learning_curves.png"):
        assert_png(paths[name])


def test_reports_are_logged_to_wandb_as_images_and_tables(tmp_path: Path) -> None:
    import wandb

    class Run:
        def __init__(self) -> None:
            self.logged: list[dict] = []

        def log(self, data: dict) -> None:
            self.logged.append(data)

    labels = np.array([0, 1, 1, 2])
    history = [{"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "dev_loss": 1.0, "dev_acc": 0.5}]
    paths = write_reports(tmp_path, history, labels, np.array([0, 1, 2, 2]), ["a-1"], [0, 4])
    run = Run()
    log_reports(run, paths)
    (logged,) = run.logged
    assert isinstance(logged["reports/confusion"], wandb.Image)
    assert isinstance(logged["reports/learning_curves"], wandb.Image)
    for name in ("per_class", "confusion", "per_speaker"):
        assert isinstance(logged[f"reports/{name}_table"], wandb.Table)
    assert len(logged) == 5
    assert logged["reports/confusion_table"].columns == ["true", *CLASSES]


def test_plots_are_drawn_by_the_drawing_process_or_here_when_it_has_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    labels = np.array([0, 1, 1, 2])
    history = [{"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "dev_loss": 1.0, "dev_acc": 0.5}]
    real = dict(plots.PLOTS)

    def not_here(*args: object) -> None:
        raise AssertionError("drawn in the run's own process")

    plots.start_drawing()
    drawer = plots._drawer
    assert drawer is not None and drawer.poll() is None
    monkeypatch.setattr(plots, "PLOTS", dict.fromkeys(real, not_here))
    paths = write_reports(tmp_path / "a", history, labels, np.array([0, 1, 2, 2]))
    assert_png(paths["confusion.png"])
    assert_png(paths["learning_curves.png"])
    assert plots._drawer is drawer  # kept for the next run

    drawer.kill()
    drawer.wait()
    monkeypatch.setattr(plots, "PLOTS", real)
    paths = write_reports(tmp_path / "b", history, labels, np.array([0, 1, 2, 2]))
    assert_png(paths["confusion.png"])  # drawn here instead
    assert plots._drawer is None
    plots.start_drawing()  # the next run starts a new one
    assert plots._drawer is not None and plots._drawer.poll() is None


def test_a_plot_that_fails_in_the_drawing_process_fails_here(tmp_path: Path) -> None:
    plots.start_drawing()
    missing = tmp_path / "no such folder" / "confusion.png"
    with pytest.raises(FileNotFoundError):
        plots.draw(confusion=(np.eye(40, dtype=int).tolist(), str(missing)))
    assert plots._drawer is None  # not trusted with the next run's plots
