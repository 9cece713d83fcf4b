"""On a CUDA GPU only (skipped with the reason elsewhere): training and prediction in each
precision, and the GPU self-check end to end at a small size."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from phonemlp.bench import bench, bench_config
from phonemlp.bench.timing import script

pytestmark = pytest.mark.gpu


def command(program: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [script(program), *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"{program} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_train_and_predict_on_the_gpu(corpus: Path, tmp_path: Path, precision: str) -> None:
    run_dir = tmp_path / "run"
    command(
        "phonemlp-train", "wandb.mode=disabled", f"hydra.run.dir={run_dir}",
        f"data.root={corpus}", "device=cuda", f"precision={precision}", "model.depth=2",
        "model.width=256", "context=5", "epochs=2", "batch_size=512", cwd=tmp_path,
    )  # fmt: skip
    summary = pd.read_json(run_dir / "summary.json", typ="series")
    assert summary["device"].startswith("cuda") and summary["precision"] == precision
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert metrics["train_loss"].iloc[-1] < metrics["train_loss"].iloc[0]
    out = tmp_path / "submission.csv"
    command(
        "phonemlp-predict", f"ckpt={run_dir}", f"out={out}", "device=cuda",
        f"precision={precision}", cwd=tmp_path,
    )  # fmt: skip
    predictions = pd.read_csv(out)
    assert list(predictions.columns) == ["Id", "Label"] and len(predictions) > 0


def test_gpu_self_check_at_a_small_size(tmp_path: Path) -> None:
    """Every check of sections=[gpu] passes on a small split and model (the out-of-memory
    checks with a 0.25 GiB cap, so that the small split's absurd batch runs out)."""
    out = tmp_path / "gpu.json"
    results = bench(
        bench_config(
            [
                "sections=[gpu]",
                f"out={out}",
                "gpu.frames=300000",
                "gpu.widths=[512,512]",
                "gpu.batches=50",
                "gpu.compile_epochs=2",
                "gpu.small_frames=300000",
                "gpu.test_frames=200000",
                "gpu.oom_memory_gb=0.25",
                "gpu.target_epoch_s=0",
            ]
        )
    )
    gpu = results["gpu"]
    failed = [c for c in gpu["checks"] if c["status"] == "fail"]
    assert failed == [] and gpu["passed"] >= 12
    skipped = [c["check"] for c in gpu["checks"] if c["status"] == "skip"]
    assert skipped == ["target: real-size epoch <= 15 s"]
    assert {"bf16-device-b1024", "bf16-device-b8192", "bf16-host-b8192", "fp16-device-b8192",
            "fp32-device-b8192"} <= set(gpu["runs"])  # fmt: skip
