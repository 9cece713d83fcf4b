"""phonemlp-bench: a tiny configuration runs every section and writes every figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from runner import run_cli

from phonemlp.bench import bench, bench_config, run_measured, write_large_corpus
from phonemlp.bench import starter as starter_module
from phonemlp.bench.gpu import CAPPED, count_recompiles, one_line_error
from phonemlp.bench.report import describe
from phonemlp.bench.sections import Bench
from phonemlp.bench.timing import script
from phonemlp.data.cache import PAD
from phonemlp.data.corpus import read_split
from phonemlp.data.normalize import moments
from phonemlp.data.synthetic import class_means, synthetic_split, write_split_files
from phonemlp.data.windows import WindowedSplit
from phonemlp.errors import PhonemlpError, user_error_message

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
    "memory.args=['context=2','epochs=1','limit_batches=2','model.depth=1','model.width=16']",
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
    with pytest.raises(Exception) as refused:
        bench_config(["pipeline.contxts=[1]"])
    assert "unknown key 'pipeline.contxts'" in user_error_message(refused.value)
    for bad, key in (
        ("sections=[load,speed]", "sections"),
        ("repeats=0", "repeats"),
        ("repeats=abc", "repeats"),
        ("data.dtype=float8", "data.dtype"),
        ("train.models=[8]", "train.models"),
        ("speed", "unexpected argument 'speed'"),
    ):
        with pytest.raises(PhonemlpError, match=key):
            bench_config([bad])


def test_bench_options_take_hydra_values() -> None:
    """A dict of named entries is replaced, not merged; lists, quoted overrides and nested
    keys as on every other command line."""
    cfg = bench_config(
        [
            "train.models={tiny:[8]}",
            "starter.models={linear:[]}",
            "accuracy.settings={fp32:['precision=fp32','data.dtype=float16']}",
            "memory.args=['context=2','epochs=1']",
            "sections=[gpu]",
            "gpu.widths=[64]",
            "pipeline.mask.time_mask_prob=0.5",
        ]
    )
    assert cfg.train.models == {"tiny": [8]} and list(cfg.train) == list(bench_config([]).train)
    assert cfg.starter.models == {"linear": []} and cfg.sections == ["gpu"]
    assert cfg.accuracy.settings == {"fp32": ["precision=fp32", "data.dtype=float16"]}
    assert cfg.memory.args == ["context=2", "epochs=1"] and cfg.gpu.widths == [64]
    assert cfg.pipeline.mask.time_mask_prob == 0.5 and cfg.pipeline.mask.time_mask_max == 8


@pytest.mark.parametrize(
    ("arg", "expected"),
    [("pipeline.contxts=[1]", "unknown key 'pipeline.contxts'"), ("repeats=0", "repeats=0")],
)
def test_bench_command_refuses_in_one_line(arg: str, expected: str, tmp_path: Path) -> None:
    proc = run_cli("phonemlp-bench", arg, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("phonemlp-bench: error: ") and expected in line
    assert list(tmp_path.iterdir()) == []


def test_bench_help_prints_the_config(tmp_path: Path) -> None:
    proc = run_cli("phonemlp-bench", "--help", cwd=tmp_path)
    assert proc.stdout.startswith("usage: phonemlp-bench [key=value ...]\n")
    assert "- starter:" in proc.stdout and "  widths: [2304, 2304, 2304, 2304]" in proc.stdout


def test_starter_section_is_skipped_without_the_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installed wheel has no scripts/starter_baseline.py: one line, no error."""
    assert starter_module.starter_script() is not None  # the source checkout has it
    monkeypatch.setattr("phonemlp.bench.sections.starter_script", lambda: None)
    runner = Bench(bench_config([]), tmp_path, tmp_path / "cache", tmp_path)
    result = runner.section_starter()
    assert result == {"skipped": starter_module.NOT_FOUND}
    (row,) = describe("starter", result)
    assert row[1].startswith("skipped: scripts/starter_baseline.py")


def test_generated_corpus_has_exactly_the_frames_asked(tmp_path: Path) -> None:
    root = write_large_corpus(tmp_path / "big", frames=50_000, utterances=30, progress=False)
    train = read_split(root, "train-clean-100", progress=False)
    assert train.frames == 50_000 and len(train.names) == 30
    assert np.isfinite(train.features).all() and train.labels.max() < 40
    assert (root / "dev-clean").is_dir() and (root / "test_labels.csv").is_file()
    assert write_large_corpus(root, frames=50_000, utterances=30) == root  # reused
    with pytest.raises(PhonemlpError, match="generate.root"):
        write_large_corpus(root, frames=60_000)


