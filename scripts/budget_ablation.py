"""The ablation behind `experiment=cpu_budget`: variants against the starter loop at equal time.

    python scripts/budget_ablation.py ../shared/corpora/festival-small --out ablation-festival
    python scripts/budget_ablation.py ROOT --budget 43 --variants best best_ctx20 --seeds 1 2

First the starter-style loop (3x1024, context 20, 2 epochs, fp32, a per-frame DataLoader) is
trained on ROOT; its training seconds become the time budget (unless --budget gives one). Then
every variant runs `phonemlp-train experiment=cpu_budget time_budget_s=BUDGET <overrides>` and
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
from phonemlp.data.corpus import Split, read_split, split_files
from phonemlp.prediction import answer_key, read_label_csv
from phonemlp.reports import per_speaker_table, speakers

ALL_AUGMENTATIONS = [  # time and frequency masks and mel warp, as the first preset had them
    "augment.freq_mask_prob=0.5",
    "augment.freq_mask_max=4",
    "augment.warp_prob=0.5",
    "augment.warp_max=0.08",
    "augment.time_mask_prob=0.3",
    "augment.time_mask_max=5",
]

# name -> overrides on top of `experiment=cpu_budget`; "best" is the preset itself.
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


def score(csv: Path, truth: np.ndarray, test: Split) -> dict[str, float]:
    """Accuracy of a submission overall and per speaker."""
    predicted = read_label_csv(csv, len(truth))
    if predicted is None:
        raise SystemExit(f"{csv}: not a submission for the {len(truth):,} test frames")
    table = per_speaker_table(truth, predicted, test.names, test.offsets)
    return {
        "test": float((predicted == truth).mean()),
        **dict(zip(table["speaker"].tolist(), table["accuracy"].tolist(), strict=True)),
    }


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
            str(Path(__file__).with_name("starter_baseline.py")),
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
            "experiment=cpu_budget",
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
    test = read_split(root, "test-clean", labelled=False, progress=False)
    truth = answer_key(root, test.frames)
    if truth is None:
        raise SystemExit(f"{root / 'test_labels.csv'}: missing or not matching the test split")
    seen = set(speakers(split_files(root, "train-clean-100", labelled=False).names))

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
                **score(csv, truth, test),
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
                    **score(csv, truth, test),
                }
            )
            print(json.dumps(rows[-1]), flush=True)

    table = pd.DataFrame(rows)
    columns = sorted(c for c in table.columns if c.isdigit())  # one per speaker
    unseen = [s for s in columns if s not in seen]
    seen_cols = [s for s in columns if s in seen]
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
