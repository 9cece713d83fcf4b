"""The prepared-split cache: a split read once from its `.npy` files, memory-mapped after.

A prepared split is a folder of plain `.npy` arrays:

    features.npy  (rows, dim) float32|float16   the normalised frames, with PAD zero rows
                                                before the first utterance and after each one
    labels.npy    (frames,) uint8               class indices (labelled splits only)
    offsets.npy   (utterances + 1,) int64       utterance u is frames offsets[u]:offsets[u+1]
    moments.npy   (utterances, 2, dim) float64  per-utterance sum and sum of squares of the
                                                raw frames (global statistics of any subset)
    names.json    the utterance names, sorted
    meta.json     the key it was built from, and the shapes; written last

Utterance u's first frame is row offsets[u] + PAD * (u + 1), so a context window of up to
PAD frames never reaches into a neighbouring utterance, whatever the run's context.

The folder name is a digest of the key: the split folder's resolved path, every file's
name, size and modification time, the stored normalisation, the storage dtype and PAD.
A folder whose meta.json or arrays do not match its key (stale, partial, foreign) is
removed and rebuilt. A build writes into a temporary folder that is renamed into place
after every file is flushed to disk, so a prepared folder is always complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phonemlp.data.corpus import Split, SplitFiles, frame_counts, read_utterance
from phonemlp.data.normalize import cmvn, moments
from phonemlp.errors import PhonemlpError
from phonemlp.progress import progress_bar

FORMAT = 1
"""Bump when the prepared layout or its contents change, so old folders are rebuilt."""

PAD = 50
"""Zero rows around every utterance: the largest context a run may use."""

STORAGE_DTYPES = {"float32": np.float32, "float16": np.float16}
_STALE_TEMP_SECONDS = 3600.0
_WRITE_BUFFER = 8 << 20


def default_cache_dir() -> Path:
    """`prepared/` in the phonemlp cache folder (see demo.default_cache_dir)."""
    from phonemlp.data.demo import default_cache_dir as phonemlp_cache

    return phonemlp_cache() / "prepared"


def storage_dtype(name: str) -> np.dtype:
    if name not in STORAGE_DTYPES:
        raise PhonemlpError(f"data.dtype={name!r} is not one of {', '.join(STORAGE_DTYPES)}")
    return np.dtype(STORAGE_DTYPES[name])


def stored_normalisation(mode: str) -> str:
    """What a prepared split stores for a data.normalize mode: global is applied at load."""
    return "utterance" if mode == "utterance" else "none"


def cache_key(files: SplitFiles, normalize: str, dtype: str, pad: int = PAD) -> dict:
    """What a prepared split is built from; any change gives another folder."""
    listing = hashlib.sha256()
    for kind, paths in (("mfcc", files.mfcc), ("transcript", files.transcripts or [])):
        for path in paths:
            stat = os.stat(path)
            listing.update(f"{kind}/{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return {
        "format": FORMAT,
        "folder": str((files.root / files.split).resolve()),
        "split": files.split,
        "labelled": files.transcripts is not None,
        "normalize": normalize,
        "dtype": dtype,
        "pad": pad,
        "utterances": len(files.names),
        "files": listing.hexdigest(),
    }


def _digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _folder_name(key: dict) -> str:
    return f"{key['split']}-{_digest(key)[:20]}"


def _source(key: dict) -> dict:
    """The key without the file listing: the same source, built from other files."""
    return {k: v for k, v in key.items() if k not in ("files", "utterances")}


# --- building ----------------------------------------------------------------------------


@dataclass
class Tables:
    """What preparing a split fills in beside its features: each utterance's frame count and
    moments (utterances, 2, dim), and every frame's label (None for a test split)."""

    lengths: np.ndarray
    sums: np.ndarray
    labels: np.ndarray | None

    @classmethod
    def empty(cls, files: SplitFiles) -> Tables:
        lengths, dim = frame_counts(files)
        labelled = files.transcripts is not None
        labels = np.empty(int(lengths.sum()), np.uint8) if labelled else None
        return cls(lengths, np.empty((len(lengths), 2, dim)), labels)


