"""A run's status record, `<run>/status.json`: is the run running, finished or failed?

phonemlp-train writes it when a job starts (`running`, with the host and pid), and again when
it ends: `finished`, `pruned`, `failed` (with the one-line error) or `interrupted` (a signal or
Ctrl-C; checkpoints/last.pt can resume it). A `running` record whose process is gone from this
host reads as `killed`. The other records of a run, metrics.csv and summary.json, are written
here too.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import json
import logging
import math
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from phonemlp.atomic import write_csv, write_text
from phonemlp.errors import RunPruned, user_error_message

log = logging.getLogger("phonemlp")

STATUS_FILE = "status.json"
RUNNING, FINISHED, FAILED, INTERRUPTED = "running", "finished", "failed", "interrupted"
PRUNED = "pruned"  # stopped early by a search's pruner; its checkpoints are kept
KILLED = "killed"  # read only: `running` on this host, but its process is gone
UNFINISHED = "unfinished"  # read only: a run folder with no status record and no summary

_STATUS_LOCK = threading.RLock()  # the tracker's reader thread updates the record too

FAILED_SCORE = -math.inf
"""What a failed job of a Hydra sweep returns to the sweeper: the worst value."""


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def process_start(pid: int) -> int | None:
    """The start time of process `pid` in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def process_alive(pid: int, start: int | None = None) -> bool:
    """Whether process `pid` (started at `start`, when known) still runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True  # no /proc to look closer
    if state in ("Z", "X"):  # exited, not yet reaped by its parent
        return False
    return start is None or process_start(pid) == start


def read_status(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(run_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None


def write_status(run_dir: Path, record: dict[str, Any]) -> None:
    with _STATUS_LOCK:
        write_text(Path(run_dir) / STATUS_FILE, json.dumps(record, indent=2) + "\n")


def update_status(run_dir: Path, **fields: Any) -> None:
    """Add fields (e.g. params) to the record of a run in progress."""
    with _STATUS_LOCK:  # read and write as one: no thread's update is lost
        record = read_status(run_dir)
        if record is not None:
            write_status(run_dir, {**record, **fields})


def run_status(run_dir: Path) -> str:
    """finished, failed, interrupted, running, killed or unfinished."""
    record = read_status(run_dir)
    if record is None:
        return FINISHED if (Path(run_dir) / "summary.json").is_file() else UNFINISHED
    status = record.get("status", UNFINISHED)
    here = record.get("host") == socket.gethostname()
    if (
        status == RUNNING
        and here
        and not process_alive(int(record["pid"]), record.get("pid_start"))
    ):
        return KILLED
    return status


def _stop_message(error: BaseException) -> str:
    if isinstance(error, SystemExit) and isinstance(error.code, int) and error.code > 128:
        try:
            return f"stopped by {signal.Signals(error.code - 128).name}"
        except ValueError:
            pass
    return f"stopped by {type(error).__name__}"


@contextlib.contextmanager
def recorded(run_dir: Path) -> Iterator[None]:
    """Keep `run_dir/status.json` for the work inside: `running` (host, pid), then `finished`,
    `pruned` (RunPruned), `failed` (with the one-line error, or the exception of a bug) or
    `interrupted` (a signal, Ctrl-C)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "status": RUNNING,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_start": process_start(os.getpid()),
        "started": _now(),
    }
    write_status(run_dir, record)
    ended: dict[str, Any] = {"status": FINISHED}
    try:
        yield
    except RunPruned:
        ended = {"status": PRUNED}
        raise
    except Exception as error:
        message = user_error_message(error)
        if message is None:  # a bug: name it; the traceback follows
            first_line = (str(error).strip().splitlines() or [""])[0]
            message = f"{type(error).__name__}: {first_line}"
        ended = {"status": FAILED, "error": message}
        raise
    except BaseException as error:  # a signal turned into SystemExit, Ctrl-C
        ended = {"status": INTERRUPTED, "error": _stop_message(error)}
        raise
    finally:
        with _STATUS_LOCK:
            latest = read_status(run_dir) or record  # the run may have added params
            write_status(run_dir, {**latest, **ended, "ended": _now()})


def release_memory() -> None:
    """Drop what a finished job left (its tensors, cached GPU blocks) before the next job in
    the same process (a notebook, a sweep); a process that ends after its one run skips it."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


METRIC_COLUMNS = ["epoch", "lr", "train_loss", "train_acc", "dev_loss", "dev_acc", "epoch_s",
                  "train_frames_per_s"]  # fmt: skip


def write_metrics(run_dir: Path, history: list[dict[str, float]]) -> None:
    """metrics.csv: one row per epoch, rewritten atomically after every epoch."""
    columns = {key: [row[key] for row in history] for key in METRIC_COLUMNS}
    write_csv(run_dir / "metrics.csv", columns)


def write_summary(run_dir: Path, trainer: Any, overrides: list[str], root: Path,
                  device: Any) -> dict[str, Any]:  # fmt: skip
    """summary.json: the run's figures (what phonemlp.train returns)."""
    progress, history = trainer.progress, trainer.progress.history
    train_s = sum(r["epoch_s"] for r in history)
    summary = {
        "params": trainer.model.num_params,
        "best_dev_acc": progress.best_acc,
        "best_epoch": progress.best_epoch,
        "epochs": len(history),
        "train_frames_per_s": sum(r["train_frames"] for r in history) / max(1e-9, train_s),
        "train_s": train_s,
        "best_checkpoint": str(run_dir / "checkpoints" / "best.pt"),
        "run_dir": str(run_dir),
        "overrides": overrides,
        "data_root": str(root),
        "device": str(device),
        "precision": trainer.precision,
    }
    write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def history_table(history: list[dict[str, float]]) -> str:
    """The epochs as a text table: epoch, losses, accuracies and seconds, right-aligned."""
    columns = ["epoch", "train_loss", "train_acc", "dev_loss", "dev_acc", "epoch_s"]
    lines = [columns] + [
        [str(int(row["epoch"]))] + [f"{row[key]:.4f}" for key in columns[1:]] for row in history
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    return "\n".join(
        "  ".join(v.rjust(w) for v, w in zip(line, widths, strict=True)) for line in lines
    )


def print_summary(summary: dict[str, Any], history: list[dict[str, float]], run_dir: Path) -> None:
    reports = run_dir / "reports"
    log.info("\n" + history_table(history))
    log.info(
        f"best dev accuracy {summary['best_dev_acc']:.4f} at epoch {summary['best_epoch']}; "
        f"{summary['params']:,} parameters; {summary['train_frames_per_s']:,.0f} train frames/s\n"
        f"run folder: {run_dir}\n"
        + (
            f"reports:    {reports} (per-class and per-speaker dev accuracy, confusion matrix, "
            "learning curves)\n"
            if reports.is_dir()
            else ""
        )  # fmt: skip
        + f"predict:    phonemlp-predict ckpt={summary['best_checkpoint']} out=submission.csv"
    )
