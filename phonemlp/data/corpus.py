"""Reading and validating one split of a corpus in the HW1P2 layout (DESIGN.md §2).

A split is returned as one contiguous feature array plus utterance offsets, never as one
array per file, so later stages work on it with index arithmetic alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from phonemlp.errors import PhonemlpError
from phonemlp.phonemes import CLASSES, EOS, SOS

_SORTED_CLASSES = np.array(sorted(CLASSES))
_SORTED_TO_INDEX = np.array([CLASSES.index(s) for s in _SORTED_CLASSES], dtype=np.uint8)


@dataclass
class Split:
    """All utterances of one split, concatenated in sorted file-name order."""

    name: str
    names: list[str]  # utterance names (file stems), sorted
    features: np.ndarray  # (frames, feature_dim) float32
    offsets: np.ndarray  # (utterances + 1,) int64: utterance u is features[offsets[u]:offsets[u+1]]
    labels: np.ndarray | None  # (frames,) uint8 class indices, None for an unlabelled split

    @property
    def frames(self) -> int:
        return int(self.offsets[-1])

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def _listing(folder: Path) -> dict[str, Path]:
    """The `.npy` files of a folder by stem; other files (e.g. .DS_Store, README) are ignored."""
    if not folder.is_dir():
        raise PhonemlpError(f"{folder}: folder not found; expected the HW1P2 layout (DESIGN.md §2)")
    return {
        p.stem: p for p in folder.iterdir() if p.suffix == ".npy" and not p.name.startswith(".")
    }


def _has_npy_header(path: Path) -> bool:
    with open(path, "rb") as file:
        return file.read(6) == b"\x93NUMPY"


def _load_npy(path: Path, mmap: bool = False) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as e:
        if not _has_npy_header(path):  # np.load calls any non-.npy file "pickled data"
            raise PhonemlpError(
                f"{path}: not a .npy file (no NumPy header); re-download or re-extract it"
            ) from None
        if "pickle" in str(e).lower() or "python objects" in str(e).lower():
            raise PhonemlpError(
                f"{path}: holds Python objects (pickled); save it as a plain numeric or "
                "string array (np.save of a '<U' or float array)"
            ) from None
        raise PhonemlpError(
            f"{path}: unreadable .npy file ({e}); re-download or re-extract it"
        ) from None
    except (OSError, EOFError) as e:
        raise PhonemlpError(
            f"{path}: unreadable .npy file ({e}); re-download or re-extract it"
        ) from None
    if not isinstance(array, np.ndarray):  # np.load opens an .npz archive whatever its name
        array.close()
        raise PhonemlpError(f"{path}: an .npz archive, not a .npy file; save one array per file")
    return array


def _feature_header(path: Path) -> tuple[int, int]:
    """(frames, feature_dim) from a feature file's header, checking its shape and dtype."""
    array = _load_npy(path, mmap=True)
    if array.ndim != 2:
        raise PhonemlpError(
            f"{path}: features must be a 2-D (frames, feature_dim) array, found shape {array.shape}"
        )
    if array.dtype.kind != "f":
        raise PhonemlpError(f"{path}: features must be floating point, found dtype {array.dtype}")
    return int(array.shape[0]), int(array.shape[1])


def labels_from_transcript(transcript: np.ndarray, path: Path, frames: int) -> np.ndarray:
    """Class indices of a transcript `[SOS], T symbols, [EOS]`, checked against T = frames."""
    if transcript.ndim != 1 or transcript.dtype.kind not in "US":
        raise PhonemlpError(
            f"{path}: a transcript must be a 1-D array of symbol strings, found "
            f"shape {transcript.shape} dtype {transcript.dtype}"
        )
    if transcript.dtype.kind == "S":
        transcript = transcript.astype(str)
    if len(transcript) != frames + 2:
        raise PhonemlpError(
            f"{path}: transcript has {len(transcript)} symbols but its features have {frames} "
            f"frames; expected frames + 2 ('{SOS}', one symbol per frame, '{EOS}')"
        )
    if transcript[0] != SOS or transcript[-1] != EOS:
        raise PhonemlpError(
            f"{path}: transcript must start with '{SOS}' and end with '{EOS}', "
            f"found '{transcript[0]}' ... '{transcript[-1]}'"
        )
    symbols = transcript[1:-1]
    where = np.searchsorted(_SORTED_CLASSES, symbols).clip(0, len(_SORTED_CLASSES) - 1)
    unknown = _SORTED_CLASSES[where] != symbols
    if unknown.any():
        bad = symbols[unknown][0]
        raise PhonemlpError(
            f"{path}: unknown phoneme symbol '{bad}' at frame {int(np.argmax(unknown))}; "
            f"expected one of the 40 classes ({' '.join(CLASSES)})"
        )
    return _SORTED_TO_INDEX[where]


