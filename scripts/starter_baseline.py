"""Reference HW1P2 "starter notebook" training loop, kept as a baseline for phonemlp.

This reproduces the pipeline of the typical CMU 11-785 HW1P2 starter notebook: a
``torch.utils.data.Dataset`` that concatenates every utterance of a split (each one
cepstral-mean/variance normalised), pads the concatenation with ``context`` zero frames
at both ends and returns one flattened context window per ``__getitem__`` call, a
``DataLoader`` with worker processes, an MLP (Linear -> BatchNorm1d -> activation ->
Dropout per hidden layer), AdamW, cross-entropy and per-epoch cosine annealing.

It exists so that phonemlp's speed and accuracy can be compared against what a student
would get from the starter. It deliberately keeps the per-frame Dataset + DataLoader
pipeline that phonemlp replaces with batched index arithmetic on one padded array, and
it does not import phonemlp. As in the starter, windows at utterance borders see frames
of the neighbouring utterances ("concatenation padding").

The last line printed to stdout starts with ``RESULT `` followed by a JSON object with
the accuracies, timings and throughput.

Usage:
    python scripts/starter_baseline.py ROOT --context 20 --epochs 2 \
        --widths 1024 1024 1024 --batch-size 1024 --out starter_submission.csv

Development tooling, not part of the installed package: `phonemlp-bench` (from a source
checkout) runs this loop, in-process and as a whole process, to measure phonemlp's speed-up
over it, and scripts/budget_ablation.py trains it as the time budget's reference.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

# fmt: off
SYMBOLS: list[str] = [
    "[SIL]", "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY",
    "F", "G", "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S",
    "SH", "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH", "[SOS]", "[EOS]",
]
# fmt: on
PHONEMES: list[str] = SYMBOLS[:40]
PHONEME_TO_INDEX: dict[str, int] = {symbol: i for i, symbol in enumerate(PHONEMES)}

TRAIN_SPLIT = "train-clean-100"
DEV_SPLIT = "dev-clean"
TEST_SPLIT = "test-clean"

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "mish": nn.Mish,
}


def seconds_since_process_start(fallback_start: float) -> float:
    """Wall time since this process started (interpreter and imports included).

    Read from /proc on Linux; elsewhere, time since ``fallback_start`` (a perf_counter).
    """
    try:
        stat = Path("/proc/self/stat").read_text()
        uptime_s = float(Path("/proc/uptime").read_text().split()[0])
    except OSError:
        return time.perf_counter() - fallback_start
    # Field 22 (starttime, in clock ticks since boot) is the 20th after the ")" of comm.
    start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
    return uptime_s - start_ticks / os.sysconf("SC_CLK_TCK")


def normalise_utterance(mfcc: np.ndarray) -> np.ndarray:
    """Cepstral mean and variance normalisation over the frames of one utterance."""
    mean = mfcc.mean(axis=0, keepdims=True)
    std = mfcc.std(axis=0, keepdims=True)
    return (mfcc - mean) / (std + 1e-8)


def load_split(root: Path, split: str, with_labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Read every utterance of a split in sorted file-name order and concatenate them.

    Returns the normalised frames (N, D) as float32 and, if requested, the int64
    labels (N,).
    """
    mfcc_dir = root / split / "mfcc"
    names = sorted(path.name for path in mfcc_dir.glob("*.npy"))
    if not names:
        raise FileNotFoundError(f"no .npy files in {mfcc_dir}")
    features: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for name in tqdm(names, desc=f"load {split}", leave=False):
        mfcc = np.load(mfcc_dir / name).astype(np.float32)
        features.append(normalise_utterance(mfcc))
        if with_labels:
            transcript = np.load(root / split / "transcript" / name)
            symbols = [s for s in transcript.tolist() if s not in ("[SOS]", "[EOS]")]
            if len(symbols) != len(mfcc):
                raise ValueError(f"{split}/{name}: {len(mfcc)} frames but {len(symbols)} labels")
            labels.append(np.array([PHONEME_TO_INDEX[s] for s in symbols], np.int64))
    frames = np.concatenate(features).astype(np.float32)
    return frames, (np.concatenate(labels) if with_labels else None)


class AudioDataset(Dataset):
    """Labelled frames of one split; item i is the flattened context window of frame i."""

    def __init__(self, root: Path, split: str, context: int) -> None:
        frames, labels = load_split(root, split, with_labels=True)
        assert labels is not None
        self.context = context
        self.length = len(frames)
        self.feature_dim = frames.shape[1]
        self.frames = np.pad(frames, ((context, context), (0, 0)))
        self.labels = labels

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        # Frame `index` sits at row `index + context` of the padded array.
        window = self.frames[index : index + 2 * self.context + 1]
        return torch.from_numpy(window.reshape(-1)), int(self.labels[index])


