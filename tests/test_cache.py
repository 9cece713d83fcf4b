"""The prepared-split cache and the window gather: same numbers as reading the .npy files,
rebuilt when stale, partial or foreign, atomic, and windows that never cross utterances."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import phonemlp.data.cache as cache
from phonemlp.data.corpus import read_split
from phonemlp.data.demo import write_demo_corpus
from phonemlp.data.normalize import global_stats, normalize
from phonemlp.data.splits import Preparation, load_split
from phonemlp.data.windows import WindowedSplit
from phonemlp.errors import PhonemlpError

TRAIN, DEV = "train-clean-100", "dev-clean"
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cache") / "corpus"
    write_demo_corpus(root, seed=5, train_utterances=14, dev_utterances=4, test_utterances=4)
    return root


@pytest.fixture
def root(small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the small corpus, free to change (outside the test's tmp_path)."""
    return Path(shutil.copytree(small, tmp_path_factory.mktemp("copy") / "corpus"))


def reference(root: Path, mode: str, utterances: list[str] | None = None) -> np.ndarray:
    """The split read from its .npy files and normalised the straightforward way."""
    data = read_split(root, TRAIN, utterances=utterances, progress=False)
    normalize(data.features, data.offsets, mode, global_stats(data.features))
    return data


def frames_of(data) -> np.ndarray:
    """The frames of a (padded) split in order, as float32."""
    return np.concatenate(
        [data.features[r : r + n] for r, n in zip(data.rows, data.lengths, strict=True)]
    ).astype(np.float32)


def folders(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.iterdir() if not p.name.startswith("."))


def load(root: Path, cache_dir: Path, mode: str = "utterance", **options):
    how = Preparation(mode, cache_dir=cache_dir, progress=False, **options)
    return load_split(root, TRAIN, how)[0]


# --- what a prepared split holds ------------------------------------------------------------


@pytest.mark.parametrize("mode", ["utterance", "global", "none"])
def test_prepared_split_matches_the_npy_files(small: Path, tmp_path: Path, mode: str) -> None:
    expected = reference(small, mode)
    for cached in (True, False):
        data = load(small, tmp_path, mode, cache=cached)
        assert data.names == expected.names and data.pad == cache.PAD
        np.testing.assert_array_equal(data.labels, expected.labels)
        np.testing.assert_array_equal(data.offsets, expected.offsets)
        # global normalisation is applied as the split is placed, so compare the windows
        placed = WindowedSplit(data, 0, CPU).windows(torch.arange(data.frames)).numpy()
        np.testing.assert_allclose(placed, expected.features, atol=1e-5)
        padding = np.ones(len(data.features), bool)
        for r, n in zip(data.rows, data.lengths, strict=True):
            padding[r : r + n] = False
        assert not data.features[padding].any()  # every row between utterances is zero