def build_rows(
    files: SplitFiles, normalize: str, dtype: np.dtype, pad: int, tables: Tables,
    progress: bool = True,
) -> Iterator[np.ndarray]:  # fmt: skip
    """Read, check and normalise every utterance and yield its rows, in layout order, filling
    in `tables` on the way.

    The zero padding is yielded too, so that the blocks, concatenated, are the prepared
    features.
    """
    lengths, sums, labels = tables.lengths, tables.sums, tables.labels
    dim = sums.shape[2]
    zeros = np.zeros((pad, dim), dtype)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    yield zeros
    bar = progress_bar(
        range(len(files.names)), len(files.names), desc=f"preparing {files.split}", unit="utt",
        disable=not progress,
    )  # fmt: skip
    for u in bar:
        features, utterance_labels = read_utterance(files, u, int(lengths[u]))
        sums[u] = moments(features)
        if normalize == "utterance":
            cmvn(features, sums[u])
        with np.errstate(over="ignore"):
            stored = features.astype(dtype, copy=False)
        if not np.isfinite(stored).all():
            raise PhonemlpError(
                f"{files.mfcc[u]}: values beyond the float16 range "
                f"(largest magnitude {np.abs(features).max():.3g}); use data.dtype=float32"
            )
        yield stored
        yield zeros
        if labels is not None:
            labels[offsets[u] : offsets[u + 1]] = utterance_labels


def _layout(lengths: np.ndarray, pad: int) -> tuple[np.ndarray, np.ndarray, int]:
    """offsets, first rows and the total rows of the padded layout."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    starts = offsets[:-1] + pad * (np.arange(len(lengths), dtype=np.int64) + 1)
    return offsets, starts, int(offsets[-1]) + pad * (len(lengths) + 1)


def prepare_in_memory(
    files: SplitFiles, normalize: str, dtype: str, pad: int = PAD, progress: bool = True
) -> Split:
    """A prepared split built in memory only (data.cache=false)."""
    store = storage_dtype(dtype)
    tables = Tables.empty(files)
    offsets, starts, rows = _layout(tables.lengths, pad)
    features = np.empty((rows, tables.sums.shape[2]), dtype=store)
    cursor = 0
    for block in build_rows(files, normalize, store, pad, tables, progress):
        features[cursor : cursor + len(block)] = block
        cursor += len(block)
    labels, sums = tables.labels, tables.sums
    return Split(files.split, files.names, features, offsets, labels, starts, pad, sums)


def _write_header(file, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(file, header)


def _save(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as file:
        np.save(file, array, allow_pickle=False)
        file.flush()
        os.fsync(file.fileno())


def _write_prepared(
    folder: Path, files: SplitFiles, key: dict, dtype: np.dtype, progress: bool
) -> None:
    """Build a prepared split into `folder` (a new, empty temporary folder)."""
    pad = key["pad"]
    tables = Tables.empty(files)
    offsets, _, rows = _layout(tables.lengths, pad)
    dim = tables.sums.shape[2]
    with open(folder / "features.npy", "wb", buffering=_WRITE_BUFFER) as file:
        _write_header(file, dtype, (rows, dim))
        for block in build_rows(files, key["normalize"], dtype, pad, tables, progress):
            file.write(memoryview(np.ascontiguousarray(block)).cast("B"))
        file.flush()
        os.fsync(file.fileno())
    _save(folder / "offsets.npy", offsets)
    _save(folder / "moments.npy", tables.sums)
    if tables.labels is not None:
        _save(folder / "labels.npy", tables.labels)
    (folder / "names.json").write_text(json.dumps(files.names))
    meta = {
        "key": key,
        "frames": int(offsets[-1]),
        "rows": rows,
        "feature_dim": dim,
        "dtype": np.dtype(dtype).name,
    }
    with open(folder / "meta.json", "w") as file:
        file.write(json.dumps(meta, indent=1))
        file.flush()
        os.fsync(file.fileno())


# --- opening -----------------------------------------------------------------------------


class _Invalid(Exception):
    """A prepared folder that does not match its key or is incomplete."""


def _map(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A checked copy-on-write memory map of a prepared array (writable, never written)."""
    try:
        with open(path, "rb") as file:
            version = np.lib.format.read_magic(file)
            if version != (1, 0):
                raise _Invalid(f"{path.name}: unexpected .npy version {version}")
            found, fortran, found_dtype = np.lib.format.read_array_header_1_0(file)
            offset = file.tell()
        size = path.stat().st_size
    except (OSError, ValueError) as error:
        raise _Invalid(f"{path.name}: {error}") from None
    if found != shape or found_dtype != dtype or fortran:
        raise _Invalid(f"{path.name}: {found} {found_dtype}, expected {shape} {dtype}")
    if size != offset + int(np.prod(shape)) * dtype.itemsize:
        raise _Invalid(f"{path.name}: {size} bytes, not what its header says")
    if 0 in shape:
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="c", offset=offset, shape=shape)


