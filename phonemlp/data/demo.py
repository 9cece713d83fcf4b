"""The embedded demo corpus: synthetic speech-like log-mel frames in the HW1P2 layout.

The corpus is a small learning problem with the real one's structure: 40 classes with a
dominant silence, phones lasting several frames, a Markov phone sequence, class spectra
that are confusable frame by frame but told apart by their dynamics (diphthongs glide,
stops are a closure then a burst, phone edges blend into their neighbours), a random
channel, gain, scale and noise per utterance, and speakers with their own formant warp
and speaking rate. The test split adds one speaker never seen in training.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import sys
import time
import uuid
from dataclasses import dataclass

import numpy as np

from phonemlp.atomic import write_csv
from phonemlp.phonemes import CLASSES, EOS, SILENCE, SOS

DEMO_VERSION = 1
"""Bump when the generator's output changes, so that stale caches are not reused."""

NUM_BANDS = 28
TRAIN_SPLIT, DEV_SPLIT, TEST_SPLIT = "train-clean-100", "dev-clean", "test-clean"

TRAIN_UTTERANCES, DEV_UTTERANCES, TEST_UTTERANCES = 400, 60, 60
"""The demo corpus's default size (about 170 k frames)."""

_SEEN_SPEAKERS = 4
_CHAPTERS_PER_SPEAKER = 2
_STALE_TEMP_SECONDS = 3600.0

# Mel scale over 0-8 kHz; band i is centred at (i + 1) / (NUM_BANDS + 1) of the top mel.
_TOP_MEL = 2595.0 * np.log10(1.0 + 8000.0 / 700.0)
_BANDS = np.arange(NUM_BANDS, dtype=np.float64)
_COSINES = np.cos(np.pi * np.outer(np.arange(1, 5), (_BANDS + 0.5) / NUM_BANDS))
"""Four smooth shapes across the bands, for channels and per-token colouring."""


@dataclass(frozen=True)
class _Sound:
    """A static spectrum: a sloped baseline plus Gaussian bumps (Hz, height, width in bands)."""

    level: float
    tilt: float
    bumps: tuple[tuple[float, float, float], ...]


_VOICING = (140.0, 3.0, 1.0)


def _vowel(f1: float, f2: float, f3: float, level: float = 1.5) -> _Sound:
    return _Sound(level, -0.22, (_VOICING, (f1, 6.0, 1.3), (f2, 4.5, 1.6), (f3, 3.0, 1.8)))


def _voiced(sound: _Sound, weaken: float = 1.5) -> _Sound:
    """The same sound with a low-frequency voicing bar and slightly weaker noise."""
    return _Sound(sound.level - weaken, sound.tilt, ((150.0, 5.0, 1.2), *sound.bumps))


_SOUNDS: dict[str, _Sound] = {
    "sil": _Sound(-9.0, 0.0, ((120.0, 1.5, 1.5),)),
    "IY": _vowel(290, 2250, 2950),
    "IH": _vowel(400, 1950, 2600),
    "EH": _vowel(540, 1800, 2500),
    "AE": _vowel(680, 1700, 2450),
    "AH": _vowel(620, 1220, 2550, level=0.5),
    "AA": _vowel(730, 1100, 2450),
    "AO": _vowel(580, 880, 2500),
    "UH": _vowel(450, 1050, 2300, level=0.5),
    "UW": _vowel(320, 900, 2250),
    "ER": _vowel(480, 1350, 1700),
    "L": _vowel(360, 1000, 2800, level=-0.5),
    "R": _vowel(400, 1150, 1550, level=-0.5),
    "W": _vowel(300, 720, 2300, level=-1.0),
    "Y": _vowel(280, 2150, 3000, level=-1.0),
    "M": _Sound(-1.0, -0.35, ((250.0, 7.0, 1.5), (1000.0, -3.0, 1.5), (2300.0, 2.0, 2.0))),
    "N": _Sound(-1.0, -0.35, ((250.0, 7.0, 1.5), (1600.0, -3.0, 1.5), (2300.0, 2.0, 2.0))),
    "NG": _Sound(-1.0, -0.35, ((250.0, 7.0, 1.5), (2300.0, -3.0, 1.5), (1200.0, 2.0, 2.0))),
    "S": _Sound(-7.0, 0.12, ((6400.0, 9.0, 2.5),)),
    "SH": _Sound(-7.0, 0.08, ((3400.0, 9.0, 3.0),)),
    "F": _Sound(-6.0, 0.05, ((5000.0, 3.0, 6.0),)),
    "TH": _Sound(-6.0, 0.05, ((5600.0, 2.6, 6.0),)),
    "HH": _Sound(-3.5, -0.12, ((620.0, 2.5, 2.0), (1300.0, 2.5, 2.0), (2600.0, 2.0, 2.5))),
    "closure": _Sound(-7.5, 0.0, ()),
    "burst_lab": _Sound(-2.0, -0.2, ((900.0, 5.0, 4.0),)),
    "burst_alv": _Sound(-4.0, 0.15, ((4500.0, 6.0, 3.0),)),
    "burst_vel": _Sound(-3.0, 0.0, ((2000.0, 6.0, 1.8),)),
}
_SOUNDS.update(
    {
        name + "_v": _voiced(_SOUNDS[name])
        for name in ("S", "SH", "F", "TH", "closure", "burst_lab", "burst_alv", "burst_vel")
    }
)
_SOUND_INDEX = {name: i for i, name in enumerate(_SOUNDS)}
_CLASS_SYMBOLS = np.array(CLASSES, dtype="<U5")


