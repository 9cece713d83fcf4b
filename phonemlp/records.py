"""A run's status record, `<run>/status.json`: is the run running, finished or failed?

phonemlp-train writes it when a job starts (`running`, with the host and pid), and again when
it ends: `finished`, `failed` (with the one-line error) or `interrupted` (a signal or Ctrl-C;
checkpoints/last.pt can resume it). A `running` record whose process is gone from this host
reads as `killed`. In a multirun a job that fails on a problem the user can fix is recorded,
logged in one line and scored -inf, and the sweep goes on with the next job.
"""

from __future__ import annotations

import datetime
import gc
import json
import logging
import math
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from phonemlp.atomic import write_text
from phonemlp.errors import user_error_message

log = logging.getLogger("phonemlp")

STATUS_FILE = "status.json"
RUNNING, FINISHED, FAILED, INTERRUPTED = "running", "finished", "failed", "interrupted"
KILLED = "killed"  # read only: `running` on this host, but its process is gone
UNFINISHED = "unfinished"  # read only: a run folder with no status record and no summary

FAILED_SCORE = -math.inf
"""What a failed job returns to the sweeper. Optuna takes -inf as the worst value (a NaN would
make hydra-optuna-sweeper 1.3 fail the whole study), so a setting that fails steers it away."""


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
    write_text(Path(run_dir) / STATUS_FILE, json.dumps(record, indent=2) + "\n")


def update_status(run_dir: Path, **fields: Any) -> None:
    """Add fields (e.g. params) to the record of a run in progress."""
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


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _stop_message(error: BaseException) -> str:
    if isinstance(error, SystemExit) and isinstance(error.code, int) and error.code > 128:
        try:
            return f"stopped by {signal.Signals(error.code - 128).name}"
        except ValueError:
            pass
    return f"stopped by {type(error).__name__}"


def run_recorded(task: Callable[[Any], float], cfg: Any, program: str) -> float:
    """Run one job (`task(cfg)`, returning its score) and keep its status record.

    A problem the user can fix ends a single run as before (the caller prints it and exits 2);
    in a multirun it is logged in one line, the job is scored FAILED_SCORE and the sweep goes
    on. Anything else is recorded and raised.
    """
    from hydra.core.hydra_config import HydraConfig

    from phonemlp.tracking import finish_open_run

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "status": RUNNING,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_start": process_start(os.getpid()),
        "started": _now(),
    }
    write_status(run_dir, record)
    try:
        score = task(cfg)
    except Exception as error:
        message = fixable_message(error)
        if message is None:  # a bug: name it; the traceback follows
            first_line = (str(error).strip().splitlines() or [""])[0]
            detail = f"{type(error).__name__}: {first_line}"
        else:
            detail = message
        finish_open_run()
        write_status(run_dir, {**_latest(run_dir, record), "status": FAILED, "error": detail,
                               "ended": _now()})  # fmt: skip
        if message is not None and in_multirun():
            log.error(f"{program}: error: {message}")
            log.error(f"{program}: {run_dir} failed; the sweep goes on")
            return FAILED_SCORE
        raise
    except BaseException as error:  # a signal turned into SystemExit, Ctrl-C
        finish_open_run()
        write_status(run_dir, {**_latest(run_dir, record), "status": INTERRUPTED,
                               "error": _stop_message(error), "ended": _now()})  # fmt: skip
        raise
    finally:
        release_memory()
    write_status(run_dir, {**_latest(run_dir, record), "status": FINISHED, "ended": _now()})
    return score


def fixable_message(error: Exception) -> str | None:
    """The one-line message of a problem the user can fix (running out of memory is one)."""
    message = user_error_message(error)
    if message is None and type(error).__name__ == "OutOfMemoryError":  # torch's
        message = "out of GPU memory; try a smaller batch_size, a smaller model, or device=cpu"
    return message


def _latest(run_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
    """The record as the run last updated it (it may have added params)."""
    return read_status(run_dir) or record


def release_memory() -> None:
    """Drop what a finished job left (its tensors, cached GPU blocks) before the next job."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