def test_synthetic_split_is_a_prepared_split_of_exactly_the_frames_asked() -> None:
    split = synthetic_split(50_000, 28, seed=3, mean_length=1000)
    assert split.frames == 50_000 and len(split.names) == 50 == len(split.lengths)
    assert split.names == sorted(split.names) and len(set(split.names)) == 50
    assert split.features.dtype == np.float32 and split.pad == PAD
    assert split.features.shape == (50_000 + PAD * 51, 28)
    assert split.lengths.min() > 500 and split.lengths.max() < 2500  # around mean_length
    inside = np.zeros(len(split.features), dtype=bool)
    for start, length in zip(split.rows, split.lengths, strict=True):
        inside[start : start + length] = True
    assert inside.sum() == 50_000 and not split.features[~inside].any()  # zero padding
    assert np.all(split.features[inside].any(axis=1))
    assert split.labels.dtype == np.uint8 and len(split.labels) == 50_000
    assert set(np.unique(split.labels)) == set(range(40))
    for u in (0, 49):  # per-utterance sums and squares, as a prepared split keeps them
        rows = split.features[split.rows[u] : split.rows[u] + split.lengths[u]]
        np.testing.assert_allclose(split.moments[u], moments(rows), rtol=1e-4)
    # a context-30 view of it needs no copy on the CPU
    windows = WindowedSplit(split, 30, torch.device("cpu"))
    assert windows.padded.data_ptr() == split.features.ctypes.data


def test_synthetic_split_is_reproducible_and_splits_differ() -> None:
    split = synthetic_split(30_000, 28, seed=5)
    again = synthetic_split(30_000, 28, seed=5, threads=1)
    np.testing.assert_array_equal(split.features, again.features)
    np.testing.assert_array_equal(split.labels, again.labels)
    other_seed = synthetic_split(30_000, 28, seed=6)
    smaller = synthetic_split(20_000, 28, seed=5)  # a dev split beside this train split
    for different in (other_seed, smaller):
        first = different.features[PAD : PAD + 100]
        assert not np.array_equal(first, split.features[PAD : PAD + 100])
    unlabelled = synthetic_split(30_000, 28, seed=5, labelled=False)
    assert unlabelled.labels is None
    np.testing.assert_array_equal(unlabelled.features, split.features)
    assert synthetic_split(10, 4).features.shape == (10 + 2 * PAD, 4)
    with pytest.raises(PhonemlpError, match="frames"):
        synthetic_split(0)