class AudioTestDataset(Dataset):
    """Unlabelled test frames; item i is the flattened context window of frame i."""

    def __init__(self, root: Path, split: str, context: int) -> None:
        frames, _ = load_split(root, split, with_labels=False)
        self.context = context
        self.length = len(frames)
        self.feature_dim = frames.shape[1]
        self.frames = np.pad(frames, ((context, context), (0, 0)))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        window = self.frames[index : index + 2 * self.context + 1]
        return torch.from_numpy(window.reshape(-1))


def build_mlp(
    input_size: int,
    widths: list[int],
    num_classes: int,
    activation: str,
    batchnorm: bool,
    dropout: float,
) -> nn.Sequential:
    """Linear -> [BatchNorm1d] -> activation -> [Dropout] per hidden layer, then a classifier."""
    layers: list[nn.Module] = []
    previous = input_size
    for width in widths:
        layers.append(nn.Linear(previous, width))
        if batchnorm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        previous = width
    layers.append(nn.Linear(previous, num_classes))
    return nn.Sequential(*layers)


def train_epoch(
    model: nn.Module,
    loader: DataLoader,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    bf16: bool,
    limit_batches: int | None,
    description: str,
) -> dict[str, float]:
    """One pass over the training loader; returns loss, accuracy, frames and seconds."""
    model.train()
    total_loss = 0.0
    correct = 0
    seen = 0
    start = time.perf_counter()
    total = len(loader) if limit_batches is None else min(limit_batches, len(loader))
    bar = tqdm(loader, total=total, desc=description, leave=False)
    for batch_index, (inputs, targets) in enumerate(bar):
        if limit_batches is not None and batch_index >= limit_batches:
            break
        inputs = inputs.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(inputs)
            loss = criterion(logits, targets)
        loss.backward()
        optimizer.step()

        count = targets.shape[0]
        total_loss += loss.item() * count
        correct += int((logits.argmax(dim=1) == targets).sum().item())
        seen += count
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}")
    bar.close()
    seconds = time.perf_counter() - start
    return {
        "loss": total_loss / max(seen, 1),
        "acc": correct / max(seen, 1),
        "frames": seen,
        "seconds": seconds,
    }


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    criterion: nn.Module,
    device: torch.device,
    bf16: bool,
) -> dict[str, float]:
    """Loss and frame accuracy over a labelled loader."""
    model.eval()
    total_loss = 0.0
    correct = 0
    seen = 0
    start = time.perf_counter()
    for inputs, targets in tqdm(loader, desc="dev", leave=False):
        inputs = inputs.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(inputs)
            loss = criterion(logits, targets)
        count = targets.shape[0]
        total_loss += loss.item() * count
        correct += int((logits.argmax(dim=1) == targets).sum().item())
        seen += count
    return {
        "loss": total_loss / max(seen, 1),
        "acc": correct / max(seen, 1),
        "seconds": time.perf_counter() - start,
    }


@torch.inference_mode()
def predict(model: nn.Module, loader: DataLoader, device: torch.device, bf16: bool) -> np.ndarray:
    """Predicted class index of every frame, in loader order."""
    model.eval()
    predictions: list[np.ndarray] = []
    for inputs in tqdm(loader, desc="test", leave=False):
        inputs = inputs.to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(inputs)
        predictions.append(logits.argmax(dim=1).cpu().numpy())
    return np.concatenate(predictions)


