"""Posterior smoothing at prediction (median filter, HMM Viterbi) and test-set scoring."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from phonemlp.api import compose
from phonemlp.checkpoint import load_checkpoint, save_checkpoint
from phonemlp.data import labels as labels_module
from phonemlp.data.corpus import read_labels, read_split
from phonemlp.data.labels import LabelStatistics, count_labels
from phonemlp.errors import PhonemlpError
from phonemlp.phonemes import CLASSES
from phonemlp.prediction import predict
from phonemlp.smoothing import (
    hmm_decode,
    median_filter,
    viterbi,
)


def offsets_of(lengths: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


@pytest.mark.parametrize("chunk", [2, 3, 1 << 22])
def test_label_counts_stop_at_utterance_borders(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(labels_module, "_COUNT_CHUNK_FRAMES", chunk)  # chunk edges change nothing
    labels = np.array([0, 0, 1, 2, 2, 0])  # utterances [0 0 1] and [2 2 0]
    statistics = count_labels(labels, offsets_of([3, 3]), num_classes=3)
    expected = np.zeros((3, 3), dtype=np.int64)
    expected[0, 0] = expected[0, 1] = expected[2, 2] = expected[2, 0] = 1
    assert (statistics.transitions == expected).all()  # no 1 -> 2 across the border
    assert statistics.classes.tolist() == [3, 1, 2]


def test_median_filter_never_crosses_utterance_borders() -> None:
    # a two-frame utterance sure of class 0 between two utterances sure of class 1: a filter
    # of width 5 blind to the borders gives each of its frames three class-1 neighbours
    probabilities = torch.tensor([[0.1, 0.9]] * 3 + [[0.9, 0.1]] * 2 + [[0.1, 0.9]] * 3)
    filtered = median_filter(probabilities, offsets_of([3, 2, 3]), width=5)
    assert filtered.argmax(1).tolist() == [1, 1, 1, 0, 0, 1, 1, 1]
    assert torch.equal(filtered, probabilities)  # each utterance is constant: unchanged
    blind = median_filter(probabilities, offsets_of([8]), width=5)  # the same as one utterance
    assert blind.argmax(1).tolist() == [1] * 8


def test_median_filter_matches_a_per_utterance_reference() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 12, size=25).tolist()
    offsets = offsets_of(lengths)
    probabilities = torch.from_numpy(rng.random((offsets[-1], 6), dtype=np.float32))
    for width in (1, 3, 7):
        filtered = median_filter(probabilities, offsets, width).numpy()
        half = width // 2
        for u in range(len(lengths)):
            frames = probabilities[offsets[u] : offsets[u + 1]].numpy()
            padded = np.pad(frames, ((half, half), (0, 0)), mode="edge")
            windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=0)
            assert np.array_equal(filtered[offsets[u] : offsets[u + 1]], np.median(windows, -1))
    with pytest.raises(ValueError, match="odd"):
        median_filter(probabilities, offsets, 4)


def test_viterbi_finds_the_best_path_of_every_utterance() -> None:
    """Against exhaustive search, over utterances of different lengths decoded together."""
    rng = np.random.default_rng(1)
    lengths = [5, 1, 3, 6, 2, 6, 4]
    offsets = offsets_of(lengths)
    emissions = torch.from_numpy(rng.normal(size=(offsets[-1], 3)).astype(np.float32))
    transitions = torch.from_numpy(rng.normal(size=(3, 3)).astype(np.float32))
    path = viterbi(emissions, offsets, transitions)
    moves = transitions.double().numpy()
    for u, length in enumerate(lengths):
        scores = emissions[offsets[u] : offsets[u + 1]].double().numpy()

        def score(states: tuple[int, ...], scores: np.ndarray = scores) -> float:
            steps = zip(states[:-1], states[1:], strict=True)
            return scores[0, states[0]] + sum(
                moves[a, b] + scores[t + 1, b] for t, (a, b) in enumerate(steps)
            )

        best = max(itertools.product(range(3), repeat=length), key=score)
        assert tuple(path[offsets[u] : offsets[u + 1]]) == best, u


def test_hmm_corrects_a_single_frame_flip_only_with_transitions() -> None:
    # class 0 for five frames, a one-frame dip to class 1, class 0 again; flat priors
    probabilities = torch.tensor([[0.8, 0.2]] * 5 + [[0.4, 0.6]] + [[0.8, 0.2]] * 5)
    offsets = offsets_of([11])
    sticky = LabelStatistics(np.array([[900, 10], [10, 900]]), np.array([500, 500]))
    assert probabilities.argmax(1).tolist()[5] == 1
    assert hmm_decode(probabilities, offsets, sticky, weight=1.0).tolist() == [0] * 11
    unweighted = hmm_decode(probabilities, offsets, sticky, weight=0.0)
    assert unweighted.tolist() == probabilities.argmax(1).tolist()
    # the prior division: a frame at 0.55 / 0.45 goes to the class that is rarer in training
    skewed = LabelStatistics(np.array([[900, 10], [10, 900]]), np.array([900, 100]))
    close = torch.tensor([[0.55, 0.45]])
    assert hmm_decode(close, offsets_of([1]), skewed, weight=0.0).tolist() == [1]
    assert hmm_decode(close, offsets_of([1]), skewed, weight=0.0, prior_weight=0.0).tolist() == [0]
    # a real change of class (five frames) survives the same transitions
    held = torch.tensor([[0.8, 0.2]] * 4 + [[0.1, 0.9]] * 5 + [[0.8, 0.2]] * 4)
    expected = [0] * 4 + [1] * 5 + [0] * 4
    assert hmm_decode(held, offsets_of([13]), sticky).tolist() == expected


def test_settings_are_checked() -> None:
    compose("predict", ["ckpt=x.pt", "smooth=hmm", "smooth_width=5", "hmm_weight=1.0"])
    bad_settings = [["smooth=viterbi"], ["smooth_width=4"], ["smooth_width=0"], ["hmm_weight=-1"]]
    for bad in [*bad_settings, ["hmm_prior_weight=-0.5"]]:
        with pytest.raises(PhonemlpError, match=bad[0].split("=")[0]):
            compose("predict", ["ckpt=x.pt", *bad])


@pytest.fixture
def trained(tiny_run: tuple[Path, str]) -> Path:
    return tiny_run[0]


def test_checkpoint_holds_the_training_label_statistics(trained: Path, corpus: Path) -> None:
    checkpoint = load_checkpoint(trained, name="best.pt")
    labels, offsets = read_labels(corpus, "train-clean-100", progress=False)
    expected = count_labels(labels, offsets, len(CLASSES))
    stored = LabelStatistics.from_checkpoint(checkpoint)
    assert (stored.transitions == expected.transitions).all()
    assert (stored.classes == expected.classes).all()
    assert stored.transitions.sum() == len(labels) - (len(offsets) - 1)


def predict_in_process(caplog: pytest.LogCaptureFixture, *overrides: str) -> str:
    """phonemlp-predict's work in this process (no interpreter start-up); returns its log."""
    cfg = compose("predict", list(overrides))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="phonemlp"):
        predict(cfg)
    return caplog.text