def test_synthetic_labels_are_learnable_from_the_features() -> None:
    """The class moves a few bands' mean: one frame's nearest class mean is right far more
    often than always guessing the commonest class, and labels come in runs like phones."""
    split = synthetic_split(50_000, 28, seed=1)
    frames = np.concatenate(
        [split.features[s : s + n] for s, n in zip(split.rows, split.lengths, strict=True)]
    )
    means = class_means(28)
    nearest = ((frames[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
    commonest = np.bincount(split.labels).max() / split.frames
    assert (nearest == split.labels).mean() > 3 * commonest
    runs = 1 + np.count_nonzero(np.diff(split.labels))
    assert 5 < split.frames / runs < 12
    assert abs(float(frames.mean())) < 0.1 and 0.9 < float(frames.std()) < 1.3


def test_synthetic_split_written_as_files_reads_back(tmp_path: Path) -> None:
    split = synthetic_split(5_000, 28, seed=2, mean_length=1000)
    write_split_files(split, tmp_path / "train-clean-100")
    back = read_split(tmp_path, "train-clean-100", progress=False)
    assert back.names == split.names
    np.testing.assert_array_equal(back.labels, split.labels)
    np.testing.assert_array_equal(back.features[:10], split.features[PAD : PAD + 10])


# --- sections=[gpu] ------------------------------------------------------------------------

TOY_GPU = [  # the GPU self-check's code paths on a CPU, at toy size
    "sections=[gpu]",
    "gpu.device=cpu",
    "gpu.frames=20000",
    "gpu.widths=[32]",
    "gpu.context=3",
    "gpu.batch_sizes=[256]",
    "gpu.batches=4",
    "gpu.placements=[device,host]",
    "gpu.precisions=[bf16,fp16]",
    "gpu.small_frames=20000",
    "gpu.resume_batches=60",
    "gpu.resume_every=20",
    "gpu.test_frames=5000",
]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the check runs")
def test_gpu_section_without_a_gpu_says_so_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [script("phonemlp-bench"), "sections=[gpu]"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.count("\n") == 1 and "no CUDA GPU" in proc.stdout
    assert list(tmp_path.iterdir()) == []  # nothing measured, nothing written


def test_gpu_section_runs_every_check_on_a_cpu_at_toy_size(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    results = bench(bench_config([*TOY_GPU, "gpu.compile=false", f"out={out}"]))
    assert json.loads(out.read_text())["gpu"] == json.loads(json.dumps(results["gpu"]))
    gpu = results["gpu"]
    status = {c["check"]: c["status"] for c in gpu["checks"]}
    assert status == {
        "synthetic train split, 20,000 frames": "pass",
        "train bf16-device-b256": "pass",
        "train bf16-host-b256": "pass",
        "train fp16-device-b256": "skip",  # needs CUDA
        "resume after SIGKILL": "pass",
        "predict test split, 5,000 frames": "pass",
        "out of memory: phonemlp-train": "skip",
        "out of memory: phonemlp-predict": "skip",
        "target: real-size epoch <= 15 s": "skip",
    }
    assert gpu["failed"] == 0 and gpu["passed"] == 5 and gpu["skipped"] == 4
    for name in ("bf16-device-b256", "bf16-host-b256"):
        run = gpu["runs"][name]
        assert run["params"] == (7 * 28 + 1) * 32 + 2 * 32 + (32 + 1) * 40  # ctx 3, batch norm
        assert run["frames_per_s"] > 0 and run["mfu"] > 0
        assert run["epoch_s"] == pytest.approx(20_000 / run["frames_per_s"])
        assert run["train_loss"][1] < run["train_loss"][0]
    assert gpu["peak_flops"]["bf16"] > 0 and "fp16" not in gpu["peak_flops"]
    predicted = next(c for c in gpu["checks"] if c["check"].startswith("predict"))
    assert predicted["accuracy"] > 0.1  # the resumed run learned (chance is about 0.07)


@pytest.mark.slow
def test_gpu_section_compiled_run_counts_no_recompile_after_epoch_one(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    args = [*TOY_GPU, "gpu.placements=[device]", "gpu.precisions=[bf16]", f"out={out}"]
    proc = run_cli("phonemlp-bench", *args, cwd=tmp_path)
    checks = {c["check"]: c for c in json.loads(out.read_text())["gpu"]["checks"]}
    assert checks["recompiles bf16-device-b256-compile"]["status"] == "pass"
    assert "0 after epoch 1 of 3" in proc.stdout


def test_gpu_check_one_line_error_rule(tmp_path: Path) -> None:
    """A real one-line user error passes the rule; a traceback, a success, or more output after
    the error line do not."""
    proc = subprocess.run(
        [script("phonemlp-train"), "wandb.mode=disabled", "data.synthetic_frames=1000",
         "batch_size=0", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    line = one_line_error(proc.stderr, proc.returncode, "phonemlp-train")
    assert line is not None and "batch_size" in line
    # the same command through the launcher that caps GPU memory (no cap without a GPU)
    capped = subprocess.run(
        [sys.executable, "-c", CAPPED, "0.5", *proc.args],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert one_line_error(capped.stderr, capped.returncode, "phonemlp-train") == line
    traceback = (
        "Traceback (most recent call last):\n  ...\ntorch.OutOfMemoryError: CUDA out of memory"
    )
    assert one_line_error(traceback, 1, "phonemlp-train") is None
    assert one_line_error(proc.stderr, 0, "phonemlp-train") is None
    assert one_line_error(proc.stderr + "more\n", 2, "phonemlp-train") is None
    assert one_line_error(proc.stderr, 2, "phonemlp-predict") is None


def test_gpu_check_counts_recompiles_after_the_first_epoch() -> None:
    recompile = "V1201 guards.py:5396] [0/1] [__recompiles] Recompiling function forward in m.py:9"
    output = "\n".join([
        "epoch 1/3: 1/5 batch",
        recompile,  # train -> eval in epoch 1: expected
        "epoch 1/3  lr 8.36e-04  train loss 3.7149 acc 0.0336  dev loss 3.6681 acc 0.0394",
        "epoch 2/3  lr 3.52e-04  train loss 3.6682 acc 0.0328  dev loss 3.6379 acc 0.0487",
    ])  # fmt: skip
    assert count_recompiles(output) == (1, 0, False)
    later = output + "\n" + recompile + "\ntorch._dynamo hit config.recompile_limit (8)"
    assert count_recompiles(later) == (2, 1, True)


def test_gpu_options_are_checked() -> None:
    for bad, key in (
        ("gpu.device=tpu", "gpu.device"),
        ("gpu.precisions=[fp8]", "gpu.precisions"),
        ("gpu.placements=[]", "gpu.placements"),
        ("gpu.batch_sizes=[0]", "gpu.batch_sizes"),
        ("gpu.frames=0", "gpu.frames"),
        ("gpu.resume_every=400", "gpu.resume_every"),
    ):
        with pytest.raises(PhonemlpError, match=key):
            bench_config([bad])