def _steady(sound: str) -> tuple[str, str, str, float]:
    return (sound, sound, sound, 0.5)


# Per class: the onset, middle and offset sounds and where the middle sits (0-1 of the
# phone); a frame's spectrum is interpolated between them by its position in the phone.
_SHAPES: dict[str, tuple[str, str, str, float]] = {
    SILENCE: _steady("sil"),
    **{v: _steady(v) for v in ("AA", "AE", "AH", "AO", "EH", "ER", "IH", "IY", "UH", "UW")},
    **{c: _steady(c) for c in ("L", "R", "W", "Y", "M", "N", "NG", "S", "SH", "F", "TH", "HH")},
    "AW": ("AA", "AA", "UW", 0.35),
    "AY": ("AA", "AA", "IY", 0.35),
    "EY": ("EH", "EH", "IY", 0.35),
    "OW": ("AO", "AO", "UW", 0.35),
    "OY": ("AO", "AO", "IY", 0.35),
    "P": ("closure", "closure", "burst_lab", 0.65),
    "T": ("closure", "closure", "burst_alv", 0.65),
    "K": ("closure", "closure", "burst_vel", 0.65),
    "B": ("closure_v", "closure_v", "burst_lab_v", 0.6),
    "D": ("closure_v", "closure_v", "burst_alv_v", 0.6),
    "G": ("closure_v", "closure_v", "burst_vel_v", 0.6),
    "CH": ("closure", "SH", "SH", 0.35),
    "JH": ("closure_v", "SH_v", "SH_v", 0.35),
    "Z": _steady("S_v"),
    "ZH": _steady("SH_v"),
    "V": _steady("F_v"),
    "DH": _steady("TH_v"),
}

# Per phone: (share of phone tokens in %, mean duration in frames at speaking rate 1).
_PHONE_STATS: dict[str, tuple[float, float]] = {
    "AA": (1.8, 11), "AE": (3.0, 11), "AH": (10.0, 6), "AO": (1.3, 11), "AW": (0.6, 14),
    "AY": (1.7, 14), "B": (1.8, 5), "CH": (0.5, 9), "D": (4.3, 5), "DH": (3.0, 4),
    "EH": (3.0, 8), "ER": (2.5, 10), "EY": (1.8, 13), "F": (1.8, 9), "G": (0.9, 5),
    "HH": (1.6, 6), "IH": (6.0, 6), "IY": (3.5, 9), "JH": (0.6, 8), "K": (3.2, 6),
    "L": (4.5, 6), "M": (3.2, 7), "N": (7.0, 6), "NG": (1.0, 8), "OW": (1.3, 13),
    "OY": (0.1, 15), "P": (2.0, 6), "R": (5.0, 6), "S": (5.0, 10), "SH": (0.9, 11),
    "T": (7.0, 6), "TH": (0.5, 8), "UH": (0.5, 6), "UW": (1.5, 9), "V": (2.0, 5),
    "W": (2.2, 5), "Y": (0.8, 5), "Z": (3.0, 7), "ZH": (0.07, 8),
}  # fmt: skip
_VOWELS = frozenset(
    ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW")
)


