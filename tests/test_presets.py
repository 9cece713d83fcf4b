"""The experiment presets: hw1p2 (the real task on a GPU) and cpu_budget (short CPU runs)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from hydra.errors import MissingConfigException
from omegaconf import DictConfig
from runner import run_cli, summary, train_run

from phonemlp.augment import augment_enabled
from phonemlp.data.corpus import read_split
from phonemlp.model import build_model, count_params, resolve_widths
from phonemlp.phonemes import CLASSES, NUM_CLASSES

FEATURES = 28  # log-mel bands per frame in the HW1P2 data (and the demo corpus)
CAP = 20_000_000  # the HW1P2 parameter limit


def composed(*overrides: str) -> DictConfig:
    with initialize_config_module(config_module="phonemlp.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


def input_dim(cfg: DictConfig) -> int:
    return (2 * cfg.context + 1) * FEATURES


def test_hw1p2_preset_is_the_published_recipe() -> None:
    cfg = composed("experiment=hw1p2")
    assert 30 <= cfg.context <= 40
    assert cfg.model.activation == "gelu" and cfg.model.norm == "batch"
    assert cfg.dropout_final is not None and cfg.dropout_final != cfg.model.dropout
    assert cfg.optimizer._target_ == "torch.optim.AdamW"
    assert cfg.scheduler.name == "cosine" and cfg.scheduler.warmup_epochs > 0
    assert cfg.augment.freq_mask_prob > 0 and cfg.augment.freq_mask_max > 0
    assert cfg.augment.time_mask_prob > 0 and cfg.augment.time_mask_max > 0
    assert augment_enabled(cfg.augment)
    assert cfg.label_smoothing == pytest.approx(0.1)
    assert cfg.batch_size >= 4096 and cfg.optimizer.lr > 1e-3  # a GPU batch, a scaled lr
    assert cfg.precision == "auto" and cfg.epochs >= 10 and cfg.time_budget_s == 0
    assert "hw1p2" in cfg.wandb.tags


@pytest.mark.parametrize("preset", ["hw1p2", "cpu_budget"])
def test_presets_fit_the_parameter_cap_on_28_dim_frames(preset: str) -> None:
    cfg = composed(f"experiment={preset}")
    widths = resolve_widths(cfg.model, input_dim(cfg), NUM_CLASSES)
    model = build_model(cfg.model, input_dim(cfg), NUM_CLASSES)
    assert model.widths == widths
    assert model.num_params == count_params(input_dim(cfg), widths, NUM_CLASSES, "batch", 1)
    assert model.num_params <= CAP
    if preset == "hw1p2":  # the budget is spent: just under the cap, not far below it
        assert model.num_params > 0.99 * CAP, (widths, model.num_params)
        assert len(set(widths)) == 1 and len(widths) == cfg.model.depth  # a cylinder


def test_hw1p2_preset_trains_and_writes_a_submission(corpus: Path, tmp_path: Path) -> None:
    """The full 20 M model, 3 CPU batches of 512 frames (8192-frame GPU batches are slow here)."""
    run_dir = tmp_path / "hw1p2"
    train_run(
        run_dir,
        f"data.root={corpus}",
        "experiment=hw1p2",
        "epochs=1",
        "limit_batches=3",
        "batch_size=512",
        "eval_batch_size=2048",
    )
    cfg = composed("experiment=hw1p2")
    expected = build_model(cfg.model, input_dim(cfg), NUM_CLASSES).num_params
    result = summary(run_dir)
    assert result["params"] == expected  # the preset's model, not a smaller stand-in
    assert 0.0 <= result["best_dev_acc"] <= 1.0
    out = tmp_path / "submission.csv"
    run_cli("phonemlp-predict", f"ckpt={run_dir}", f"out={out}", cwd=tmp_path)
    table = pd.read_csv(out, keep_default_na=False)
    frames = read_split(corpus, "test-clean", labelled=False, progress=False).frames
    assert [name.lower() for name in table.columns] == ["id", "label"]  # Kaggle: any case
    ids, labels = table.iloc[:, 0], table.iloc[:, 1]
    assert ids.tolist() == list(range(frames))  # one row per test frame, in order
    assert set(labels) <= set(CLASSES)


def test_the_old_best_preset_is_gone_and_hydra_names_the_presets() -> None:
    with pytest.raises(MissingConfigException) as error:
        composed("experiment=best")
    assert "Could not find 'experiment/best'" in str(error.value)
    assert {"cpu_budget", "hw1p2"} <= set(error.value.options or [])