def test_second_load_maps_the_cache_without_reading_npy_files(
    small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load(small, tmp_path)
    assert len(folders(tmp_path)) == 1
    for name in ("features.npy", "labels.npy", "offsets.npy", "moments.npy", "meta.json"):
        assert (folders(tmp_path)[0] / name).is_file()

    def no_reading(*args: object) -> None:
        raise AssertionError("an .npy file was read although the cache is fresh")

    monkeypatch.setattr(cache, "read_utterance", no_reading)
    second = load(small, tmp_path)
    assert isinstance(second.features, np.memmap)
    np.testing.assert_array_equal(np.asarray(second.features), np.asarray(first.features))
    # a subset (data.fraction) and another split dtype come from the same / a new folder
    how = Preparation("utterance", cache_dir=tmp_path, progress=False)
    subset = load_split(small, TRAIN, how, utterances=first.names[1::2])[0]
    np.testing.assert_array_equal(
        frames_of(subset), frames_of(reference(small, "utterance", first.names[1::2]))
    )
    assert len(folders(tmp_path)) == 1


def test_float16_storage_is_close_and_half_the_bytes(small: Path, tmp_path: Path) -> None:
    full = load(small, tmp_path, dtype="float32")
    half = load(small, tmp_path, dtype="float16")
    assert half.features.dtype == np.float16
    assert half.features.nbytes * 2 == full.features.nbytes
    np.testing.assert_allclose(frames_of(half), frames_of(full), rtol=2e-3, atol=2e-3)
    assert len(folders(tmp_path)) == 2


def test_float16_overflow_is_refused(root: Path, tmp_path: Path) -> None:
    path = sorted((root / TRAIN / "mfcc").glob("*.npy"))[2]
    np.save(path, np.load(path) * 1e5)
    with pytest.raises(PhonemlpError, match="float16 range"):
        load(root, tmp_path, "none", dtype="float16")


# --- stale, partial, foreign ----------------------------------------------------------------


def test_a_changed_file_rebuilds_and_replaces_the_stale_cache(root: Path, tmp_path: Path) -> None:
    before = load(root, tmp_path)
    stale = folders(tmp_path)
    path = sorted((root / TRAIN / "mfcc").glob("*.npy"))[0]
    np.save(path, np.load(path)[:-10])  # a shorter utterance
    transcript = root / TRAIN / "transcript" / path.name
    symbols = np.load(transcript)
    np.save(transcript, np.concatenate([symbols[:-11], symbols[-1:]]))
    after = load(root, tmp_path)
    assert after.frames == before.frames - 10
    assert folders(tmp_path) != stale and len(folders(tmp_path)) == 1


def test_a_touched_file_rebuilds(root: Path, tmp_path: Path) -> None:
    load(root, tmp_path)
    stale = folders(tmp_path)
    path = sorted((root / TRAIN / "mfcc").glob("*.npy"))[3]
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    load(root, tmp_path)
    assert folders(tmp_path) != stale


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda f: (f / "meta.json").unlink(), id="no-meta"),
        pytest.param(lambda f: (f / "features.npy").unlink(), id="no-features"),
        pytest.param(
            lambda f: os.truncate(f / "features.npy", (f / "features.npy").stat().st_size - 56),
            id="truncated-features",
        ),
        pytest.param(lambda f: (f / "labels.npy").write_bytes(b"junk"), id="junk-labels"),
        pytest.param(lambda f: (f / "meta.json").write_text("{not json"), id="junk-meta"),
        pytest.param(
            lambda f: (f / "meta.json").write_text(
                json.dumps({**json.loads((f / "meta.json").read_text()), "key": {"x": 1}})
            ),
            id="foreign-key",
        ),
        pytest.param(
            lambda f: np.save(f / "offsets.npy", np.load(f / "offsets.npy")[::-1]),
            id="bad-offsets",
        ),
    ],
)
def test_a_partial_or_foreign_cache_is_rebuilt(small: Path, tmp_path: Path, spoil) -> None:
    expected = load(small, tmp_path)
    features, labels = np.array(expected.features), np.array(expected.labels)
    del expected  # unmapped: truncating a file under a live memory map would crash
    spoil(folders(tmp_path)[0])
    again = load(small, tmp_path)
    np.testing.assert_array_equal(np.asarray(again.features), features)
    np.testing.assert_array_equal(again.labels, labels)
    assert len(folders(tmp_path)) == 1


