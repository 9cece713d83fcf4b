"""phonemlp-predict: a Kaggle CSV (or dev accuracy) from one checkpoint or an ensemble.

phonemlp-predict ckpt=outputs/<run>/checkpoints/best.pt out=submission.csv
phonemlp-predict ckpt=[run_a,run_b] out=ensemble.csv label_format=index
phonemlp-predict ckpt=outputs/<run> split=dev
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, ListConfig

from phonemlp.atomic import atomic_path
from phonemlp.checkpoint import load_checkpoint
from phonemlp.data.corpus import Split
from phonemlp.data.splits import checkpoint_split
from phonemlp.data.windows import WindowedSplit
from phonemlp.errors import PhonemlpError
from phonemlp.evaluate import class_probabilities
from phonemlp.model import MLP, autocast_dtype, build_model
from phonemlp.phonemes import CLASSES, INDEX, NUM_CLASSES
from phonemlp.reports import per_speaker_table
from phonemlp.runtime import configure, resolve_device, resolve_precision
from phonemlp.smoothing import predict_classes

log = logging.getLogger("phonemlp")


def model_from_checkpoint(checkpoint: dict[str, Any]) -> MLP:
    """Rebuild the trained MLP from what the checkpoint holds (its model config and widths)."""
    from omegaconf import OmegaConf

    model_cfg = OmegaConf.create(checkpoint["config"]["model"])
    model_cfg.widths, model_cfg.param_budget = list(checkpoint["widths"]), None
    model = build_model(model_cfg, checkpoint["input_dim"], len(checkpoint["classes"]))
    model.load_state_dict(checkpoint["model"])
    return model


def ensemble_probabilities(
    checkpoints: list[dict[str, Any]],
    data: Split,
    device: torch.device,
    precision: str,
    batch_size: int,
    root: Path,
) -> torch.Tensor:
    """Mean class probabilities of the checkpoints' models over every frame of `data`."""
    total = torch.zeros((data.frames, NUM_CLASSES))
    batch_dtype = autocast_dtype(precision) or torch.float32
    for i, checkpoint in enumerate(checkpoints):
        # each model sees the split normalised as it was trained, from the prepared cache
        normalised = checkpoint_split(root, data.name, checkpoint, data.labels is not None)
        windows = WindowedSplit(normalised, checkpoint["context"], device, batch_dtype)
        model = model_from_checkpoint(checkpoint).to(device)
        total += class_probabilities(
            model, windows, batch_size, precision, desc=f"model {i + 1}/{len(checkpoints)}"
        )
        del windows, model, normalised
    return total / len(checkpoints)


def check_compatible(checkpoint: dict[str, Any], source: str, data: Split) -> None:
    if list(checkpoint["classes"]) != list(CLASSES):
        raise PhonemlpError(f"{source}: its class list differs from this phonemlp's 40 classes")
    if checkpoint["feature_dim"] != data.feature_dim:
        raise PhonemlpError(
            f"{source}: trained on {checkpoint['feature_dim']}-dim features but the "
            f"{data.name} split has {data.feature_dim}; predict on the corpus it was trained for"
        )


def write_submission(
    path: Path, predictions: np.ndarray, label_format: str, root: Path | None = None
) -> None:
    """The Kaggle CSV, one row per frame in order, written atomically. Its header is that
    of ROOT/sample_submission.csv when the data root has one, else the starter's id,label."""
    from phonemlp.submission import submission_header

    id_column, label_column = submission_header(root)
    labels = np.asarray(CLASSES)[predictions] if label_format == "symbol" else predictions
    frame = pd.DataFrame({id_column: np.arange(len(predictions)), label_column: labels})
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False)


def read_label_csv(path: Path, frames: int) -> np.ndarray | None:
    """The class of every frame in an id,label CSV (any case: Id,Label too; symbols or
    indices); None, with the reason logged, when it has no label column, not `frames` rows
    or an unknown label."""
    table = pd.read_csv(path, keep_default_na=False)
    column = next((name for name in table.columns if str(name).lower() == "label"), None)
    if column is None or len(table) != frames:
        log.info(f"{path}: not scored (it has {len(table):,} rows, the split {frames:,})")
        return None
    labels = table[column]
    if labels.dtype.kind in "iu":
        return labels.to_numpy()
    unknown = ~labels.isin(list(INDEX))
    if unknown.any():
        log.info(f"{path}: not scored (unknown label {labels[unknown].iloc[0]!r})")
        return None
    return labels.map(INDEX).to_numpy()


