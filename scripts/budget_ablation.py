"""The ablation behind `experiment=best`: phonemlp variants against the starter loop at equal time.

    python scripts/budget_ablation.py ../shared/corpora/festival-small --out ablation-festival
    python scripts/budget_ablation.py ROOT --budget 43 --variants best best_ctx20 --seeds 1 2

First the starter-style loop (3x1024, context 20, 2 epochs, fp32, a per-frame DataLoader) is
trained on ROOT; its training seconds become the time budget (unless --budget gives one). Then
every variant runs `phonemlp-train experiment=best time_budget_s=BUDGET <overrides>` and
`phonemlp-predict` on the test split. Every submission is scored against ROOT/test_labels.csv,
overall and per speaker (utterance name before the first '-'); the speakers of the test split
that have no utterance in the train split are "unseen". Writes ablation.csv and ablation.md in
--out and prints the Markdown table. Runs one job at a time: the budget is wall-clock time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from phonemlp.atomic import write_text
from phonemlp.phonemes import INDEX

ALL_AUGMENTATIONS = [  # time and frequency masks and mel warp, as the first preset had them
    "augment.freq_mask_prob=0.5",
    "augment.freq_mask_max=4",
    "augment.warp_prob=0.5",
    "augment.warp_max=0.08",
    "augment.time_mask_prob=0.3",
    "augment.time_mask_max=5",
]

# name -> overrides on top of `experiment=best`; "best" itself is the preset.
VARIANTS: dict[str, list[str]] = {
    "best": [],
    "ctx20": ["context=20"],
    "ctx5": ["context=5"],
    "ctx15": ["context=15"],
    "no_augment": ["augment.freq_mask_prob=0", "augment.warp_prob=0", "augment.time_mask_prob=0"],
    "no_warp": ["augment.warp_prob=0"],
    "no_freq_mask": ["augment.freq_mask_prob=0"],
    "no_time_mask": ["augment.time_mask_prob=0"],
    "warp_0.15": ["augment.warp_max=0.15", "augment.warp_prob=0.8"],
    "no_ema": ["ema=0"],
    "no_label_smoothing": ["label_smoothing=0"],
    "dropout_0.3": ["model.dropout=0.3"],
    "dropout_0": ["model.dropout=0"],
    "cylinder": ["model=cylinder", "model.depth=4", "model.param_budget=4M"],
    "params_1.5M": ["model.param_budget=1.5M"],
    "params_8M": ["model.param_budget=8M"],
    "lr_1e-3": ["optimizer.lr=0.001"],
    "lr_4e-3": ["optimizer.lr=0.004"],
    "batch_2048": ["batch_size=2048"],
    "normalize_global": ["data.normalize=global"],
    "ctx10": ["context=10"],
    "warp": ["augment.warp_prob=0.5", "augment.warp_max=0.08"],
    "warp_strong": ["augment.warp_prob=0.8", "augment.warp_max=0.15"],
    "warp_0.12": ["augment.warp_prob=0.8", "augment.warp_max=0.12"],
    "warp_always": ["augment.warp_prob=1.0", "augment.warp_max=0.12"],
    "freq_mask": ["augment.freq_mask_prob=0.5", "augment.freq_mask_max=4"],
    "time_mask": ["augment.time_mask_prob=0.3", "augment.time_mask_max=5"],
    "ctx7": ["context=7"],
    "ema_0.999": ["ema=0.999"],
    "ls_0.1": ["label_smoothing=0.1"],
    "ema_0.99": ["ema=0.99"],
    "aug": ALL_AUGMENTATIONS,
    "adamw_2e-3": [
        "optimizer.lr=0.002",
        "optimizer.weight_decay=0.05",
        "no_decay_norm_bias=true",
        "scheduler.warmup_epochs=0.3",
    ],
    "dropout_0.05": ["model.dropout=0.05"],
    "dropout_0.1": ["model.dropout=0.1"],
    "preset_v1": [  # the first `best` preset: a 4 M diamond at context 30, heavily regularised
        "model=diamond",
        "model.depth=4",
        "model.param_budget=4M",
        "model.dropout=0.15",
        "context=30",
        "optimizer.lr=0.002",
        "optimizer.weight_decay=0.05",
        "no_decay_norm_bias=true",
        "scheduler.warmup_epochs=0.3",
        "scheduler.min_lr_ratio=0.02",
        "label_smoothing=0.1",
        "ema=0.99",
        *ALL_AUGMENTATIONS,
    ],
    "starter_model": [  # the starter's model, optimiser and schedule, phonemlp's loop
        "model=cylinder",
        "model.depth=3",
        "model.width=1024",
        "model.param_budget=null",
        "model.dropout=0.1",
        "context=20",
        "optimizer.lr=0.001",
        "optimizer.weight_decay=0.01",
        "no_decay_norm_bias=false",
        "scheduler.warmup_epochs=0",
        "label_smoothing=0",
        "ema=0",
        "augment.freq_mask_prob=0",
        "augment.warp_prob=0",
        "augment.time_mask_prob=0",
    ],
}


def overrides_of(name: str) -> list[str]:
    """The overrides of a variant; `a+b` is a's overrides, then b's."""
    unknown = [part for part in name.split("+") if part not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant {unknown[0]!r}; known: {', '.join(VARIANTS)}")
    return [override for part in name.split("+") for override in VARIANTS[part]]


def utterances(root: Path, split: str) -> tuple[list[str], np.ndarray]:
    """Utterance names (sorted, as the CSV orders them) and frame offsets of a split."""
    files = sorted((root / split / "mfcc").glob("*.npy"))
    lengths = [np.load(path, mmap_mode="r").shape[0] for path in files]
    return [path.stem for path in files], np.concatenate([[0], np.cumsum(lengths)])


def score(csv: Path, truth: np.ndarray, names: list[str], offsets: np.ndarray) -> dict[str, float]:
    """Accuracy of a submission overall and per speaker."""
    labels = pd.read_csv(csv, keep_default_na=False)["Label"]
    predicted = labels.to_numpy() if labels.dtype.kind in "iu" else labels.map(INDEX).to_numpy()
    if len(predicted) != len(truth):
        raise SystemExit(f"{csv}: {len(predicted)} rows, the test split has {len(truth)} frames")
    hits = predicted == truth
    out = {"test": float(hits.mean())}
    for name, start, end in zip(names, offsets[:-1], offsets[1:], strict=True):
        speaker = name.split("-", 1)[0]
        out.setdefault(f"_{speaker}", []).append(hits[start:end])  # type: ignore[arg-type]
    for key in [k for k in out if k.startswith("_")]:
        out[key[1:]] = float(np.concatenate(out.pop(key)).mean())  # type: ignore[arg-type]
    return out


def run(command: list[str], log: Path) -> float:
    """Run a command with its output in `log`; its wall seconds. Stops the script on failure."""
    start = time.perf_counter()
    with log.open("w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed (exit {done.returncode}); see {log}")
    return time.perf_counter() - start


def starter(root: Path, out: Path, seed: int) -> tuple[float, Path]:
    """Train the starter loop; its training seconds and its submission."""
    csv = out / f"starter-{seed}.csv"
    result = out / f"starter-{seed}.json"
    if not result.is_file():
        command = [
            sys.executable,
            "-m",
            "phonemlp.starter_baseline",
            str(root),
            "--context",
            "20",
            "--epochs",
            "2",
            "--seed",
            str(seed),
            "--out",
            str(csv),
            "--json",
            str(result),
        ]
        run(command, out / f"starter-{seed}.log")
    return float(json.loads(result.read_text())["train_s"]), csv


def variant(root: Path, out: Path, name: str, seed: int, budget: float) -> tuple[dict, Path]:
    """Train and predict one variant; its summary and submission."""
    folder = out / f"{name}-{seed}"
    csv = folder / "submission.csv"
    if not csv.is_file():
        overrides = [
            "experiment=best",
            f"data.root={root}",
            f"time_budget_s={budget:.1f}",
            f"seed={seed}",
            "wandb.mode=disabled",
            *overrides_of(name),
        ]
        run(["phonemlp-train", *overrides, f"hydra.run.dir={folder}"], out / f"{name}-{seed}.log")
        run(
            ["phonemlp-predict", f"ckpt={folder}", f"out={csv}"], out / f"{name}-{seed}-predict.log"
        )
    return json.loads((folder / "summary.json").read_text()), csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="corpus with test_labels.csv")
    parser.add_argument(
        "--out", type=Path, default=Path("ablation"), help="folder for runs and tables"
    )
    parser.add_argument(
        "--budget", type=float, default=None, help="seconds (default: the starter's)"
    )
    parser.add_argument(
        "--variants",
        nargs="*",
        default=list(VARIANTS),
        help="names from VARIANTS, or several joined by '+' (applied in order)",
    )
    parser.add_argument("--seeds", type=int, nargs="*", default=[11785])
    args = parser.parse_args()
    for name in args.variants:
        overrides_of(name)
    root, out = args.root.resolve(), args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    truth = (
        pd.read_csv(root / "test_labels.csv", keep_default_na=False)["Label"].map(INDEX).to_numpy()
    )
    names, offsets = utterances(root, "test-clean")
    seen = {
        path.stem.split("-", 1)[0] for path in (root / "train-clean-100" / "mfcc").glob("*.npy")
    }

    rows = []
    for seed in args.seeds:
        train_s, csv = starter(root, out, seed)
        budget = args.budget or train_s
        rows.append(
            {
                "variant": "starter loop (2 epochs)",
                "seed": seed,
                "train_s": train_s,
                "epochs": 2.0,
                **score(csv, truth, names, offsets),
            }
        )
        for name in args.variants:
            summary, csv = variant(root, out, name, seed, budget)
            rows.append(
                {
                    "variant": name,
                    "seed": seed,
                    "train_s": summary["train_s"],
                    "epochs": summary["epochs"],
                    "dev": summary["best_dev_acc"],
                    **score(csv, truth, names, offsets),
                }
            )
            print(json.dumps(rows[-1]), flush=True)

    table = pd.DataFrame(rows)
    speakers = sorted(c for c in table.columns if c.isdigit())
    unseen = [s for s in speakers if s not in seen]
    seen_cols = [s for s in speakers if s in seen]
    table["seen"] = table[seen_cols].mean(axis=1)
    table["unseen"] = table[unseen].mean(axis=1)
    table["gap"] = table["seen"] - table["unseen"]
    mean = table.groupby("variant", sort=False).mean(numeric_only=True).drop(columns="seed")
    mean.insert(0, "seeds", table.groupby("variant", sort=False).size())
    mean = mean.sort_values("test", ascending=False)
    write_text(out / "ablation.csv", mean.to_csv(float_format="%.4f"))
    cells = mean.reset_index().astype(str)
    for column in mean.columns[1:]:
        cells[column] = [
            f"{value:.4f}" if column != "train_s" else f"{value:.1f}" for value in mean[column]
        ]
    markdown = "\n".join(
        ["| " + " | ".join(cells.columns) + " |", "|" + "---|" * len(cells.columns)]
        + ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    )
    write_text(out / "ablation.md", markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
