"""Nothing lost: SIGKILL/SIGINT mid-epoch, exact resume, divergence, full disk, secrets."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from runner import BIN, metrics, summary, train_run

from phonemlp import checkpoint as checkpoints
from phonemlp.checkpoint import load_checkpoint, save_checkpoint
from phonemlp.errors import PhonemlpError
from phonemlp.records import read_status

# Slow enough (hundreds of batches an epoch) to be caught mid-epoch; fp32 on the CPU for exact
# replays (a GPU's kernels need not be bit-reproducible).
STEADY = [
    "device=cpu",
    "model.depth=2",
    "model.width=256",
    "context=3",
    "batch_size=32",
    "epochs=2",
    "precision=fp32",
    "threads=1",
    "checkpoint_every_batches=40",
    "limit_batches=300",  # a save at batch 40 leaves 560 batches to be caught in
]


def start_training(run_dir: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [str(BIN / "phonemlp-train"), "wandb.mode=disabled", f"hydra.run.dir={run_dir}", *args],
        cwd=run_dir.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_sigkill_mid_epoch_then_resume_replays_exactly(corpus: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    train_run(reference, f"data.root={corpus}", *STEADY)

    killed = tmp_path / "killed"
    proc = start_training(killed, f"data.root={corpus}", *STEADY, "wandb.mode=offline")
    wait_for(killed / "checkpoints" / "last.pt", proc)
    helpers = _helpers(proc.pid)  # wandb's process and the one that draws the reports
    assert sorted(helpers) == ["phonemlp.plots", "phonemlp.tracking"]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = load_checkpoint(killed)  # complete despite the kill: atomic writes
    assert state["partial_epoch"] is not None and state["epoch"] == 1, "not killed mid-epoch"
    # the helpers saw their pipes close and ended; wandb's closed the wandb run (as failed)
    deadline = time.monotonic() + 180
    for module, pid in helpers.items():
        while _state(pid) not in ("Z", "X"):
            assert time.monotonic() < deadline, f"{module} outlived the run"
            time.sleep(0.05)
    (log,) = (killed / "wandb").glob("offline-run-*/logs/debug.log")
    assert "finishing run" in log.read_text()

    resumed = tmp_path / "resumed"
    train_run(resumed, f"resume={killed}")
    columns = ["epoch", "lr", "train_loss", "train_acc", "dev_loss", "dev_acc"]
    assert metrics(resumed)[columns].equals(metrics(reference)[columns])
    ours = load_checkpoint(resumed)["model"]
    theirs = load_checkpoint(reference)["model"]
    assert all(torch.equal(ours[key], theirs[key]) for key in theirs)


def _helpers(pid: int) -> dict[str, int]:
    """The helper processes of process `pid`, by module (`python -m MODULE`)."""
    found = {}
    for child in map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split()):
        command = Path(f"/proc/{child}/cmdline").read_text().split("\0")
        found[command[command.index("-m") + 1]] = child
    return found


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "X"


def test_sigint_and_sigterm_save_and_say_how_to_resume(corpus: Path, tmp_path: Path) -> None:
    """The signal's own save: last.pt moves past the periodic save to the batch the run stopped
    after, which the run names, and status.json says interrupted."""
    for name, number in (("int", signal.SIGINT), ("term", signal.SIGTERM)):
        run_dir = tmp_path / name
        proc = start_training(run_dir, f"data.root={corpus}", *STEADY)
        wait_for(run_dir / "checkpoints" / "last.pt", proc)
        before = load_checkpoint(run_dir)["partial_epoch"]["batch"]
        proc.send_signal(number)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 128 + number, err
        assert f"phonemlp-train resume={run_dir}" in out
        assert "Traceback" not in err
        state = load_checkpoint(run_dir)
        stopped = re.search(r"stopped by (\w+) in epoch (\d+) after batch (\d+)", out)
        assert stopped is not None, out
        assert stopped.group(1) == signal.Signals(number).name
        assert state["epoch"] == int(stopped.group(2))
        assert state["partial_epoch"]["batch"] == int(stopped.group(3))
        assert state["epoch"] > 1 or state["partial_epoch"]["batch"] > before
        status = read_status(run_dir)
        assert status["status"] == "interrupted"
        assert status["error"] == f"stopped by {signal.Signals(number).name}"


def test_resume_auto_continues_the_unfinished_run(corpus: Path, tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    first = outputs / "day" / "first"
    args = [f"data.root={corpus}", *STEADY]
    proc = start_training(first, *args)
    wait_for(first / "checkpoints" / "last.pt", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    second = outputs / "day" / "second"
    out = train_run(second, *args, "resume=auto").stdout
    assert f"resume=auto: continuing {first}" in out
    assert summary(second)["epochs"] == 2
    third = outputs / "day" / "third"  # the first run now counts as continued elsewhere
    out = train_run(third, *args, "resume=auto", "epochs=1").stdout
    assert "starting afresh" in out


def finite_or_absent(run_dir: Path) -> None:
    """Only a good state was ever saved: every checkpoint's weights (and EMA) are finite."""
    for name in ("last.pt", "best.pt"):
        path = run_dir / "checkpoints" / name
        if path.exists():
            state = load_checkpoint(path)
            for part in ("model", "train_model"):
                weights = state.get(part) or {}
                assert all(w.isfinite().all() for w in weights.values() if w.is_floating_point())


