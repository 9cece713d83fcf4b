"""phonemlp-predict: the Kaggle CSV, dev accuracy, ensembles, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from runner import TINY, run_cli, summary, train_run

from phonemlp.data.corpus import read_split
from phonemlp.phonemes import CLASSES


@pytest.fixture(scope="module")
def runs(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two small trained runs with different contexts (for ensembles)."""
    base = tmp_path_factory.mktemp("predict")
    made = []
    for name, context in (("a", 3), ("b", 5)):
        run_dir = base / name
        train_run(run_dir, f"data.root={corpus}", *TINY, "epochs=2", f"context={context}")
        made.append(run_dir)
    return made


def test_submission_has_every_test_frame_in_order(
    runs: list[Path], corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "submission.csv"
    run_cli(
        "phonemlp-predict",
        f"ckpt={runs[0] / 'checkpoints' / 'best.pt'}",
        f"out={out}",
        cwd=tmp_path,
    )
    table = pd.read_csv(out, keep_default_na=False)
    frames = read_split(corpus, "test-clean", labelled=False, progress=False).frames
    assert list(table.columns) == ["id", "label"]  # the starter's header (no sample CSV here)
    assert table["id"].tolist() == list(range(frames))
    assert set(table["label"]) <= set(CLASSES)
    truth = pd.read_csv(corpus / "test_labels.csv", keep_default_na=False)
    accuracy = (table["label"] == truth["Label"]).mean()
    assert accuracy > 0.3  # the model learned; the rows line up with the true frames


def test_index_labels_and_root_from_the_checkpoint(runs: list[Path], tmp_path: Path) -> None:
    symbols = tmp_path / "symbols.csv"
    indices = tmp_path / "indices.csv"
    run_cli("phonemlp-predict", f"ckpt={runs[0]}", f"out={symbols}", cwd=tmp_path)
    run_cli(
        "phonemlp-predict", f"ckpt={runs[0]}", f"out={indices}", "label_format=index", cwd=tmp_path
    )
    by_symbol = pd.read_csv(symbols, keep_default_na=False)["label"]
    by_index = pd.read_csv(indices)["label"]
    assert by_index.dtype.kind == "i"
    assert (np.asarray(CLASSES)[by_index.to_numpy()] == by_symbol.to_numpy()).all()


def test_dev_split_reports_the_training_runs_accuracy(runs: list[Path], tmp_path: Path) -> None:
    proc = run_cli(
        "phonemlp-predict", f"ckpt={runs[0]}", "split=dev", "precision=fp32", cwd=tmp_path
    )
    line = next(x for x in proc.stdout.splitlines() if x.startswith("dev accuracy"))
    reported = float(line.split()[2])
    expected = summary(runs[0])["best_dev_acc"]
    assert reported == pytest.approx(expected, abs=0.01)


def test_ensemble_averages_models_with_different_contexts(runs: list[Path], tmp_path: Path) -> None:
    proc = run_cli("phonemlp-predict", f"ckpt=[{runs[0]},{runs[1]}]", "split=dev", cwd=tmp_path)
    assert "2 model(s)" in proc.stdout
    accuracy = float(
        next(x for x in proc.stdout.splitlines() if x.startswith("dev accuracy")).split()[2]
    )
    single = max(summary(run)["best_dev_acc"] for run in runs)
    assert accuracy > single - 0.05


def test_ensemble_over_the_parameter_cap_is_refused(runs: list[Path], tmp_path: Path) -> None:
    proc = run_cli(
        "phonemlp-predict",
        f"ckpt=[{runs[0]},{runs[1]}]",
        "max_params=1000",
        f"out={tmp_path / 'x.csv'}",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2
    assert "max_params=1,000" in proc.stderr
    assert not (tmp_path / "x.csv").exists()


def test_missing_output_folder_is_refused(runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "nowhere" / "submission.csv"
    proc = run_cli("phonemlp-predict", f"ckpt={runs[0]}", f"out={out}", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "nowhere" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_ckpt_setting_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("phonemlp-predict", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "phonemlp-predict: error: ckpt is required; set it as ckpt=..."
