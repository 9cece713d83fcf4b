"""Kaggle compatibility with the official HW1P2 starter notebook: its utterance order
(`sorted(os.listdir(folder))`, `.npy` included) and its `id,label` header."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from runner import run_cli

import phonemlp.data.cache as cache
from phonemlp.data.corpus import (
    SplitFiles,
    list_utterances,
    read_labels,
    read_split,
    split_files,
)
from phonemlp.data.demo import write_demo_corpus
from phonemlp.data.splits import Preparation, load_split
from phonemlp.phonemes import CLASSES, INDEX
from phonemlp.prediction import read_label_csv, write_submission
from phonemlp.submission import count_frames, submission_header, validate_submission

TRAIN, TEST = "train-clean-100", "test-clean"
# Sorted by file name (the starter's order) x-b.npy < x.npy ('-' < '.'), although the bare
# names sort the other way (x < x-b): every row after them would shift under that order.
NAMES = ["x", "x-b", "x0", "y"]
STARTER_ORDER = ["x-b", "x", "x0", "y"]


def rename_split(root: Path, split: str, names: list[str]) -> dict[str, str]:
    """Give a split's utterances (in their current file order) the names `names`, in both
    mfcc/ and transcript/; returns {new name: old name}."""
    old = sorted(p.stem for p in (root / split / "mfcc").glob("*.npy"))[: len(names)]
    for kind in ("mfcc", "transcript"):
        folder = root / split / kind
        if not folder.is_dir():
            continue
        for path in folder.glob("*.npy"):
            if path.stem not in old:
                path.unlink()
        for before, after in zip(old, names, strict=True):
            (folder / f"{before}.npy").rename(folder / f"{after}.npy.tmp")
        for after in names:
            (folder / f"{after}.npy.tmp").rename(folder / f"{after}.npy")
    return dict(zip(names, old, strict=True))


def starter_listing(folder: Path) -> list[str]:
    """The order the starter notebook reads a folder in."""
    return [name[: -len(".npy")] for name in sorted(os.listdir(folder))]


@pytest.fixture(scope="module")
def renamed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small corpus whose train and test utterances are named NAMES."""
    root = tmp_path_factory.mktemp("order") / "corpus"
    write_demo_corpus(root, seed=2, train_utterances=6, dev_utterances=2, test_utterances=5)
    rename_split(root, TRAIN, NAMES)
    rename_split(root, TEST, NAMES)
    (root / "test_labels.csv").unlink()  # its rows follow the old names
    return root


# --- the utterance order -----------------------------------------------------------------


def test_utterances_are_listed_in_the_starters_order(renamed: Path) -> None:
    assert starter_listing(renamed / TRAIN / "mfcc") == STARTER_ORDER  # the premise
    assert split_files(renamed, TRAIN).names == STARTER_ORDER
    assert split_files(renamed, TEST, labelled=False).names == STARTER_ORDER
    assert list_utterances(renamed, TRAIN) == STARTER_ORDER


def test_features_and_transcripts_still_pair_up_by_name(renamed: Path) -> None:
    data = read_split(renamed, TRAIN, progress=False)
    labels, offsets = read_labels(renamed, TRAIN, progress=False)
    assert (offsets == data.offsets).all() and (labels == data.labels).all()
    for u, name in enumerate(data.names):
        features = np.load(renamed / TRAIN / "mfcc" / f"{name}.npy").astype(np.float32)
        symbols = np.load(renamed / TRAIN / "transcript" / f"{name}.npy")[1:-1]
        frames = slice(data.offsets[u], data.offsets[u + 1])
        assert np.array_equal(data.features[frames], features), name
        assert [CLASSES[i] for i in data.labels[frames]] == list(symbols), name