@dataclass(frozen=True)
class _Speaker:
    number: int
    warp: float
    """Vocal-tract scale: every bump frequency is multiplied by it."""
    rate: float
    """Duration multiplier (> 1 is slower)."""
    tilt: float
    chapters: dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class _Language:
    """The phone sequence model (silence is not part of it: pauses are inserted apart)."""

    start: np.ndarray
    """Cumulative distribution of the first phone."""
    transitions: np.ndarray
    """Cumulative distribution of the next phone, one row per phone."""
    durations: np.ndarray
    """Mean duration of each phone in frames."""


def _mel_band(hz: float) -> float:
    mel = 2595.0 * np.log10(1.0 + hz / 700.0)
    return mel / _TOP_MEL * (NUM_BANDS + 1) - 1.0


def _spectrum(sound: _Sound, warp: float, tilt: float) -> np.ndarray:
    spectrum = sound.level + (sound.tilt + tilt) * _BANDS
    for hz, height, width in sound.bumps:
        centre = _mel_band(min(hz * warp, 7900.0))
        spectrum = spectrum + height * np.exp(-0.5 * ((_BANDS - centre) / width) ** 2)
    return spectrum


def _class_knots(speaker: _Speaker) -> tuple[np.ndarray, np.ndarray]:
    """Per class onset/middle/offset spectra (3, 40, bands) and middle positions (40,)."""
    sounds = np.stack([_spectrum(s, speaker.warp, speaker.tilt) for s in _SOUNDS.values()])
    indices = np.array([[_SOUND_INDEX[name] for name in _SHAPES[c][:3]] for c in CLASSES])
    middles = np.array([_SHAPES[c][3] for c in CLASSES])
    return sounds[indices.T], middles


def _make_language(rng: np.random.Generator) -> _Language:
    """A non-uniform unigram and a random sparse preference for some successors."""
    n = len(CLASSES)
    unigram = np.zeros(n)
    durations = np.zeros(n)
    for i, symbol in enumerate(CLASSES[1:], start=1):
        unigram[i], durations[i] = _PHONE_STATS[symbol]
    unigram /= unigram.sum()
    vowel = np.array([c in _VOWELS for c in CLASSES])
    alternation = np.where(vowel[:, None] != vowel[None, :], 3.0, 1.0)
    preference = np.ones((n, n))
    for i in range(1, n):
        favoured = rng.choice(np.arange(1, n), size=4, replace=False, p=unigram[1:])
        preference[i, favoured] *= rng.uniform(4.0, 10.0, size=4)
        banned = rng.random(n) < 0.25
        preference[i, banned] *= 0.02
    transitions = unigram[None, :] * alternation * preference
    np.fill_diagonal(transitions, 0.0)
    transitions /= transitions.sum(axis=1, keepdims=True)
    return _Language(np.cumsum(unigram), np.cumsum(transitions, axis=1), durations)


def _make_speakers(rng: np.random.Generator) -> tuple[list[_Speaker], _Speaker]:
    """Four seen speakers spread over a warp range, and one unseen outside it."""
    numbers = rng.choice(np.arange(10, 9990), size=_SEEN_SPEAKERS + 1, replace=False)
    seen_warps = np.linspace(0.92, 1.08, _SEEN_SPEAKERS) + rng.uniform(-0.01, 0.01, 4)
    unseen_warp = 1.0 + rng.choice([-1.0, 1.0]) * rng.uniform(0.12, 0.14)
    warps = [*rng.permutation(seen_warps), unseen_warp]
    speakers = []
    splits = (TRAIN_SPLIT, DEV_SPLIT, TEST_SPLIT)
    for number, warp in zip(numbers, warps, strict=True):
        drawn = 100_000 + rng.choice(
            900_000, size=(len(splits), _CHAPTERS_PER_SPEAKER), replace=False
        )
        chapters = {
            split: tuple(int(c) for c in row) for split, row in zip(splits, drawn, strict=True)
        }
        speakers.append(
            _Speaker(
                number=int(number),
                warp=float(warp),
                rate=float(rng.uniform(0.85, 1.15)),
                tilt=float(rng.uniform(-0.04, 0.04)),
                chapters=chapters,
            )
        )
    return speakers[:-1], speakers[-1]