@pytest.mark.parametrize("smooth", ["median", "hmm"])
def test_predict_with_smoothing_writes_the_full_csv(
    smooth: str, trained: Path, corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "submission.csv"
    printed = predict_in_process(caplog, f"ckpt={trained}", f"out={out}", f"smooth={smooth}")
    table = pd.read_csv(out, keep_default_na=False)
    frames = read_split(corpus, "test-clean", labelled=False, progress=False).frames
    assert list(table.columns) == ["id", "label"]  # the starter's header (no sample CSV here)
    assert table["id"].tolist() == list(range(frames))
    assert set(table["label"]) <= set(CLASSES)
    truth = pd.read_csv(corpus / "test_labels.csv", keep_default_na=False)["Label"]
    accuracy = (table["label"] == truth).mean()
    line = next(x for x in printed.splitlines() if "test accuracy " in x)
    reported = line[line.index("test accuracy ") :]
    assert float(reported.split()[2]) == pytest.approx(accuracy, abs=1e-4)
    assert f"smooth={smooth}; without smoothing" in line
    assert "test accuracy per speaker" in printed
    if smooth == "hmm":
        assert "transitions and priors from the checkpoint" in printed


def test_hmm_counts_the_training_transcripts_for_an_older_checkpoint(
    trained: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoint = load_checkpoint(trained, name="best.pt")
    del checkpoint["transition_counts"], checkpoint["class_counts"]
    older = tmp_path / "older.pt"
    save_checkpoint(older, {k: v for k, v in checkpoint.items() if k not in ("format", "version")})
    accuracies = {}
    for name, source in (("stored", trained), ("counted", older)):
        printed = predict_in_process(caplog, f"ckpt={source}", "split=dev", "smooth=hmm")
        accuracies[name] = next(x for x in printed.splitlines() if "dev accuracy " in x)
        assert "dev accuracy per speaker" in printed
    assert "train-clean-100/transcript" in printed
    assert (
        accuracies["stored"].split("dev accuracy ")[1]
        == (accuracies["counted"].split("dev accuracy ")[1])
    )


def test_a_bad_smoothing_setting_is_refused_by_name(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(PhonemlpError, match="smooth_width=4 must be a positive odd integer"):
        predict_in_process(caplog, "ckpt=none.pt", "smooth=median", "smooth_width=4")
    with pytest.raises(PhonemlpError, match="smooth='viterbi' is not one of none, median, hmm"):
        predict_in_process(caplog, "ckpt=none.pt", "smooth=viterbi")
