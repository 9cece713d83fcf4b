"""What a run tells its user to change next: per-class and per-speaker dev accuracy, the
confusion matrix and the learning curves, written to `<run>/reports/` (and to wandb).

    per_class.csv         class, symbol, frames, correct, accuracy, most_confused_with
    confusion.csv         40 x 40 frame counts: rows the true class, columns the predicted one
    confusion.png         the row-normalised confusion matrix as a heat map
    learning_curves.png   loss and accuracy per epoch, train and dev
    per_speaker.csv       speaker (utterance name before the first '-'), frames, accuracy
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from phonemlp.atomic import write_csv
from phonemlp.checkpoint import load_checkpoint
from phonemlp.evaluate import logits_batches
from phonemlp.phonemes import CLASSES, NUM_CLASSES
from phonemlp.plots import draw

log = logging.getLogger("phonemlp")

REPORTS = "reports"


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """(classes, classes) int64 frame counts: rows the true class, columns the predicted one."""
    pairs = np.asarray(labels, dtype=np.int64) * NUM_CLASSES + np.asarray(predictions, np.int64)
    counts = np.bincount(pairs, minlength=NUM_CLASSES * NUM_CLASSES)
    return counts.reshape(NUM_CLASSES, NUM_CLASSES)


Table = dict[str, np.ndarray]
"""A table as its columns by name (written by phonemlp.atomic.write_csv)."""


def per_class_table(confusion: np.ndarray) -> Table:
    """One row per class: frames, correct, accuracy (NaN when absent), most confused with."""
    frames = confusion.sum(1)
    correct = np.diag(confusion)
    errors = confusion.copy()
    np.fill_diagonal(errors, 0)
    confused = np.asarray(CLASSES, dtype=object)[errors.argmax(1)]
    confused[errors.max(1) == 0] = ""
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(frames > 0, correct / frames, np.nan)
    return {
        "class": np.arange(NUM_CLASSES),
        "symbol": np.asarray(CLASSES),
        "frames": frames,
        "correct": correct,
        "accuracy": accuracy,
        "most_confused_with": confused,
    }


def speakers(names: list[str]) -> list[str]:
    """The speaker of each utterance: its name before the first '-' (LibriSpeech style)."""
    return [name.split("-", 1)[0] for name in names]


def per_speaker_table(
    labels: np.ndarray, predictions: np.ndarray, names: list[str], offsets: np.ndarray
) -> Table:
    """Frames and accuracy per speaker, speakers in sorted order."""
    speaker_names, speaker_of_utterance = np.unique(speakers(names), return_inverse=True)
    speaker = np.repeat(speaker_of_utterance, np.diff(offsets))
    frames = np.bincount(speaker, minlength=len(speaker_names))
    hits = (np.asarray(labels) == np.asarray(predictions)).astype(np.float64)
    correct = np.bincount(speaker, weights=hits, minlength=len(speaker_names))
    return {"speaker": speaker_names, "frames": frames, "accuracy": correct / np.maximum(frames, 1)}


def write_reports(
    run_dir: Path,
    history: list[dict[str, float]],
    labels: np.ndarray,
    predictions: np.ndarray,
    utterance_names: list[str] | None = None,
    offsets: np.ndarray | None = None,
) -> dict[str, Path]:
    """Write the reports into `run_dir/reports/` (each file atomically); returns them by name.

    `labels` and `predictions` are the dev frames' classes in frame order; with the utterance
    names and offsets (utterance u is frames offsets[u]:offsets[u+1]) per_speaker.csv is added.
    """
    if (utterance_names is None) != (offsets is None):
        raise ValueError("utterance_names and offsets go together")
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} differ")
    folder = Path(run_dir) / REPORTS
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        name: folder / name
        for name in ("per_class.csv", "confusion.csv", "confusion.png", "learning_curves.png")
    }
    confusion = confusion_matrix(labels, predictions)
    write_csv(paths["per_class.csv"], per_class_table(confusion))
    columns = {"true": CLASSES, **{symbol: confusion[:, i] for i, symbol in enumerate(CLASSES)}}
    write_csv(paths["confusion.csv"], columns)
    draw(
        confusion=(confusion.tolist(), str(paths["confusion.png"])),
        learning_curves=(history, str(paths["learning_curves.png"])),
    )
    if utterance_names is not None:
        paths["per_speaker.csv"] = folder / "per_speaker.csv"
        table = per_speaker_table(labels, predictions, utterance_names, offsets)
        write_csv(paths["per_speaker.csv"], table)
    return paths


def write_best_model_reports(
    run_dir: Path, trainer: Any, data: Any, predictions: torch.Tensor | None = None
) -> dict[str, Path]:
    """Write the reports of the run's best model on the dev split (`data`: TrainingData): from
    `predictions` (its dev predictions, when this process evaluated it), else by loading
    checkpoints/best.pt into the trainer's evaluated model and predicting every dev frame;
    returns {} (and says why) when there is no best.pt."""
    best = Path(run_dir) / "checkpoints" / "best.pt"
    history = trainer.progress.history
    if not best.is_file() or not history:
        log.info(f"reports: skipped ({'no epoch finished' if not history else f'no {best}'})")
        return {}
    if predictions is None:
        model = trainer.evaluated
        model.load_state_dict(load_checkpoint(best)["model"])
        batch_size = trainer.cfg.eval_batch_size
        batches = logits_batches(model, data.dev, batch_size, trainer.precision, desc="reports")
        predictions = torch.cat([logits.argmax(1).cpu() for logits, _ in batches])
    predictions = predictions.long().numpy()
    labels = data.dev.labels.cpu().numpy()
    return write_reports(run_dir, history, labels, predictions, data.dev_names, data.dev_offsets)