@pytest.mark.parametrize(
    "options",
    [
        ["model.norm=none", "optimizer=sgd", "optimizer.lr=1e12", "epochs=2"],
        ["optimizer.lr=1e12", "time_budget_s=0.1", "ema=0.9"],  # the budget's end save, EMA
        ["optimizer.lr=1e12", "checkpoint_every_batches=3", "epochs=1"],  # mid-epoch saves
    ],
)
def test_divergence_stops_with_a_clear_message(
    corpus: Path, tmp_path: Path, options: list[str]
) -> None:
    run_dir = tmp_path / "run"
    proc = train_run(
        run_dir, f"data.root={corpus}", "model.depth=1", "model.width=64", "context=3",
        "precision=fp32", *options, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout
    assert "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("phonemlp-train: error: training diverged")
    assert "optimizer.lr" in line
    finite_or_absent(run_dir)
    assert not (run_dir / "summary.json").exists()
    assert read_status(run_dir)["status"] == "failed"


def test_full_disk_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "last.pt"
    save_checkpoint(target, {"epoch": 1})

    def no_space(obj, path) -> None:
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints.torch, "save", no_space)
    with pytest.raises(OSError):
        save_checkpoint(target, {"epoch": 2})
    assert load_checkpoint(target)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_memory_estimate_refuses_what_cannot_fit(corpus: Path, monkeypatch) -> None:
    from phonemlp import resources

    monkeypatch.setattr(resources, "available_memory", lambda: 1000)
    with pytest.raises(PhonemlpError, match=r"needs about .* GiB of memory.*data.fraction"):
        resources.check_memory(corpus, ["train-clean-100", "dev-clean"])


def test_secrets_never_reach_the_run_folder(corpus: Path, tmp_path: Path) -> None:
    planted = "s3cr3t-planted-key-0123456789abcdef"
    env = {
        **os.environ,
        "WANDB_API_KEY": planted,
        "KAGGLE_KEY": planted,
        "KAGGLE_USERNAME": "someone",
    }
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [
            str(BIN / "phonemlp-train"),
            f"data.root={corpus}",
            "model.depth=1",
            "model.width=32",
            "context=2",
            "epochs=1",
            "limit_batches=5",
            "wandb.mode=offline",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert planted not in proc.stdout + proc.stderr
    leaks = [p for p in run_dir.rglob("*") if p.is_file() and planted.encode() in p.read_bytes()]
    assert leaks == []
    assert list((run_dir / "wandb").glob("offline-run-*"))  # wandb did write its files


def _mutations() -> dict[str, object]:
    """Name -> f(root, first_utterance_name) that mutates a corpus copy in place."""
    import numpy as np

    def feats(root: Path, name: str) -> Path:
        return root / "train-clean-100" / "mfcc" / f"{name}.npy"

    def trans(root: Path, name: str) -> Path:
        return root / "train-clean-100" / "transcript" / f"{name}.npy"

    def set_utterance(root: Path, name: str, frames: int) -> None:
        np.save(feats(root, name), np.zeros((frames, 28), np.float32))
        np.save(trans(root, name), np.array(["[SOS]"] + ["AH"] * frames + ["[EOS]"]))

    def retype(dtype: str):
        def mutate(root: Path, name: str) -> None:
            np.save(feats(root, name), np.load(feats(root, name)).astype(dtype))

        return mutate

    def symlink_split(root: Path, name: str) -> None:
        real = root.parent / "elsewhere"
        (root / "train-clean-100").rename(real)
        (root / "train-clean-100").symlink_to(real, target_is_directory=True)

    def stray_files(root: Path, name: str) -> None:
        for folder in ("mfcc", "transcript"):
            (root / "train-clean-100" / folder / ".DS_Store").write_bytes(b"\0\1junk")
            (root / "train-clean-100" / folder / "README").write_text("notes")

    return {
        "empty utterance": lambda root, name: set_utterance(root, name, 0),
        "one-frame utterance": lambda root, name: set_utterance(root, name, 1),
        "float64 features": retype("float64"),
        "float16 features": retype("float16"),
        "symlinked split": symlink_split,
        "stray files": stray_files,
    }


@pytest.mark.parametrize("mutation", list(_mutations()))
def test_corpus_mutations_are_read_correctly(corpus: Path, tmp_path: Path, mutation: str) -> None:
    """Tolerable oddities are read right: every other utterance keeps its exact labels."""
    import shutil

    import numpy as np

    from phonemlp.data.corpus import read_split

    root = tmp_path / "corpus"
    shutil.copytree(corpus, root)
    before = read_split(root, "train-clean-100", progress=False)
    name = before.names[0]
    _mutations()[mutation](root, name)
    after = read_split(root, "train-clean-100", progress=False)
    assert after.names == before.names
    for u in range(1, len(before.names)):
        old = slice(before.offsets[u], before.offsets[u + 1])
        new = slice(after.offsets[u], after.offsets[u + 1])
        assert np.array_equal(after.labels[new], before.labels[old])
        assert np.allclose(after.features[new], before.features[old], atol=0.05)
    first = slice(after.offsets[0], after.offsets[1])
    transcript = np.load(root / "train-clean-100" / "transcript" / f"{name}.npy")
    assert len(after.labels[first]) == len(transcript) - 2