def test_a_killed_build_leaves_nothing_used(
    small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def killed(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cache, "_save", killed)
    with pytest.raises(KeyboardInterrupt):
        load(small, tmp_path)
    assert not list(tmp_path.iterdir())  # the temporary folder is gone, no final folder
    monkeypatch.undo()
    assert load(small, tmp_path).frames == reference(small, "none").frames


def test_two_processes_preparing_at_once_both_succeed(small: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from phonemlp.data.splits import Preparation, load_split; "
        f"d, _ = load_split(sys.argv[1], {TRAIN!r}, Preparation(cache_dir=sys.argv[2], "
        "progress=False)); print(d.frames)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(small), str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert {out.strip() for out, _ in outputs} == {str(reference(small, "none").frames)}
    assert len(folders(tmp_path)) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_unwritable_cache_dir_is_one_clear_line(small: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PhonemlpError, match="data.cache_dir"):
        load(small, blocker / "cache")


# --- windows --------------------------------------------------------------------------------


def naive_windows(data, context: int, frames: np.ndarray) -> np.ndarray:
    """Each frame's window built by hand: zeros wherever it leaves its utterance."""
    utterance = np.searchsorted(data.offsets[1:], frames, side="right")
    out = np.zeros((len(frames), 2 * context + 1, data.feature_dim), np.float32)
    for i, (frame, u) in enumerate(zip(frames, utterance, strict=True)):
        for k in range(-context, context + 1):
            if data.offsets[u] <= frame + k < data.offsets[u + 1]:
                out[i, k + context] = data.features[frame + k]
    return out.reshape(len(frames), -1)


@pytest.mark.parametrize("context", [0, 3, 50, 57])
def test_windows_are_zero_padded_per_utterance(small: Path, tmp_path: Path, context: int) -> None:
    expected = reference(small, "utterance")
    # the first and last frames of every utterance, and a few inside
    frames = np.unique(
        np.concatenate([expected.offsets[:-1], expected.offsets[1:] - 1, [5, 77, 400]])
    )
    want = naive_windows(expected, context, frames)
    data = load(small, tmp_path)
    for dtype, placement in [
        (torch.float32, "auto"),
        (torch.bfloat16, "auto"),
        (torch.float32, "host"),
    ]:
        windows = WindowedSplit(data, context, CPU, dtype, placement=placement)
        got = windows.windows(torch.from_numpy(frames)).float().numpy()
        np.testing.assert_allclose(got, want, atol=0 if dtype == torch.float32 else 0.04)
        assert windows.input_dim == want.shape[1]


def test_cpu_windows_share_the_memory_map(small: Path, tmp_path: Path) -> None:
    data = load(small, tmp_path)
    shared = WindowedSplit(data, 20, CPU, torch.float32)
    assert shared.padded.data_ptr() == torch.from_numpy(data.features).data_ptr()
    narrow = WindowedSplit(data, 20, CPU, torch.bfloat16)  # one bf16 copy, half the bytes
    assert narrow.padded.dtype == torch.bfloat16
    assert narrow.padded.numel() <= data.features.size
    half = WindowedSplit(load(small, tmp_path, dtype="float16"), 20, CPU, torch.float32)
    assert half.padded.dtype == torch.float16  # stays float16; each batch is cast
    assert half.windows(torch.arange(4)).dtype == torch.float32


def test_batches_orders_limits_first_and_placements_agree(small: Path, tmp_path: Path) -> None:
    data = load(small, tmp_path, "global")
    device = WindowedSplit(data, 4, CPU)
    host = WindowedSplit(data, 4, CPU, placement="host")
    order = torch.randperm(data.frames, generator=torch.Generator().manual_seed(0))
    a = list(device.batches(300, order))
    assert sum(len(y) for _, y in a) == data.frames
    b = list(host.batches(300, order))
    assert all(torch.equal(x, u) and torch.equal(y, v) for (x, y), (u, v) in zip(a, b, strict=True))
    tail = list(device.batches(300, order, limit=4, first=2))
    assert len(tail) == 2 and torch.equal(tail[0][0], a[2][0])
    in_order = torch.cat([y for _, y in device.batches(1000)])
    np.testing.assert_array_equal(in_order.numpy(), data.labels)
    narrower = device.with_context(2)
    np.testing.assert_array_equal(
        narrower.windows(torch.arange(10)).numpy(),
        WindowedSplit(data, 2, CPU).windows(torch.arange(10)).numpy(),
    )