def test_accuracy(labels_path: Path, predictions: np.ndarray) -> float:
    """Accuracy against an `Id,Label` CSV whose labels are symbols or integer indices."""
    reference = pd.read_csv(labels_path).sort_values("Id")
    if len(reference) != len(predictions):
        raise ValueError(f"{labels_path}: {len(reference)} rows but {len(predictions)} predictions")
    labels = reference["Label"]
    if pd.api.types.is_integer_dtype(labels):
        expected = labels.to_numpy()
    else:
        expected = labels.map(PHONEME_TO_INDEX).to_numpy()
    return float((expected == predictions).mean())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="HW1P2 starter-notebook baseline (Dataset + DataLoader + MLP)."
    )
    parser.add_argument("root", type=Path, help="data root with the split folders")
    parser.add_argument("--context", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--widths", type=int, nargs="*", default=[1024, 1024, 1024])
    parser.add_argument("--activation", choices=sorted(ACTIVATIONS), default="gelu")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument(
        "--no-batchnorm", dest="batchnorm", action="store_false", help="drop BatchNorm1d"
    )
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--bf16", action="store_true", help="torch.autocast to bfloat16")
    parser.add_argument("--seed", type=int, default=11785)
    parser.add_argument(
        "--limit-batches",
        type=int,
        default=None,
        help="stop each training epoch after this many batches",
    )
    parser.add_argument("--out", type=Path, default=Path("starter_submission.csv"))
    parser.add_argument(
        "--no-test", dest="test", action="store_false", help="skip the test split (no CSV)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write RESULT here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    main_start = time.perf_counter()
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    load_start = time.perf_counter()
    train_data = AudioDataset(args.root, TRAIN_SPLIT, args.context)
    dev_data = AudioDataset(args.root, DEV_SPLIT, args.context)
    test_data = AudioTestDataset(args.root, TEST_SPLIT, args.context) if args.test else []
    load_s = time.perf_counter() - load_start
    print(
        f"loaded in {load_s:.1f}s: train {len(train_data):,} dev {len(dev_data):,} "
        f"test {len(test_data):,} frames, {train_data.feature_dim} dims, device {device}, "
        f"{torch.get_num_threads()} threads"
    )

    pin_memory = device.type == "cuda"
    loader_options = {
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "pin_memory": pin_memory,
    }
    train_loader = DataLoader(train_data, shuffle=True, **loader_options)
    dev_loader = DataLoader(dev_data, shuffle=False, **loader_options)
    test_loader = DataLoader(test_data, shuffle=False, **loader_options) if args.test else None

    input_size = (2 * args.context + 1) * train_data.feature_dim
    model = build_mlp(
        input_size,
        args.widths,
        len(PHONEMES),
        args.activation,
        args.batchnorm,
        args.dropout,
    ).to(device)
    params = sum(p.numel() for p in model.parameters())
    print(model)
    print(f"parameters: {params:,}")

    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)

    per_epoch: list[dict[str, float]] = []
    train_s = 0.0
    eval_s = 0.0
    train_frames = 0
    dev_acc: float | None = None
    for epoch in range(1, args.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        train = train_epoch(
            model,
            train_loader,
            criterion,
            optimizer,
            device,
            args.bf16,
            args.limit_batches,
            f"epoch {epoch}/{args.epochs}",
        )
        scheduler.step()
        dev = evaluate(model, dev_loader, criterion, device, args.bf16)
        train_s += train["seconds"]
        eval_s += dev["seconds"]
        train_frames += int(train["frames"])
        dev_acc = dev["acc"]
        frames_per_s = train["frames"] / train["seconds"]
        per_epoch.append(
            {
                "epoch": epoch,
                "lr": lr,
                "train_loss": train["loss"],
                "train_acc": train["acc"],
                "dev_loss": dev["loss"],
                "dev_acc": dev["acc"],
                "train_s": train["seconds"],
                "eval_s": dev["seconds"],
                "train_frames": int(train["frames"]),
                "train_frames_per_s": frames_per_s,
            }
        )
        print(
            f"epoch {epoch}/{args.epochs} lr {lr:.2e} | "
            f"train loss {train['loss']:.4f} acc {train['acc']:.4f} | "
            f"dev loss {dev['loss']:.4f} acc {dev['acc']:.4f} | "
            f"{train['seconds']:.1f}s train, {dev['seconds']:.1f}s dev, "
            f"{frames_per_s:,.0f} train frames/s"
        )

    predict_s = 0.0
    test_acc = None
    if test_loader is not None:
        predict_start = time.perf_counter()
        predictions = predict(model, test_loader, device, args.bf16)
        predict_s = time.perf_counter() - predict_start
        eval_s += predict_s
        pd.DataFrame(
            {"Id": np.arange(len(predictions)), "Label": np.array(PHONEMES)[predictions]}
        ).to_csv(args.out, index=False)
        print(f"wrote {len(predictions):,} predictions to {args.out}")
        labels_path = args.root / "test_labels.csv"
        test_acc = test_accuracy(labels_path, predictions) if labels_path.exists() else None
        if test_acc is not None:
            print(f"test acc {test_acc:.4f}")

    result = {
        "dev_acc": dev_acc,
        "test_acc": test_acc,
        "wall_s": seconds_since_process_start(main_start),
        "load_s": load_s,
        "train_s": train_s,
        "eval_s": eval_s,
        "predict_s": predict_s,
        "train_frames_per_s": train_frames / train_s if train_s > 0 else None,
        "params": params,
        "epochs": args.epochs,
        "context": args.context,
        "widths": args.widths,
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "threads": torch.get_num_threads(),
        "bf16": args.bf16,
        "device": str(device),
        "per_epoch": per_epoch,
    }
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