def test_a_cache_prepared_in_the_old_order_is_not_reused(renamed: Path, tmp_path: Path) -> None:
    """Names sorted without `.npy` (the order before) give another cache key, so a split
    prepared in that order is rebuilt rather than read back with shifted rows."""
    root = Path(shutil.copytree(renamed, tmp_path / "corpus"))
    folder = root / TRAIN
    bare = sorted(NAMES)
    assert bare != STARTER_ORDER
    old = SplitFiles(
        root,
        TRAIN,
        bare,
        [folder / "mfcc" / f"{name}.npy" for name in bare],
        [folder / "transcript" / f"{name}.npy" for name in bare],
    )
    stale = cache.prepare_cached(old, "none", "float32", tmp_path / "cache", progress=False)
    assert stale.names == bare
    how = Preparation("none", cache_dir=tmp_path / "cache", progress=False)
    data, _ = load_split(root, TRAIN, how)
    assert data.names == STARTER_ORDER
    truth = read_split(root, TRAIN, progress=False)
    assert (data.labels == truth.labels).all()
    for u in range(len(data.names)):
        rows = slice(int(data.rows[u]), int(data.rows[u] + data.lengths[u]))
        frames = slice(int(truth.offsets[u]), int(truth.offsets[u + 1]))
        assert np.array_equal(np.asarray(data.features[rows]), truth.features[frames])


def test_predicted_rows_follow_the_starters_order(
    tiny_run: tuple[Path, str], corpus: Path, tmp_path: Path
) -> None:
    """The same three test utterances predicted under names whose order is unambiguous
    (a, b, c) and under x-b, x, y (starter order): the rows must be the same."""
    run_dir, _ = tiny_run
    sources, lengths = [], []
    for path in sorted((corpus / TEST / "mfcc").glob("*.npy")):
        length = len(np.load(path, mmap_mode="r"))
        if length not in lengths and len(sources) < 3:
            sources.append(path)
            lengths.append(length)
    tables = {}
    for label, names in (("plain", ["a", "b", "c"]), ("starter", ["x-b", "x", "y"])):
        root = tmp_path / label
        (root / TEST / "mfcc").mkdir(parents=True)
        for source, name in zip(sources, names, strict=True):
            shutil.copy(source, root / TEST / "mfcc" / f"{name}.npy")
        assert starter_listing(root / TEST / "mfcc") == names
        out = tmp_path / f"{label}.csv"
        run_cli(
            "phonemlp-predict",
            f"ckpt={run_dir}",
            f"data.root={root}",
            f"out={out}",
            "precision=fp32",
            cwd=tmp_path,
        )
        tables[label] = pd.read_csv(out, keep_default_na=False)
    plain, starter = tables["plain"], tables["starter"]
    assert starter.iloc[:, 0].tolist() == list(range(sum(lengths)))
    assert starter.iloc[:, 1].tolist() == plain.iloc[:, 1].tolist()
    # the bare-name order (x, x-b, y) would give other rows: the test can tell them apart
    ends = np.cumsum([0, *lengths])
    pieces = [plain.iloc[ends[u] : ends[u + 1], 1].tolist() for u in range(3)]
    assert pieces[1] + pieces[0] + pieces[2] != starter.iloc[:, 1].tolist()


# --- the header --------------------------------------------------------------------------


def starter_csv(path: Path, labels: list[str]) -> Path:
    """A CSV written as the starter notebook writes it: `id,label`, then `i,label` rows."""
    with open(path, "w") as file:
        file.write("id,label\n")
        for i, label in enumerate(labels):
            file.write(f"{i},{label}\n")
    return path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("header") / "corpus"
    write_demo_corpus(root, seed=4, train_utterances=4, dev_utterances=2, test_utterances=3)
    return root


