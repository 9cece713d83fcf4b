"""The Python API a notebook uses: phonemlp.train / phonemlp.predict, in-process, repeatedly."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra.core.global_hydra import GlobalHydra
from runner import TINY

import phonemlp
from phonemlp.errors import PhonemlpError, RunPruned
from phonemlp.records import read_status

QUICK = [*TINY, "wandb.mode=disabled", "limit_batches=30"]


def test_calls_repeat_without_argv_or_hydra_state(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["jupyter-kernel", "--f=/tmp/kernel.json", "-m"])
    first = phonemlp.train([f"data.root={corpus}", *QUICK], run_dir=tmp_path / "a")
    second = phonemlp.train([f"data.root={corpus}", *QUICK], run_dir=tmp_path / "b")
    assert not GlobalHydra.instance().is_initialized()  # nothing left behind
    assert first["best_dev_acc"] == second["best_dev_acc"] > 0.2  # same seed, same result
    assert json.loads((tmp_path / "a" / "summary.json").read_text()) == first
    assert (tmp_path / "a" / "train.log").read_text().count("best dev accuracy") == 1
    assert (tmp_path / "a" / ".hydra" / "overrides.yaml").is_file()  # phonemlp-ablate reads it
    other = phonemlp.train([f"data.root={corpus}", *QUICK, "context=0"], run_dir=tmp_path / "c")
    assert other["best_dev_acc"] != first["best_dev_acc"]  # the overrides of this call only

    out = tmp_path / "submission.csv"
    for _ in range(2):  # a second call works too (no module shadows the function)
        written = phonemlp.predict(first["best_checkpoint"], out=out)
        assert written["out"] == str(out) and written["frames"] == len(pd.read_csv(out))
    dev = phonemlp.predict(tmp_path / "a", overrides=["split=dev"])
    assert dev["accuracy"] == pytest.approx(first["best_dev_acc"], abs=1e-6)


def test_on_epoch_sees_every_epoch_and_can_prune(corpus: Path, tmp_path: Path) -> None:
    seen = []

    def report(epoch: int, row: dict) -> None:
        seen.append((epoch, row["dev_acc"]))
        if epoch == 2:
            raise RunPruned

    run_dir = tmp_path / "pruned"
    with pytest.raises(RunPruned):
        phonemlp.train([f"data.root={corpus}", *QUICK, "epochs=4"], run_dir, on_epoch=report)
    assert [epoch for epoch, _ in seen] == [1, 2]
    assert read_status(run_dir)["status"] == "pruned"
    assert (run_dir / "checkpoints" / "last.pt").is_file()  # kept for a resume
    assert len(pd.read_csv(run_dir / "metrics.csv")) == 2

    resumed = phonemlp.train(
        [f"data.root={corpus}", *QUICK, "epochs=4", f"resume={run_dir}"], run_dir
    )  # the same folder continues in place
    assert resumed["epochs"] == 4 and read_status(run_dir)["status"] == "finished"


def test_a_bad_setting_raises_one_line_and_is_recorded(tmp_path: Path) -> None:
    with pytest.raises(PhonemlpError, match="context=99 must be an integer from 0 to 50"):
        phonemlp.train(["context=99"], run_dir=tmp_path / "bad")
    status = read_status(tmp_path / "bad")
    assert status["status"] == "failed" and "context=99" in status["error"]


def test_a_signal_the_run_could_not_act_on_stays_on_record(corpus: Path, tmp_path: Path) -> None:
    """SIGTERM during the last epoch's dev pass: the run finishes, and the signal is kept for a
    caller that runs several trainings (a search worker stops after this one)."""
    import os
    import signal

    from phonemlp.stopping import StopOnSignal

    def late_signal(epoch: int, row: dict) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # handled by the run's own StopOnSignal

    StopOnSignal.received = 0
    summary = phonemlp.train(
        [f"data.root={corpus}", *QUICK], run_dir=tmp_path / "late", on_epoch=late_signal
    )
    assert summary["epochs"] == 1 and read_status(tmp_path / "late")["status"] == "finished"
    assert StopOnSignal.received == signal.SIGTERM
    StopOnSignal.received = 0


def test_each_call_frees_its_memory_before_returning(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notebook trains again and again in one process: whatever a call left (its split,
    model, cached GPU blocks) is released as it returns, whether the run ended well or not."""
    import weakref

    from phonemlp import records
    from phonemlp.data import splits

    kept: list[weakref.ref] = []
    original = splits.load_training_data

    def watched(*args, **kwargs):  # a weak reference to each split the run loads
        data = original(*args, **kwargs)
        kept.append(weakref.ref(data.train))
        return data

    monkeypatch.setattr("phonemlp.training.load_training_data", watched)
    released = []
    monkeypatch.setattr(records, "release_memory", lambda: released.append(True))
    phonemlp.train([f"data.root={corpus}", *QUICK], run_dir=tmp_path / "a")
    with pytest.raises(PhonemlpError):
        phonemlp.train([f"data.root={tmp_path / 'nowhere'}", *QUICK], run_dir=tmp_path / "b")
    assert released == [True, True]
    monkeypatch.undo()
    records.release_memory()
    assert kept and kept[0]() is None  # nothing still holds the first run's training split