def answer_key(root: Path, frames: int) -> np.ndarray | None:
    """The true class of every test frame from `ROOT/test_labels.csv` (the demo and
    development corpora have one; Kaggle's data does not), None when absent or not matching."""
    path = root / "test_labels.csv"
    return read_label_csv(path, frames) if path.is_file() else None


def log_scores(
    split: str,
    labels: np.ndarray,
    predictions: np.ndarray,
    unsmoothed: np.ndarray,
    data: Split,
    smooth: str,
) -> float:
    """Log `<split> accuracy X` and the accuracy per speaker; returns the accuracy."""
    accuracy = float((predictions == labels).mean())
    note = ""
    if smooth != "none":
        note = f" (smooth={smooth}; without smoothing {float((unsmoothed == labels).mean()):.4f})"
    log.info(f"{split} accuracy {accuracy:.4f} over {data.frames:,} frames{note}")
    table = per_speaker_table(labels, predictions, data.names, data.offsets)
    speakers = pd.DataFrame(table).to_string(index=False, float_format=lambda v: f"{v:.4f}")
    log.info(f"{split} accuracy per speaker:\n{speakers}")
    return accuracy


def load_ensemble(cfg: DictConfig) -> tuple[list[str], list[dict[str, Any]]]:
    """The checkpoints `ckpt` names (one, or a list: an ensemble), refused before any work if
    the output folder is missing, Kaggle credentials are (submit=true), or the ensemble is over
    max_params."""
    sources = [str(c) for c in cfg.ckpt] if isinstance(cfg.ckpt, ListConfig) else [str(cfg.ckpt)]
    if not sources:
        raise PhonemlpError("ckpt=[] names no checkpoint")
    out = Path(cfg.out).expanduser()
    if cfg.split == "test" and not out.parent.is_dir():
        raise PhonemlpError(f"out={cfg.out}: folder {out.parent} does not exist; create it first")
    if cfg.submit:
        from phonemlp.kaggle_api import require_credentials

        if cfg.split != "test":
            raise PhonemlpError("submit=true uploads the test CSV; it needs split=test")
        require_credentials()  # before the predictions, not after them
    checkpoints = [load_checkpoint(source, name="best.pt") for source in sources]
    params = sum(c["params"] for c in checkpoints)
    if params > cfg.max_params:
        raise PhonemlpError(
            f"the ensemble has {params:,} parameters, over max_params={cfg.max_params:,}; "
            "use fewer or smaller models"
        )
    return sources, checkpoints


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Write the CSV (split=test) or score the dev split (split=dev); returns what it did:
    split, frames, models, accuracy (dev; test when the corpus has test_labels.csv), out."""
    sources, checkpoints = load_ensemble(cfg)
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    configure(device, cfg.threads)
    root = Path(cfg.data.root or checkpoints[0]["data_root"]).expanduser()
    split_name = cfg.data.test_split if cfg.split == "test" else cfg.data.dev_split
    data = checkpoint_split(root, split_name, checkpoints[0], labelled=cfg.split == "dev")
    for source, checkpoint in zip(sources, checkpoints, strict=True):
        check_compatible(checkpoint, source, data)
    params = sum(c["params"] for c in checkpoints)
    log.info(
        f"{len(checkpoints)} model(s), {params:,} parameters; {root / split_name}: "
        f"{len(data.names):,} utterances, {data.frames:,} frames"
    )
    probabilities = ensemble_probabilities(
        checkpoints, data, device, precision, cfg.batch_size, root
    )
    unsmoothed = probabilities.argmax(1).numpy()
    predictions = predict_classes(probabilities, data.offsets, cfg, checkpoints[0], root)
    result: dict[str, Any] = {"split": cfg.split, "frames": data.frames, "models": len(sources)}
    if cfg.split == "dev":
        accuracy = log_scores("dev", data.labels, predictions, unsmoothed, data, cfg.smooth)
        return {**result, "accuracy": accuracy, "out": None}
    out = Path(cfg.out).expanduser()
    write_submission(out, predictions, cfg.label_format, root)
    log.info(f"wrote {out} ({data.frames:,} rows, labels as {cfg.label_format})")
    truth = answer_key(root, data.frames)
    accuracy = None
    if truth is not None:
        accuracy = log_scores("test", truth, predictions, unsmoothed, data, cfg.smooth)
    if cfg.submit:
        from phonemlp.submission import submit_csv

        submit_csv(out, cfg.message, cfg.competition, data.frames, str(root / split_name))
    return {**result, "accuracy": accuracy, "out": str(out)}