def read_split(
    root: Path,
    split: str,
    labelled: bool = True,
    utterances: list[str] | None = None,
    progress: bool = True,
) -> Split:
    """Read and validate `root/split/mfcc` (and `transcript` when labelled) into one Split.

    `utterances` restricts the read to these names (e.g. a data.fraction subset).
    """
    root = Path(root)
    if not root.is_dir():
        raise PhonemlpError(
            f"{root}: data root not found; set data.root to a corpus in the HW1P2 layout"
        )
    split_dir = root / split
    if not split_dir.is_dir():
        raise PhonemlpError(
            f"{split_dir}: split folder not found; expected {split}/mfcc under {root}"
        )
    mfcc = _listing(split_dir / "mfcc")
    if not mfcc:
        raise PhonemlpError(f"{split_dir / 'mfcc'}: no .npy feature files found")
    transcripts: dict[str, Path] = {}
    if labelled:
        transcripts = _listing(split_dir / "transcript")
        only_mfcc = sorted(set(mfcc) - set(transcripts))
        only_transcript = sorted(set(transcripts) - set(mfcc))
        if only_mfcc or only_transcript:
            which, names = ("mfcc", only_mfcc) if only_mfcc else ("transcript", only_transcript)
            raise PhonemlpError(
                f"{split_dir}: {len(names)} utterance(s) in {which}/ have no counterpart "
                f"(first: {names[0]}.npy); mfcc/ and transcript/ must hold the same file names"
            )
    names = sorted(mfcc) if utterances is None else list(utterances)

    lengths = np.empty(len(names), dtype=np.int64)
    feature_dim = None
    for i, name in enumerate(names):
        frames, dim = _feature_header(mfcc[name])
        if feature_dim is None:
            feature_dim = dim
        elif dim != feature_dim:
            raise PhonemlpError(
                f"{mfcc[name]}: feature dimension {dim} differs from {feature_dim} in "
                f"{mfcc[names[0]]}; all feature files of a corpus must have the same dimension"
            )
        lengths[i] = frames
    offsets = np.zeros(len(names) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])

    features = np.empty((int(offsets[-1]), feature_dim), dtype=np.float32)
    labels = np.empty(int(offsets[-1]), dtype=np.uint8) if labelled else None
    bar = tqdm(names, desc=f"reading {split}", unit="utt", disable=not progress, leave=False)
    for i, name in enumerate(bar):
        start, end = offsets[i], offsets[i + 1]
        with np.errstate(over="ignore"):  # values beyond float32 become Inf, refused below
            features[start:end] = _load_npy(mfcc[name])
        if not np.isfinite(features[start:end]).all():
            raise PhonemlpError(
                f"{mfcc[name]}: features contain NaN or Inf values (as float32); "
                "fix or remove this utterance"
            )
        if labels is not None:
            transcript = _load_npy(transcripts[name])
            labels[start:end] = labels_from_transcript(transcript, transcripts[name], end - start)
    return Split(name=split, names=names, features=features, offsets=offsets, labels=labels)


def list_utterances(root: Path, split: str) -> list[str]:
    """The sorted utterance names of a split (without reading the files)."""
    mfcc = _listing(Path(root) / split / "mfcc")
    if not mfcc:
        raise PhonemlpError(f"{Path(root) / split / 'mfcc'}: no .npy feature files found")
    return sorted(mfcc)


def feature_dim(root: Path, split: str) -> int:
    """The feature dimension of a split, from its first file's header (nothing else is read)."""
    first = list_utterances(root, split)[0]
    return _feature_header(Path(root) / split / "mfcc" / f"{first}.npy")[1]
