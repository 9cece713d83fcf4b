"""A corpus in the HW1P2 layout of any size, for the bench (`generate.frames`)."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from phonemlp.data.corpus import read_split
from phonemlp.data.synthetic import utterance_names
from phonemlp.errors import PhonemlpError
from phonemlp.phonemes import CLASSES, EOS, SOS
from phonemlp.progress import progress_bar

TRAIN, DEV, TEST = "train-clean-100", "dev-clean", "test-clean"
REAL_UTTERANCE_FRAMES = 1265  # the real train split: 36,091,157 frames in 28,539 files


def write_large_corpus(
    root: Path, frames: int, utterances: int = 0, seed: int = 0, progress: bool = True
) -> Path:
    """A corpus in the HW1P2 layout whose train split has exactly `frames` frames.

    Train utterances (about 1265 frames each, like the real data, unless `utterances` is
    given) are cut from the stream of a small demo corpus's train utterances at random
    places and perturbed (a channel offset, a gain and noise per utterance), so no two are
    alike; dev and test are demo splits of about 5.3 % of the train frames each, as in the
    real data. Written into a temporary folder renamed into place; an existing complete
    corpus with the same settings is reused.
    """
    from phonemlp.data.demo import write_demo_corpus

    root = Path(root).expanduser()
    settings = {"frames": frames, "utterances": utterances, "seed": seed, "version": 1}
    marker = root / "bench-corpus.json"
    if marker.is_file() and json.loads(marker.read_text()) == settings:
        return root
    if root.exists():
        raise PhonemlpError(
            f"generate.root={root}: exists and is not a corpus the bench wrote with these "
            "settings; remove it or choose another folder"
        )
    count = utterances or max(1, round(frames / REAL_UTTERANCE_FRAMES))
    if frames < count:
        raise PhonemlpError(f"generate.frames={frames} must be >= the utterances ({count})")
    held_out = max(20, round(frames * 0.0534 / 330))  # demo utterances average ~330 frames
    temporary = root.parent / f".{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        write_demo_corpus(
            temporary / "base",
            seed=seed,
            train_utterances=min(2000, max(50, count)),
            dev_utterances=held_out,
            test_utterances=held_out,
        )
        for name in (DEV, TEST, "test_labels.csv"):
            os.rename(temporary / "base" / name, temporary / name)
        write_train_split(temporary, frames, count, seed, progress)
        shutil.rmtree(temporary / "base")
        (temporary / "bench-corpus.json").write_text(json.dumps(settings))
        root.parent.mkdir(parents=True, exist_ok=True)
        os.rename(temporary, root)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return root


def write_train_split(folder: Path, frames: int, count: int, seed: int, progress: bool) -> None:
    """`count` train utterances of `frames` frames in all, cut from folder/base's train split
    and perturbed, written as folder/train-clean-100/{mfcc,transcript}/*.npy."""

    base = read_split(folder / "base", TRAIN, progress=False)
    stream, stream_labels = base.features, base.labels
    rng = np.random.default_rng([seed, 7])
    shares = rng.lognormal(0.0, 0.35, count)
    minimum = min(50, frames // count)
    lengths = minimum + rng.multinomial(frames - minimum * count, shares / shares.sum())
    symbols = np.asarray(CLASSES, dtype="<U5")
    (folder / TRAIN / "mfcc").mkdir(parents=True)
    (folder / TRAIN / "transcript").mkdir()
    names = utterance_names(count)
    bar = progress_bar(range(count), count, desc="writing train", unit="utt", disable=not progress)
    for u in bar:
        length = int(lengths[u])
        rows = (int(rng.integers(len(stream))) + np.arange(length)) % len(stream)
        noise = rng.standard_normal((length, stream.shape[1]), dtype=np.float32)
        offset = rng.normal(0.0, 0.5, stream.shape[1]).astype(np.float32)
        features = stream[rows] + offset + np.float32(rng.normal(0.0, 1.0)) + 0.3 * noise
        transcript = np.concatenate([[SOS], symbols[stream_labels[rows]], [EOS]])
        name = f"{names[u]}.npy"
        np.save(folder / TRAIN / "mfcc" / name, features, allow_pickle=False)
        np.save(folder / TRAIN / "transcript" / name, transcript, allow_pickle=False)
