"""phonemlp-train end to end on a generated corpus: records, checkpoints, resume, options."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from runner import TINY, metrics, summary, train_run

from phonemlp.checkpoint import load_checkpoint
from phonemlp.phonemes import CLASSES


@pytest.fixture(scope="module")
def trained(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One two-epoch run kept by several tests."""
    run_dir = tmp_path_factory.mktemp("train") / "run"
    train_run(run_dir, f"data.root={corpus}", *TINY, "epochs=2", "checkpoint_every=1")
    return run_dir


def test_run_records_metrics_summary_and_checkpoints(trained: Path) -> None:
    table = metrics(trained)
    assert list(table.columns) == [
        "epoch", "lr", "train_loss", "train_acc", "dev_loss", "dev_acc", "epoch_s",
        "train_frames_per_s",
    ]  # fmt: skip
    assert table["epoch"].tolist() == [1, 2]
    assert (table["dev_acc"] > 0.3).all()  # far above chance (1/40) on the demo corpus
    result = summary(trained)
    assert result["epochs"] == 2
    assert result["best_dev_acc"] == pytest.approx(table["dev_acc"].max())
    assert result["best_epoch"] == int(table.loc[table["dev_acc"].idxmax(), "epoch"])
    assert result["params"] > 0 and result["train_frames_per_s"] > 0
    assert any(o.startswith("data.root=") for o in result["overrides"])
    for name in ("last.pt", "best.pt", "epoch_1.pt", "epoch_2.pt"):
        assert (trained / "checkpoints" / name).is_file()
    assert not list(trained.rglob(".*.tmp-*"))  # atomic writes leave no temporaries


def test_checkpoint_holds_what_prediction_needs(trained: Path) -> None:
    checkpoint = load_checkpoint(trained / "checkpoints" / "last.pt")
    assert checkpoint["classes"] == list(CLASSES)
    assert checkpoint["context"] == 3
    assert checkpoint["feature_dim"] == 28
    assert checkpoint["input_dim"] == 7 * 28
    assert checkpoint["widths"] == [64]
    assert checkpoint["normalize"] == "utterance"
    assert checkpoint["config"]["model"]["activation"] == "gelu"
    assert checkpoint["epoch"] == 2 and len(checkpoint["history"]) == 2
    assert {"optimizer", "schedule", "scaler", "rng"} <= checkpoint.keys()
    weights = checkpoint["model"]["0.weight"]
    assert isinstance(weights, torch.Tensor) and weights.shape == (64, 7 * 28)


def test_resume_continues_a_run(corpus: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"
    # a constant lr: a cut-short first run must not change the schedule's horizon
    args = [
        f"data.root={corpus}",
        *TINY,
        "device=cpu",
        "precision=fp32",
        "scheduler=constant",
        "epochs=2",
        "limit_batches=5",
    ]
    train_run(first, *args)
    reference = metrics(first)

    half = tmp_path / "half"
    train_run(half, *args[:-2], "epochs=1", "limit_batches=5")
    resumed = tmp_path / "resumed"
    train_run(resumed, f"resume={half}", "epochs=2")
    table = metrics(resumed)
    assert table["epoch"].tolist() == [1, 2]
    # same seed, same data order, restored RNG and optimizer: the same figures
    assert table["dev_acc"].tolist() == pytest.approx(reference["dev_acc"].tolist(), abs=1e-6)
    assert table["train_loss"].tolist() == pytest.approx(reference["train_loss"].tolist(), rel=1e-5)


def test_default_precision_matches_fp32_accuracy(corpus: Path, tmp_path: Path) -> None:
    """bf16 autocast (the CPU default here when supported) trains as well as fp32."""
    runs = {}
    for precision in ("fp32", "bf16"):
        run_dir = tmp_path / precision
        train_run(run_dir, f"data.root={corpus}", *TINY, "epochs=2", f"precision={precision}")
        runs[precision] = summary(run_dir)["best_dev_acc"]
        assert summary(run_dir)["precision"] == precision
    assert abs(runs["bf16"] - runs["fp32"]) < 0.03


@pytest.mark.parametrize(
    "options",
    [
        ["optimizer=adam", "scheduler=step"],
        ["optimizer=sgd", "scheduler=exponential", "scheduler.warmup_epochs=0.5"],
        ["optimizer=nesterov", "scheduler=plateau", "grad_clip=1.0"],
        ["optimizer=rmsprop", "scheduler=constant", "label_smoothing=0.1"],
        [
            "model=diamond",
            "model.depth=3",
            "model.width=256",
            "model.norm=layer",
            "model.activation=mish",
        ],
        ["model.widths=[48,32]", "model.norm_position=after", "model.init=kaiming_normal"],
        ["model.depth=0", "data.normalize=global", "data.fraction=0.5"],
    ],
)
def test_options_train(corpus: Path, tmp_path: Path, options: list[str]) -> None:
    run_dir = tmp_path / "run"
    train_run(run_dir, f"data.root={corpus}", *TINY, "epochs=2", "limit_batches=20", *options)
    result = summary(run_dir)
    assert result["best_dev_acc"] > 0.2, options
    assert (run_dir / "checkpoints" / "best.pt").is_file()


def test_fraction_trains_on_a_seeded_subset(corpus: Path, tmp_path: Path) -> None:
    logs = []
    for name in ("a", "b"):
        run_dir = tmp_path / name
        proc = train_run(run_dir, f"data.root={corpus}", *TINY, "data.fraction=0.25")
        logs.append(next(line for line in proc.stdout.splitlines() if line.startswith("train:")))
    assert logs[0] == logs[1]
    assert logs[0].startswith("train: 20 utterances")


def test_wandb_offline_writes_inside_the_run_folder(corpus: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train_run(run_dir, f"data.root={corpus}", *TINY, "limit_batches=3", "wandb.mode=offline")
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("*.wandb"))


def test_context_and_utterance_normalisation_help(corpus: Path, tmp_path: Path) -> None:
    """On the demo corpus, as on the real data: neighbours inform, and CMVN beats raw."""

    def accuracy(*options: str) -> float:
        run_dir = tmp_path / "_".join(options).replace("=", "-")
        train_run(run_dir, f"data.root={corpus}", *TINY, "epochs=3", *options)
        return summary(run_dir)["best_dev_acc"]

    assert accuracy("context=4") > accuracy("context=0") + 0.05
    assert accuracy("data.normalize=utterance") > accuracy("data.normalize=none") + 0.02


def test_the_training_step_never_waits_for_the_device(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No host synchronisation per batch: the host reads a device tensor (item, bool, cpu,
    tolist, numpy, float, int) a fixed number of times per epoch plus once per SYNC_EVERY
    batches; 200 more batches cost at most 200 / SYNC_EVERY x 2 more reads."""
    from phonemlp.loop import SYNC_EVERY

    reads = {"count": 0}
    for name in ("item", "__bool__", "cpu", "tolist", "numpy", "__float__", "__int__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            reads["count"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)

    def host_reads(batches: int) -> int:
        reads["count"] = 0
        run_dir = tmp_path / f"b{batches}"
        train_run(
            run_dir, f"data.root={corpus}", *TINY, "batch_size=32", f"limit_batches={batches}"
        )
        return reads["count"]

    extra = host_reads(250) - host_reads(50)
    assert extra <= 200 // SYNC_EVERY * 2, extra
