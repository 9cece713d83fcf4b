"""Posterior smoothing over time at prediction: a median filter, or an HMM Viterbi pass.

Both decide a frame from its neighbours' posteriors too, which goes beyond an MLP-only
frame classifier (README: "Posterior smoothing"). Neither ever looks across an utterance
border. The HMM has one state per class: transition log-probabilities counted from the
training labels (add-one smoothed; the self-transitions encode phone durations) and
emission scores log posterior - log prior (the hybrid-HMM scaled likelihood; a weight on the
prior, hmm_prior_weight, can soften it).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from phonemlp.data.corpus import read_labels
from phonemlp.data.labels import LabelStatistics, count_labels
from phonemlp.phonemes import NUM_CLASSES

log = logging.getLogger("phonemlp")

MODES = ("none", "median", "hmm")
_MEDIAN_CHUNK_FRAMES = 1 << 17  # frames filtered at once (width copies of their posteriors)
_VITERBI_GROUP_FRAMES = 1 << 20  # utterances decoded together: at most this many padded frames


def label_statistics(
    checkpoint: dict[str, Any], root: Path, train_split: str, num_classes: int
) -> tuple[LabelStatistics, str]:
    """The checkpoint's stored statistics, else counted from `root/train_split`'s transcripts;
    with a word on where they came from."""
    stored = LabelStatistics.from_checkpoint(checkpoint)
    if stored is not None:
        return stored, "the checkpoint"
    labels, offsets = read_labels(root, train_split)
    return count_labels(labels, offsets, num_classes), f"{root / train_split / 'transcript'}"


def log_transitions(statistics: LabelStatistics) -> torch.Tensor:
    """(from, to) float32 log-probabilities, add-one smoothed so none is impossible."""
    counts = torch.from_numpy(statistics.transitions).double() + 1.0
    return (counts / counts.sum(1, keepdim=True)).log().float()


def log_priors(statistics: LabelStatistics) -> torch.Tensor:
    """(classes,) float32 log class priors, add-one smoothed."""
    counts = torch.from_numpy(statistics.classes).double() + 1.0
    return (counts / counts.sum()).log().float()


def median_filter(probabilities: torch.Tensor, offsets: np.ndarray, width: int) -> torch.Tensor:
    """Each class's posterior median-filtered along time inside its utterance.

    A window reaching past an utterance's first or last frame repeats that frame (edge
    padding), so no frame ever sees another utterance.
    """
    if width < 1 or width % 2 == 0:
        raise ValueError(f"the median width must be a positive odd number, not {width}")
    frames = probabilities.shape[0]
    lengths = np.diff(offsets)
    first = np.repeat(np.asarray(offsets[:-1], dtype=np.int64), lengths)
    last = np.repeat(np.asarray(offsets[1:], dtype=np.int64) - 1, lengths)
    filtered = torch.empty_like(probabilities)
    for start in range(0, frames, _MEDIAN_CHUNK_FRAMES):
        rows = np.arange(start, min(start + _MEDIAN_CHUNK_FRAMES, frames), dtype=np.int64)
        shifted = [
            probabilities.index_select(
                0, torch.from_numpy(np.clip(rows + step, first[rows], last[rows]))
            )
            for step in range(-(width // 2), width // 2 + 1)
        ]
        filtered[rows[0] : rows[-1] + 1] = _middle(shifted)
    return filtered


def _middle(values: list[torch.Tensor]) -> torch.Tensor:
    """The elementwise median of an odd number of same-shape tensors: an odd-even
    transposition sorting network (elementwise min/max, several times faster than
    torch.median over a window axis)."""
    values = list(values)
    for sweep in range(len(values)):
        for i in range(sweep % 2, len(values) - 1, 2):
            low = torch.minimum(values[i], values[i + 1])
            values[i + 1] = torch.maximum(values[i], values[i + 1])
            values[i] = low
    return values[len(values) // 2]


def viterbi(emissions: torch.Tensor, offsets: np.ndarray, transitions: torch.Tensor) -> np.ndarray:
    """The best state sequence of every utterance: (frames,) int64 states.

    `emissions` (frames, states) are per-frame log scores, `transitions` (from, to) log scores
    added at every step, the start is uniform; it runs on the emissions' device. Utterances
    are decoded together, longest first within a group, so that the ones still running at
    step t are a prefix of the group: each step is one (running, states, states) tensor
    operation, never a Python loop over states or utterances.
    """
    device = emissions.device
    emissions = emissions.float()
    into = transitions.float().to(device).T.contiguous()  # (to, from): reduce the last dim
    lengths = np.diff(offsets).astype(np.int64)
    order = np.argsort(-lengths, kind="stable")
    order = order[lengths[order] > 0]
    path = np.empty(emissions.shape[0], dtype=np.int64)
    begin = 0
    with _one_cpu_thread(device):
        while begin < len(order):
            longest = int(lengths[order[begin]])
            group = order[begin : begin + max(1, _VITERBI_GROUP_FRAMES // longest)]
            begin += len(group)
            starts = np.asarray(offsets[group], dtype=np.int64)
            decoded = _viterbi_group(emissions, starts, lengths[group], into)
            frames = starts[:, None] + np.arange(longest)
            valid = np.arange(longest) < lengths[group][:, None]
            path[frames[valid]] = decoded[valid]
    return path


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    """On the CPU, one torch thread: a Viterbi step is too small to share among threads, and
    handing it round costs more than it saves (several times more on a busy machine)."""
    if device.type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _viterbi_group(
    emissions: torch.Tensor, starts: np.ndarray, lengths: np.ndarray, into: torch.Tensor
) -> np.ndarray:
    """Viterbi over utterances sorted longest first: (utterances, longest) states."""
    device = emissions.device
    utterances, longest, states = len(lengths), int(lengths[0]), into.shape[0]
    steps = np.arange(longest)
    index = starts[:, None] + np.minimum(steps, lengths[:, None] - 1)
    scores = emissions[torch.from_numpy(index).to(device)]  # (utterances, longest, states)
    running = np.searchsorted(-lengths, -steps, side="left").tolist()  # rows with length > t
    pointer_type = torch.uint8 if states <= 256 else torch.int64
    back = torch.zeros((utterances, longest, states), dtype=pointer_type, device=device)
    delta = scores[:, 0].clone()
    for t in range(1, longest):
        n = running[t]
        best, argbest = (delta[:n].unsqueeze(1) + into).max(dim=2)
        back[:n, t] = argbest.to(pointer_type)
        delta[:n] = best + scores[:n, t]
    state = delta.argmax(1)  # every row stopped updating at its own last frame
    decoded = torch.empty((utterances, longest), dtype=torch.int64, device=device)
    decoded[:, longest - 1] = state
    for t in range(longest - 2, -1, -1):
        n = running[t + 1]  # rows whose frame t+1 exists follow its back-pointer
        state[:n] = back[:n, t + 1].gather(1, state[:n, None]).squeeze(1).long()
        decoded[:, t] = state
    return decoded.cpu().numpy()


def hmm_decode(
    probabilities: torch.Tensor,
    offsets: np.ndarray,
    statistics: LabelStatistics,
    weight: float = 1.0,
    prior_weight: float = 1.0,
) -> np.ndarray:
    """Viterbi classes with emissions log posterior - `prior_weight` x log prior and `weight` x
    transitions, computed on the probabilities' device."""
    device = probabilities.device
    priors = log_priors(statistics).to(device)
    emissions = probabilities.float().clamp_min(1e-12).log() - prior_weight * priors
    return viterbi(emissions, offsets, weight * log_transitions(statistics))


def predict_classes(
    probabilities: torch.Tensor, offsets: np.ndarray, cfg: Any, checkpoint: dict[str, Any],
    root: Path,
) -> np.ndarray:  # fmt: skip
    """phonemlp-predict's decisions with `cfg.smooth` (and smooth_width, hmm_weight,
    hmm_prior_weight); the HMM statistics come from the checkpoint (or, for one written before
    they were stored, its training transcripts)."""
    if cfg.smooth == "hmm":
        train_split = checkpoint["config"]["data"]["train_split"]
        statistics, source = label_statistics(checkpoint, root, train_split, NUM_CLASSES)
        log.info(
            f"smooth=hmm: transitions and priors from {source}; hmm_weight={cfg.hmm_weight}, "
            f"hmm_prior_weight={cfg.hmm_prior_weight}"
        )
        return hmm_decode(probabilities, offsets, statistics, cfg.hmm_weight, cfg.hmm_prior_weight)
    if cfg.smooth == "median":
        log.info(f"smooth=median: posteriors median-filtered over {cfg.smooth_width} frames")
        return median_filter(probabilities, offsets, cfg.smooth_width).argmax(1).numpy()
    return probabilities.argmax(1).numpy()
