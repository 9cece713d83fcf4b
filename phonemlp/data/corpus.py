"""Reading and validating one split of a corpus in the HW1P2 layout (docs/data.md).

A split is returned as one contiguous feature array plus utterance offsets, never as one
array per file, so later stages work on it with index arithmetic alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phonemlp.errors import PhonemlpError
from phonemlp.phonemes import CLASSES, EOS, SOS
from phonemlp.progress import progress_bar

_SORTED_CLASSES = np.array(sorted(CLASSES))
_SORTED_TO_INDEX = np.array([CLASSES.index(s) for s in _SORTED_CLASSES], dtype=np.uint8)


@dataclass
class Split:
    """All utterances of one split, in file-name order (`utterance_order`), as one array.

    Utterance u's frames are rows `starts[u]` .. `starts[u] + lengths[u]` of `features`, and
    at least `pad` zero rows lie before and after each utterance. `read_split` gives the
    plain concatenation (pad 0, starts = offsets[:-1]); a prepared split (data/cache.py)
    keeps 50 zero rows between utterances, so any context up to 50 needs no copy.
    """

    name: str
    names: list[str]  # utterance names (file stems), in `utterance_order`
    features: np.ndarray  # (rows, feature_dim) float32 or float16 (possibly a memory map)
    offsets: np.ndarray  # (utterances + 1,) int64: frames offsets[u]:offsets[u+1] are utterance u
    labels: np.ndarray | None  # (frames,) uint8 class indices, None for an unlabelled split
    starts: np.ndarray | None = None
    """(utterances,) int64: the row of each utterance's first frame; None means offsets[:-1]."""
    pad: int = 0  # zero rows guaranteed before and after every utterance in `features`
    moments: np.ndarray | None = None
    """(utterances, 2, dim) float64: per-utterance sum and sum of squares of the raw frames."""
    pending_stats: tuple[np.ndarray, np.ndarray] | None = None
    """Global (mean, std) still to apply to `features`, done as the split is placed."""

    @property
    def frames(self) -> int:
        return int(self.offsets[-1])

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def rows(self) -> np.ndarray:
        """The first row of each utterance in `features`."""
        return self.offsets[:-1] if self.starts is None else self.starts

    def subset(self, names: list[str]) -> Split:
        """The same split restricted to `names` (in `utterance_order`), sharing `features`."""
        where = {name: u for u, name in enumerate(self.names)}
        chosen = np.array([where[name] for name in names], dtype=np.int64)
        lengths = self.lengths[chosen]
        offsets = np.zeros(len(chosen) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        labels = None
        if self.labels is not None:
            firsts = self.offsets[chosen]
            labels = np.concatenate(
                [self.labels[a : a + n] for a, n in zip(firsts, lengths, strict=True)]
                or [np.empty(0, np.uint8)]
            )
        return Split(
            name=self.name,
            names=list(names),
            features=self.features,
            offsets=offsets,
            labels=labels,
            starts=self.rows[chosen],
            pad=self.pad,
            moments=None if self.moments is None else self.moments[chosen],
            pending_stats=self.pending_stats,
        )


@dataclass
class SplitFiles:
    """The checked file listing of one split: names and their mfcc/transcript paths."""

    root: Path
    split: str
    names: list[str]
    mfcc: list[Path]
    transcripts: list[Path] | None  # None for an unlabelled read


def utterance_order(names: Iterable[str]) -> list[str]:
    """Utterance names (file stems) in the order of their file names, `.npy` included.

    This is the official starter notebook's order (`sorted(os.listdir(folder))`), which
    Kaggle's test rows follow. It differs from sorting the bare names when one name is a
    prefix of another: `x-b.npy` comes before `x.npy` ('-' < '.') although `x` < `x-b`.
    """
    return sorted(names, key=lambda name: f"{name}.npy")


def _listing(folder: Path) -> dict[str, Path]:
    """The `.npy` files of a folder by stem; other files (e.g. .DS_Store, README) are ignored."""
    if not folder.is_dir():
        raise PhonemlpError(f"{folder}: folder not found; expected the HW1P2 layout (docs/data.md)")
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


def split_files(
    root: Path, split: str, labelled: bool = True, utterances: list[str] | None = None
) -> SplitFiles:
    """List and check `root/split/mfcc` (and `transcript`): folders and file names only.

    `utterances` restricts the listing to these names (e.g. a data.fraction subset).
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
    names = utterance_order(mfcc) if utterances is None else list(utterances)
    return SplitFiles(
        root=root,
        split=split,
        names=names,
        mfcc=[mfcc[name] for name in names],
        transcripts=[transcripts[name] for name in names] if labelled else None,
    )


def frame_counts(files: SplitFiles) -> tuple[np.ndarray, int]:
    """Frames per utterance and the feature dimension, from the feature files' headers."""
    lengths = np.empty(len(files.names), dtype=np.int64)
    feature_dim = None
    for i, path in enumerate(files.mfcc):
        frames, dim = _feature_header(path)
        if feature_dim is None:
            feature_dim = dim
        elif dim != feature_dim:
            raise PhonemlpError(
                f"{path}: feature dimension {dim} differs from {feature_dim} in "
                f"{files.mfcc[0]}; all feature files of a corpus must have the same dimension"
            )
        lengths[i] = frames
    return lengths, int(feature_dim or 0)


def read_utterance(files: SplitFiles, u: int, frames: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Utterance u's checked float32 features (frames, dim) and labels (None if unlabelled)."""
    path = files.mfcc[u]
    with np.errstate(over="ignore"):  # values beyond float32 become Inf, refused below
        features = np.asarray(_load_npy(path), dtype=np.float32)
    if len(features) != frames:
        raise PhonemlpError(f"{path}: changed while being read; read it again")
    if not np.isfinite(features).all():
        raise PhonemlpError(
            f"{path}: features contain NaN or Inf values (as float32); fix or remove this utterance"
        )
    if files.transcripts is None:
        return features, None
    transcript = _load_npy(files.transcripts[u])
    return features, labels_from_transcript(transcript, files.transcripts[u], frames)


def read_split(
    root: Path,
    split: str,
    labelled: bool = True,
    utterances: list[str] | None = None,
    progress: bool = True,
) -> Split:
    """Read and validate `root/split/mfcc` (and `transcript` when labelled) into one Split.

    The features are the raw float32 frames, concatenated without padding.
    `utterances` restricts the read to these names (e.g. a data.fraction subset).
    """
    files = split_files(root, split, labelled, utterances)
    lengths, dim = frame_counts(files)
    offsets = np.zeros(len(files.names) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    features = np.empty((int(offsets[-1]), dim), dtype=np.float32)
    labels = np.empty(int(offsets[-1]), dtype=np.uint8) if labelled else None
    bar = progress_bar(files.names, len(files.names), desc=f"reading {split}", unit="utt",
                       disable=not progress)  # fmt: skip
    for u, _ in enumerate(bar):
        start, end = offsets[u], offsets[u + 1]
        features[start:end], utterance_labels = read_utterance(files, u, int(end - start))
        if labels is not None:
            labels[start:end] = utterance_labels
    return Split(name=split, names=files.names, features=features, offsets=offsets, labels=labels)


def list_utterances(root: Path, split: str) -> list[str]:
    """The utterance names of a split in `utterance_order` (without reading the files)."""
    mfcc = _listing(Path(root) / split / "mfcc")
    if not mfcc:
        raise PhonemlpError(f"{Path(root) / split / 'mfcc'}: no .npy feature files found")
    return utterance_order(mfcc)


def feature_dim(root: Path, split: str) -> int:
    """The feature dimension of a split, from its first file's header (nothing else is read)."""
    first = list_utterances(root, split)[0]
    return _feature_header(Path(root) / split / "mfcc" / f"{first}.npy")[1]


def read_labels(root: Path, split: str, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(labels, offsets) of a labelled split from its transcripts alone (no features read)."""
    transcripts = _listing(Path(root) / split / "transcript")
    if not transcripts:
        raise PhonemlpError(f"{Path(root) / split / 'transcript'}: no .npy transcript files found")
    names = utterance_order(transcripts)
    parts = []
    bar = progress_bar(names, len(names), desc=f"reading {split} labels", unit="utt",
                       disable=not progress)  # fmt: skip
    for name in bar:
        transcript = _load_npy(transcripts[name])
        frames = max(0, len(transcript) - 2) if transcript.ndim == 1 else 0
        parts.append(labels_from_transcript(transcript, transcripts[name], frames))
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    return np.concatenate(parts), offsets
