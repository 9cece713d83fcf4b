"""Shared fixtures: a small generated corpus in the HW1P2 layout, and CLI runners."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from phonemlp.data.demo import write_demo_corpus


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `gpu` run only where CUDA is available; elsewhere they skip with the reason."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Leave what the imports made (torch, pandas, Hydra: ~10^6 objects) out of the garbage
    collector's full passes: each run calls gc.collect() as it ends (records.release_memory),
    which would otherwise walk them all, about 0.2 s a run in this process."""
    import gc

    import torch  # noqa: F401  (imported here so that its objects are frozen too)

    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the tests' demo corpora out of the user's cache."""
    os.environ["PHONEMLP_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["WANDB_SILENT"] = "true"


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo corpus (about 80 train, 20 dev, 20 test utterances)."""
    root = tmp_path_factory.mktemp("corpus") / "hw1p2"
    write_demo_corpus(root, seed=3, train_utterances=80, dev_utterances=20, test_utterances=20)
    return root


@pytest.fixture(scope="session")
def tiny_run(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A finished two-epoch run of a tiny model on `corpus`, and its stdout (tests share it:
    read it or resume from it, never change its files)."""
    from runner import TINY, train_run

    run_dir = tmp_path_factory.mktemp("tiny_run") / "run"
    return run_dir, train_run(run_dir, f"data.root={corpus}", *TINY, "epochs=2").stdout