def test_a_starter_style_csv_is_accepted_by_validator_scorer_and_submit(
    demo: Path, tmp_path: Path
) -> None:
    truth = pd.read_csv(demo / "test_labels.csv", keep_default_na=False)["Label"].tolist()
    frames = count_frames(demo, TEST)
    path = starter_csv(tmp_path / "submission.csv", truth)
    assert validate_submission(path, frames) == "symbol"
    scored = read_label_csv(path, frames)
    assert scored is not None and scored.tolist() == [INDEX[s] for s in truth]
    indices = starter_csv(tmp_path / "indices.csv", [str(INDEX[s]) for s in truth])
    assert validate_submission(indices, frames) == "index"
    assert read_label_csv(indices, frames).tolist() == scored.tolist()
    proc = run_cli(
        "phonemlp-submit", f"file={path}", f"data.root={demo}", "dry_run=true", cwd=tmp_path
    )
    assert f"{path}: valid ({frames:,} rows, labels as symbol); not submitted" in proc.stdout


@pytest.mark.parametrize("header", ["Id,Label", "id,label", "ID,LABEL"])
def test_either_case_of_the_header_is_valid(demo: Path, tmp_path: Path, header: str) -> None:
    frames = count_frames(demo, TEST)
    path = tmp_path / "submission.csv"
    path.write_text(header + "\n" + "".join(f"{i},AH\n" for i in range(frames)))
    assert validate_submission(path, frames) == "symbol"
    assert (read_label_csv(path, frames) == INDEX["AH"]).all()


def test_the_header_written_is_the_sample_submissions(demo: Path, tmp_path: Path) -> None:
    predictions = np.arange(10) % len(CLASSES)
    root = tmp_path / "root"
    root.mkdir()
    out = tmp_path / "submission.csv"
    write_submission(out, predictions, "symbol", root)
    assert out.read_text().splitlines()[0] == "id,label"  # no sample: the starter's header
    (root / "sample_submission.csv").write_text("\ufeffId,Label\n0,AH\n1,AH\n")
    write_submission(out, predictions, "symbol", root)
    lines = out.read_text().splitlines()
    assert lines[0] == "Id,Label" and lines[1] == f"0,{CLASSES[0]}"
    assert validate_submission(out, 10) == "symbol"
    (root / "sample_submission.csv").write_text('"ID","LABEL"\n')
    write_submission(out, predictions, "index", root)
    assert out.read_text().splitlines()[:2] == ["ID,LABEL", "0,0"]
    assert validate_submission(out, 10) == "index"


def test_an_unexpected_sample_header_is_not_copied(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "sample_submission.csv").write_text("Id,Prediction\n0,AH\n")
    with caplog.at_level(logging.WARNING, logger="phonemlp"):
        assert submission_header(tmp_path) == ("id", "label")
    assert "sample_submission.csv" in caplog.text and "Id,Prediction" in caplog.text


def test_predict_copies_the_sample_submission_header(
    tiny_run: tuple[Path, str], corpus: Path, tmp_path: Path
) -> None:
    run_dir, _ = tiny_run
    root = tmp_path / "corpus"
    shutil.copytree(corpus / TEST, root / TEST)
    (root / "sample_submission.csv").write_text("Id,Label\n0,[SIL]\n")
    out = tmp_path / "submission.csv"
    run_cli("phonemlp-predict", f"ckpt={run_dir}", f"data.root={root}", f"out={out}", cwd=tmp_path)
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.columns) == ["Id", "Label"]
    assert len(table) == count_frames(root, TEST)


def test_a_dry_run_never_imports_the_kaggle_package(demo: Path, tmp_path: Path) -> None:
    """Importing kaggle is slow and authenticates: only talking to Kaggle may do it."""
    path = starter_csv(tmp_path / "submission.csv", ["AH"] * count_frames(demo, TEST))
    code = (
        "import sys\n"
        "import phonemlp.data_cli, phonemlp.kaggle_api, phonemlp.prediction\n"
        "from phonemlp import submit\n"
        f"submit.main(['file={path}', 'data.root={demo}', 'dry_run=true'])\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('kaggle', 'kagglesdk')]\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "not submitted" in proc.stdout
