"""phonemlp-bench: a tiny configuration runs every section and writes every figure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from runner import run_cli

from phonemlp.bench import bench, bench_config, run_measured, write_large_corpus
from phonemlp.data.corpus import read_split
from phonemlp.errors import PhonemlpError

TINY_BENCH = [
    "repeats=1",
    "batch_size=256",
    "eval_batch_size=512",
    "pipeline.batches=3",
    "train.models={small:[32],large:[64,64]}",
    "train.warmup=1",
    "train.batches=2",
    "predict.batches=2",
    "memory.dtypes=[float16]",
    "memory.args=[context=2,epochs=1,limit_batches=2,model.depth=1,model.width=16]",
    "starter.context=2",
    "starter.models={linear:[]}",
    "starter.num_workers=0",
    "starter.warmup=1",
    "starter.batches=2",
]


def check_figures(results: dict, sections: list[str]) -> None:
    assert results["machine"]["cpus"] >= 1 and results["corpus"]["train_frames"] > 0
    load = results["load"]
    assert {"npy_s", "cache_build_s", "cache_s", "speedup", "place_s"} <= load.keys()
    for context in ("0", "15", "30"):
        assert results["pipeline"][context]["frames_per_s"] > 0
        assert results["pipeline"][context]["masked_frames_per_s"] > 0
    for section in ("train", "predict"):
        for name in ("small", "large"):
            figures = results[section][name]
            assert figures["frames_per_s"] > 0 and figures["mfu"] > 0 and figures["params"] > 0
    assert any(results["matmul_flops"].values())
    assert results["starter"]["in_process"]["linear"]["speedup"] > 0
    assert "cache load speed-up over .npy" in results["targets"]
    if "memory" in sections:
        memory = results["memory"]
        assert memory["raw_feature_bytes"] == results["corpus"]["raw_train_feature_bytes"]
        assert memory["float16"]["train_peak_rss"] > memory["runtime_rss"] > 0
        assert memory["float16"]["predict_peak_rss"] > 0
        whole = results["starter"]["whole_process"]["linear"]
        assert whole["starter_s"] > 0 and whole["phonemlp_s"] > 0 and whole["speedup"] > 0
        assert 0 < whole["phonemlp_dev_acc"] <= 1 and 0 < whole["starter_dev_acc"] <= 1


def test_bench_in_process_figures(corpus: Path, tmp_path: Path) -> None:
    """Every in-process section (the whole-process runs are in the slow test below)."""
    sections = ["load", "pipeline", "train", "predict", "starter"]
    cfg = bench_config(
        [
            f"data.root={corpus}",
            f"out={tmp_path / 'bench.json'}",
            f"sections=[{','.join(sections)}]",
            "starter.whole_process=false",
            *TINY_BENCH,
        ]
    )
    bench(cfg)
    check_figures(json.loads((tmp_path / "bench.json").read_text()), sections)


@pytest.mark.slow
def test_bench_command_writes_every_figure(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = run_cli("phonemlp-bench", f"data.root={corpus}", f"out={out}", *TINY_BENCH, cwd=tmp_path)
    check_figures(json.loads(out.read_text()), ["memory"])
    assert "pipeline ctx30" in proc.stdout and "targets" in proc.stdout


def test_peak_memory_of_a_child_process(tmp_path: Path) -> None:
    code = "b = bytearray(200 << 20); b[::4096] = b'x' * len(b[::4096])"
    seconds, peak, status = run_measured([sys.executable, "-c", code], tmp_path / "log", tmp_path)
    assert status == 0 and seconds > 0 and peak > 200 << 20


def test_bench_options_are_checked() -> None:
    with pytest.raises(PhonemlpError, match="no such option"):
        bench_config(["pipeline.contxts=[1]"])
    with pytest.raises(PhonemlpError, match="sections"):
        bench_config(["sections=[load,speed]"])
    assert bench_config(["train.models={tiny:[8]}"]).train.models == {"tiny": [8]}


def test_generated_corpus_has_exactly_the_frames_asked(tmp_path: Path) -> None:
    root = write_large_corpus(tmp_path / "big", frames=50_000, utterances=30, progress=False)
    train = read_split(root, "train-clean-100", progress=False)
    assert train.frames == 50_000 and len(train.names) == 30
    assert np.isfinite(train.features).all() and train.labels.max() < 40
    assert (root / "dev-clean").is_dir() and (root / "test_labels.csv").is_file()
    assert write_large_corpus(root, frames=50_000, utterances=30) == root  # reused
    with pytest.raises(PhonemlpError, match="generate.root"):
        write_large_corpus(root, frames=60_000)
