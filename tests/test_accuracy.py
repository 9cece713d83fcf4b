"""The accuracy techniques: augmentation, EMA, R-Drop, schedules, budgets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from runner import TINY, metrics, run_cli, summary, train_run

from phonemlp.augment import augment, augment_enabled
from phonemlp.checkpoint import load_checkpoint
from phonemlp.config import ModelConfig
from phonemlp.loop import Trainer
from phonemlp.model import MLP, SHAPES, count_params, resolve_widths
from phonemlp.optim import build_optimizer

OFF = {
    "time_mask_prob": 0.0,
    "time_mask_max": 0,
    "freq_mask_prob": 0.0,
    "freq_mask_max": 0,
    "warp_prob": 0.0,
    "warp_max": 0.0,
}


def windows(batch: int = 64, frames: int = 9, bands: int = 28) -> torch.Tensor:
    return torch.rand(batch, frames * bands) + 1.0  # never zero before masking


def test_time_masks_spare_the_centre_frame() -> None:
    cfg = OmegaConf.create({**OFF, "time_mask_prob": 1.0, "time_mask_max": 8})
    x = augment(windows(), 28, cfg).view(64, 9, 28)
    zero_frames = (x == 0).all(2)
    assert zero_frames.any(1).float().mean() > 0.8  # most examples lost frames
    assert not zero_frames[:, 4].any()  # the centre frame carries the label
    bridged = zero_frames.clone()
    bridged[:, 4] = zero_frames[:, 3] & zero_frames[:, 5]  # a run may straddle the centre
    edges = torch.nn.functional.pad(bridged.int(), (1, 1)).diff(dim=1).abs().sum(1)
    assert (edges <= 2).all()  # one contiguous run per example


def test_frequency_masks_zero_bands_across_the_window() -> None:
    cfg = OmegaConf.create({**OFF, "freq_mask_prob": 1.0, "freq_mask_max": 5})
    x = augment(windows(), 28, cfg).view(64, 9, 28)
    zero_bands = (x == 0).all(1)
    assert ((x == 0).any(1) == zero_bands).all()  # a masked band is masked in every frame
    widths = zero_bands.sum(1)
    assert (widths >= 1).all() and (widths <= 5).all()


def test_mel_warp_resamples_the_band_axis() -> None:
    ramp = torch.arange(28.0).repeat(4, 3)  # 4 examples, 3 frames, band value = band index
    cfg = OmegaConf.create({**OFF, "warp_prob": 1.0, "warp_max": 0.2})
    x = augment(ramp, 28, cfg).view(4, 3, 28)
    factor = x[:, 0, 10] / 10  # a linear ramp is stretched by exactly the factor
    assert ((factor > 0.79) & (factor < 1.21)).all() and (factor != 1).any()
    assert torch.allclose(x[:, 0, 5], 5 * factor, atol=1e-4)
    assert not augment_enabled(OmegaConf.create(OFF))


def test_dropout_schedule_and_no_decay_groups() -> None:
    model = MLP(20, [16, 16], 40, ModelConfig(dropout=0.1))
    overrides = ["dropout_final=0.5", "epochs=5", "model.dropout=0.1"]
    with initialize_config_module(config_module="phonemlp.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    trainer = Trainer(cfg, model, "fp32", feature_dim=28, steps_per_epoch=10)
    rates = {3: 0.3, 5: 0.5}  # linear from model.dropout at epoch 1 to dropout_final at the last
    for epoch, rate in rates.items():
        trainer.set_dropout(epoch)
        dropouts = [m.p for m in model.modules() if m.__class__.__name__ == "Dropout"]
        assert dropouts == [pytest.approx(rate)] * 2
    optimizer = build_optimizer(
        OmegaConf.create(
            {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3, "weight_decay": 0.1}
        ),
        model,
        True,
    )
    decayed, plain = optimizer.param_groups
    assert all(p.ndim == 2 for p in decayed["params"]) and decayed["weight_decay"] == 0.1
    assert all(p.ndim == 1 for p in plain["params"]) and plain["weight_decay"] == 0.0


@pytest.mark.parametrize("shape", SHAPES)
def test_param_budget_lands_just_under(shape: str) -> None:
    cfg = OmegaConf.create(
        {
            "shape": shape,
            "depth": 5,
            "width": 1024,
            "widths": None,
            "param_budget": "3.5M",
            "norm": "batch",
            "norm_every": 1,
        }
    )
    widths = resolve_widths(cfg, 41 * 28, 40)
    params = count_params(41 * 28, widths, 40, "batch", 1)
    assert 0.97 * 3.5e6 < params <= 3.5e6, (widths, params)


def test_techniques_train_and_ema_weights_are_the_ones_kept(corpus: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train_run(
        run_dir,
        f"data.root={corpus}",
        *TINY,
        "epochs=2",
        "ema=0.9",
        "rdrop_alpha=0.3",
        "dropout_final=0.3",
        "no_decay_norm_bias=true",
        "augment.time_mask_prob=0.5",
        "augment.time_mask_max=2",
        "augment.freq_mask_prob=0.5",
        "augment.freq_mask_max=4",
        "augment.warp_prob=0.5",
        "augment.warp_max=0.1",
        "precision=fp32",
    )
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert checkpoint["ema_state"] is not None and checkpoint["train_model"] is not None
    assert not torch.equal(checkpoint["model"]["0.weight"], checkpoint["train_model"]["0.weight"])
    proc = run_cli(
        "phonemlp-predict", f"ckpt={run_dir}", "split=dev", "precision=fp32", cwd=tmp_path
    )
    reported = float(
        next(x for x in proc.stdout.splitlines() if x.startswith("dev accuracy")).split()[2]
    )
    assert reported == pytest.approx(summary(run_dir)["best_dev_acc"], abs=1e-3)
    assert summary(run_dir)["best_dev_acc"] > 0.3


def test_time_budget_stops_the_run(corpus: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train_run(run_dir, f"data.root={corpus}", *TINY, "epochs=100000", "time_budget_s=1.5")
    table = metrics(run_dir)
    assert 1 <= len(table) < 100000
    assert table["lr"].iloc[-1] < 0.2 * 1e-3  # the cosine reached its end with the budget
    assert (run_dir / "checkpoints" / "best.pt").is_file()


def test_param_budget_through_the_cli(corpus: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = train_run(
        run_dir,
        f"data.root={corpus}",
        *TINY,
        "model=diamond",
        "model.depth=3",
        "model.param_budget=200K",
        "limit_batches=2",
    )
    params = summary(run_dir)["params"]
    assert 190_000 < params <= 200_000
    assert f"{params:,} parameters" in proc.stdout


def test_cpu_budget_preset_trains_to_a_real_accuracy_and_scores_every_speaker(
    corpus: Path, tmp_path: Path
) -> None:
    """experiment=cpu_budget composes the recipe README describes and trains to a real accuracy."""
    run_dir = tmp_path / "cpu_budget"
    train_run(
        run_dir,
        f"data.root={corpus}",
        "experiment=cpu_budget",
        "epochs=4",  # a fixed number of epochs, not the preset's time budget: no wall-clock
        "model.width=128",
    )
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert cfg.context == 10 and cfg.model.widths is None and cfg.model.depth == 3
    assert augment_enabled(cfg.augment) and cfg.augment.warp_max > 0
    assert summary(run_dir)["best_dev_acc"] > 0.5  # the majority class is about 0.2
    out = run_cli(
        "phonemlp-predict", f"ckpt={run_dir}", f"out={tmp_path / 'sub.csv'}", cwd=tmp_path
    ).stdout
    assert "test accuracy" in out and "per speaker" in out