def _sample_tokens(
    rng: np.random.Generator, language: _Language, rate: float
) -> tuple[np.ndarray, np.ndarray]:
    """Phone classes and durations of one utterance, silences included."""
    target = int(rng.integers(100, 560))
    lead, trail = rng.integers(12, 40, size=2)
    classes = [0]
    durations = [int(lead)]
    speech = 0
    row = language.start
    while speech < target - lead - trail:
        phone = min(int(np.searchsorted(row, rng.random() * row[-1])), len(row) - 1)
        mean = language.durations[phone] * rate
        duration = max(2, int(round(mean * rng.lognormal(0.0, 0.3))))
        classes.append(phone)
        durations.append(duration)
        speech += duration
        if rng.random() < 0.035:
            pause = int(rng.integers(6, 30))
            classes.append(0)
            durations.append(pause)
            speech += pause
        row = language.transitions[phone]
    if classes[-1] == 0:
        durations[-1] += int(trail)
    else:
        classes.append(0)
        durations.append(int(trail))
    return np.array(classes), np.array(durations)


def _synthesise(
    rng: np.random.Generator,
    language: _Language,
    speaker: _Speaker,
    knots: np.ndarray,
    middles: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """One utterance: features (T, bands) float32 and frame class indices (T,).

    `knots` and `middles` are the speaker's class spectra from `_class_knots`.
    """
    classes, durations = _sample_tokens(rng, language, speaker.rate * rng.uniform(0.9, 1.1))
    token = np.repeat(np.arange(len(classes)), durations)
    frame_class = classes[token]
    starts = np.cumsum(durations) - durations
    position = np.arange(len(token)) - starts[token]
    length = durations[token]
    progress = position / np.maximum(length - 1, 1)
    middle = middles[frame_class]
    rising = np.clip(progress / middle, 0.0, 1.0)[:, None]
    falling = np.clip((progress - middle) / (1.0 - middle), 0.0, 1.0)[:, None]
    onset, centre, offset = (k[frame_class] for k in knots)
    clean = np.where(
        (progress <= middle)[:, None],
        (1.0 - rising) * onset + rising * centre,
        (1.0 - falling) * centre + falling * offset,
    )

    # Coarticulation: the first and last frames of a phone lean towards its neighbours.
    previous = classes[np.maximum(token - 1, 0)]
    following = classes[np.minimum(token + 1, len(classes) - 1)]
    towards_previous = (0.45 * 0.5**position)[:, None]
    towards_following = (0.45 * 0.5 ** (length - 1 - position))[:, None]
    clean = (
        (1.0 - towards_previous - towards_following) * clean
        + towards_previous * knots[2][previous]
        + towards_following * knots[0][following]
    )
    token_colour = rng.normal(0.0, 0.9, size=(len(classes), len(_COSINES))) @ _COSINES
    clean = clean + token_colour[token]
    clean[1:-1] = 0.7 * clean[1:-1] + 0.15 * (clean[:-2] + clean[2:])

    # The channel: a smooth filter, a gain and a contrast scale in the log domain, then a
    # noise floor and per-frame noise.
    channel = rng.normal(0.0, 2.25, size=len(_COSINES)) @ _COSINES
    gain = rng.uniform(-4.0, 3.0)
    scale = rng.uniform(0.4, 1.1)
    floor = rng.uniform(-11.0, -6.0) + rng.normal(0.0, 0.4, size=len(_COSINES)) @ _COSINES
    features = np.logaddexp(scale * (clean + 3.0) - 3.0 + gain + channel, floor)
    features += rng.normal(0.0, rng.uniform(1.1, 1.9), size=features.shape)
    return features.astype(np.float32), frame_class


def _utterance_names(
    speakers: list[_Speaker], split: str, count: int
) -> list[tuple[str, _Speaker]]:
    """Names `SSSS-CCCCCC-UUU`, utterances dealt round-robin to speakers and chapters."""
    named = []
    taken: dict[tuple[int, int], int] = {}
    for i in range(count):
        speaker = speakers[i % len(speakers)]
        chapter = speaker.chapters[split][(i // len(speakers)) % _CHAPTERS_PER_SPEAKER]
        utterance = taken.get((speaker.number, chapter), 0)
        taken[(speaker.number, chapter)] = utterance + 1
        named.append((f"{speaker.number:04d}-{chapter:06d}-{utterance:03d}", speaker))
    return named


_SPLIT_SEEDS = {TRAIN_SPLIT: 2, DEV_SPLIT: 3, TEST_SPLIT: 4}  # each split's own random stream


def _write_split(
    root: pathlib.Path,
    split: str,
    speakers: list[_Speaker],
    count: int,
    language: _Language,
    seed: int,
) -> list[np.ndarray]:
    """Write one split's files; return its frame labels in sorted file-name order."""
    split_code = _SPLIT_SEEDS[split]
    (root / split / "mfcc").mkdir(parents=True)
    with_transcripts = split != TEST_SPLIT
    if with_transcripts:
        (root / split / "transcript").mkdir()
    labels = {}
    knots = {speaker.number: _class_knots(speaker) for speaker in speakers}
    for i, (name, speaker) in enumerate(_utterance_names(speakers, split, count)):
        features, frame_class = _synthesise(
            np.random.default_rng([seed, split_code, i]), language, speaker, *knots[speaker.number]
        )
        symbols = np.concatenate([[SOS], _CLASS_SYMBOLS[frame_class], [EOS]]).astype("<U5")
        np.save(root / split / "mfcc" / f"{name}.npy", features, allow_pickle=False)
        if with_transcripts:
            np.save(root / split / "transcript" / f"{name}.npy", symbols, allow_pickle=False)
        labels[name] = symbols[1:-1]
    return [labels[name] for name in sorted(labels)]


def write_demo_corpus(
    root: pathlib.Path,
    seed: int = 0,
    train_utterances: int = TRAIN_UTTERANCES,
    dev_utterances: int = DEV_UTTERANCES,
    test_utterances: int = TEST_UTTERANCES,
) -> None:
    """Write a synthetic corpus in the HW1P2 layout under `root` (created; must not exist).

    The same seed gives byte-identical files. Train and dev share four speakers; test has
    them plus one unseen speaker. `test_labels.csv` holds the symbol of every test frame.
    """
    root = pathlib.Path(root)
    root.mkdir(parents=True)
    language = _make_language(np.random.default_rng([seed, 0]))
    seen, unseen = _make_speakers(np.random.default_rng([seed, 1]))
    _write_split(root, TRAIN_SPLIT, seen, train_utterances, language, seed)
    _write_split(root, DEV_SPLIT, seen, dev_utterances, language, seed)
    test_labels = _write_split(root, TEST_SPLIT, [*seen, unseen], test_utterances, language, seed)
    symbols = np.concatenate(test_labels) if test_labels else np.array([], dtype="<U5")
    write_csv(root / "test_labels.csv", {"Id": np.arange(len(symbols)), "Label": symbols})


def default_cache_dir() -> pathlib.Path:
    """`$PHONEMLP_CACHE`, else `$XDG_CACHE_HOME/phonemlp`, else `~/.cache/phonemlp`."""
    if os.environ.get("PHONEMLP_CACHE"):
        return pathlib.Path(os.environ["PHONEMLP_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return pathlib.Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "phonemlp"
    return pathlib.Path.home() / ".cache" / "phonemlp"


def _remove_stale_temporaries(cache_dir: pathlib.Path) -> None:
    """Delete temp folders left by killed writers (untouched for an hour)."""
    now = time.time()
    for stale in cache_dir.glob(".demo-*.tmp-*"):
        try:
            if now - stale.stat().st_mtime > _STALE_TEMP_SECONDS:
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass


def demo_corpus(seed: int = 0, cache_dir: pathlib.Path | None = None) -> pathlib.Path:
    """Return the demo corpus folder for `seed`, generating it on first use.

    Generation goes into a temporary sibling that is renamed into place, so an existing
    folder is always complete; when two processes race, the loser uses the winner's.
    """
    cache_dir = pathlib.Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = cache_dir / f"demo-v{DEMO_VERSION}-seed{seed}"
    if final.is_dir():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(cache_dir)
    temporary = cache_dir / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        write_demo_corpus(temporary, seed, TRAIN_UTTERANCES, DEV_UTTERANCES, TEST_UTTERANCES)
        try:
            os.rename(temporary, final)
        except OSError:
            if not final.is_dir():
                raise
            return final
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    print(
        f"phonemlp: wrote the demo corpus to {final} ({TRAIN_UTTERANCES} train, "
        f"{DEV_UTTERANCES} dev, {TEST_UTTERANCES} test utterances)",
        file=sys.stderr,
    )
    return final