def _open_prepared(folder: Path, key: dict) -> Split:
    """The prepared split in `folder`, checked against `key`; raises _Invalid."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        names = json.loads((folder / "names.json").read_text())
    except (OSError, ValueError) as error:
        raise _Invalid(str(error)) from None
    if not isinstance(meta, dict) or meta.get("key") != key:
        raise _Invalid("meta.json: built from something else")
    if not isinstance(names, list) or len(names) != key["utterances"]:
        raise _Invalid("names.json: wrong utterance count")
    try:
        frames, rows, dim = int(meta["frames"]), int(meta["rows"]), int(meta["feature_dim"])
        dtype = storage_dtype(meta["dtype"])
    except (KeyError, TypeError, ValueError, PhonemlpError) as error:
        raise _Invalid(f"meta.json: {error}") from None
    utterances, pad = len(names), key["pad"]
    offsets = np.asarray(_map(folder / "offsets.npy", (utterances + 1,), np.dtype(np.int64)))
    if offsets[0] != 0 or offsets[-1] != frames or (np.diff(offsets) < 0).any():
        raise _Invalid("offsets.npy: inconsistent")
    if rows != frames + pad * (utterances + 1):
        raise _Invalid("meta.json: inconsistent rows")
    features = _map(folder / "features.npy", (rows, dim), dtype)
    sums = np.asarray(_map(folder / "moments.npy", (utterances, 2, dim), np.dtype(np.float64)))
    labels = None
    if key["labelled"]:
        labels = _map(folder / "labels.npy", (frames,), np.dtype(np.uint8))
    _, starts, _ = _layout(np.diff(offsets), pad)
    return Split(key["split"], names, features, offsets, labels, starts, pad, sums)


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def _remove_stale(cache_dir: Path, key: dict, keep: str) -> None:
    """Remove temporaries left by killed builds, and older builds of the same source."""
    now = time.time()
    for temporary in cache_dir.glob(".*.tmp-*"):
        with contextlib.suppress(OSError):
            if now - temporary.stat().st_mtime > _STALE_TEMP_SECONDS:
                _remove(temporary)
    source = _source(key)
    for folder in cache_dir.glob(f"{key['split']}-*"):
        if folder.name == keep:
            continue
        try:
            other = json.loads((folder / "meta.json").read_text())["key"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # another writer's, or not ours: leave it
        if isinstance(other, dict) and _source(other) == source:
            _remove(folder)


def prepare_cached(
    files: SplitFiles,
    normalize: str,
    dtype: str,
    cache_dir: Path,
    progress: bool = True,
) -> Split:
    """The prepared split of `files`: memory-mapped from `cache_dir`, built on first use."""
    store = storage_dtype(dtype)
    key = cache_key(files, normalize, dtype)
    cache_dir = Path(cache_dir).expanduser()
    final = cache_dir / _folder_name(key)
    if final.is_dir():
        try:
            return _open_prepared(final, key)
        except _Invalid:
            _remove(final)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PhonemlpError(
            f"data.cache_dir={cache_dir}: cannot create it ({error.strerror}); "
            "set data.cache_dir to a writable folder or data.cache=false"
        ) from None
    temporary = cache_dir / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        temporary.mkdir()
        _write_prepared(temporary, files, key, store, progress)
        try:
            os.rename(temporary, final)
        except OSError:
            if not final.is_dir():
                raise
            # another process prepared the same split meanwhile: use theirs if it is sound
            try:
                return _open_prepared(final, key)
            except _Invalid:
                _remove(final)
                os.rename(temporary, final)
        with contextlib.suppress(OSError):
            descriptor = os.open(cache_dir, os.O_RDONLY)
            os.fsync(descriptor)
            os.close(descriptor)
    except OSError as error:
        raise PhonemlpError(
            f"data.cache_dir={cache_dir}: cannot write the prepared split ({error}); "
            "free some space, set data.cache_dir elsewhere or data.cache=false"
        ) from None
    finally:
        _remove(temporary)
    _remove_stale(cache_dir, key, keep=final.name)
    try:
        return _open_prepared(final, key)
    except _Invalid as error:
        raise PhonemlpError(
            f"{final}: the prepared split does not read back ({error}); is another "
            "program writing to data.cache_dir?"
        ) from None


def read_rows(features: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows start:stop of a feature array as an in-memory copy.

    For a memory map the rows are read from its file, so that copying a whole prepared
    split elsewhere (to a GPU, or to another dtype) never maps all of it into this process.
    """
    if isinstance(features, np.memmap) and isinstance(features.base, mmap.mmap):
        row_bytes = features.shape[1] * features.itemsize
        return np.fromfile(
            features.filename,
            dtype=features.dtype,
            count=(stop - start) * features.shape[1],
            offset=features.offset + start * row_bytes,
        ).reshape(stop - start, features.shape[1])
    return np.array(features[start:stop])
