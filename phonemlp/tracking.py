"""Experiment tracking with wandb: offline by default (files in the run folder, no login).

Each run is its own wandb run, kept by a helper process of its own (`python -m
phonemlp.tracking`, see helpers.py): wandb's start-up, logging and finish (seconds of Python
work) run beside training on another core instead of competing with it for the interpreter.
The run closes its wandb run when it ends, normally or not; if the training process dies
without a word (kill -9), the tracking process sees its pipe close and closes the wandb run
as failed. Ctrl-C and SIGTERM are left to the training process, which saves and then closes
the wandb run itself. In a Hydra sweep the runs are grouped by the sweep folder (unless
wandb.group is set). The tracker also adds the model size and the wandb run's id to
status.json.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phonemlp import helpers
from phonemlp.records import update_status

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = logging.getLogger("phonemlp")

SUMMARY_KEYS = ("params", "best_dev_acc", "best_epoch", "epochs", "train_frames_per_s")


class Tracker:
    """One wandb run per training run; a no-op with wandb.mode=disabled. Use it with `with`."""

    def __init__(self, cfg: DictConfig, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.process: subprocess.Popen[str] | None = None
        self.failed = False
        self.closed = threading.Event()  # the wandb run is closed (or the process is gone)
        if cfg.wandb.mode == "disabled":
            return
        from omegaconf import OmegaConf

        settings = {
            "mode": cfg.wandb.mode,
            "project": cfg.wandb.project,
            "entity": cfg.wandb.entity,
            "group": cfg.wandb.group,
            "tags": list(cfg.wandb.tags),
            "name": f"{run_dir.parent.name}/{run_dir.name}",
            "dir": str(run_dir),
            "config": OmegaConf.to_container(cfg, resolve=True),
        }
        try:
            self.process = helpers.start("phonemlp.tracking")
        except OSError as error:
            log.warning(f"wandb: could not start ({error}); the run goes on untracked")
            return
        reader = threading.Thread(target=self._read, args=(self.process, settings), daemon=True)
        reader.start()
        self._send("init", settings=settings)

    def _send(self, op: str, **fields: Any) -> None:
        if self.process is None or self.failed:
            return
        if not helpers.send(self.process, op=op, **fields):
            self.failed = True  # the tracking process has gone; its reader says why

    def _read(self, process: subprocess.Popen[str], settings: dict[str, Any]) -> None:
        """The tracking process's answers: its run's id once started, or why it failed."""
        for answer in helpers.answers(process):
            if "started" in answer:
                group = settings["group"]
                update_status(self.run_dir, wandb_id=answer["started"], wandb_group=group)
                where = f" in group {settings['group']}" if settings["group"] else ""
                log.info(
                    f"wandb: run {answer['started']} ({settings['mode']}){where} in "
                    f"{self.run_dir / 'wandb'}"
                )
            elif "error" in answer:
                self.failed = self.failed or answer["fatal"]
                goes_on = "the run goes on untracked" if answer["fatal"] else "tracking goes on"
                log.warning(f"wandb: {answer['error']}; {goes_on}")
            elif "closed" in answer:
                self.closed.set()  # its files are complete; the process now just exits
        if not self.closed.is_set():  # it ended without closing the run: say how
            code = process.wait()
            if code != 0 and not self.failed:
                log.warning(f"wandb: the tracking process ended with status {code}")
            self.closed.set()
        process.wait()  # reap it (the training process does not wait for its exit)

    def describe(self, params: int) -> None:
        """The model's size, for status.json now and the wandb run's config."""
        update_status(self.run_dir, params=params)
        self._send("config", values={"params": params})

    def log(self, row: dict[str, Any]) -> None:
        self._send("log", row=row, step=int(row["epoch"]))

    def log_reports(self, paths: dict[str, Path]) -> None:
        """The run's reports (phonemlp.reports.write_reports): images and tables."""
        if paths:
            self._send("reports", paths={name: str(path) for name, path in paths.items()})

    def finish(self, summary: dict[str, Any] | None) -> None:
        """Close the wandb run, with the run's summary when it ended normally (else failed),
        and wait until it is closed (not for the tracking process's own exit)."""
        if self.process is None:
            return
        values = {key: summary[key] for key in SUMMARY_KEYS} if summary is not None else None
        self._send("finish", summary=values)
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        self.closed.wait()
        self.process = None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish(None)  # a run that ended early: closed as failed (a no-op after finish)


def log_reports(run: Any, paths: dict[str, Path]) -> None:
    """Log the reports to a wandb run: each PNG as a wandb.Image under `reports/<name>`, each
    CSV as a wandb.Table under `reports/<name>_table`."""
    import pandas as pd
    import wandb

    logged: dict[str, Any] = {}
    for path in map(Path, paths.values()):
        if path.suffix == ".png":
            logged[f"reports/{path.stem}"] = wandb.Image(str(path))
        elif path.suffix == ".csv":
            table = pd.read_csv(path)  # an absent class's accuracy stays NaN
            logged[f"reports/{path.stem}_table"] = wandb.Table(dataframe=table)
    if logged:
        run.log(logged)


def serve(requests: Iterable[dict[str, Any]], reply: Callable[..., None]) -> None:
    """The tracking process: one wandb run, driven by `requests`."""
    run = None
    for request in requests:
        op = request.pop("op")
        try:
            if op == "init":
                import wandb

                settings = wandb.Settings(silent=True, console="off")
                run = wandb.init(**request["settings"], settings=settings)
                reply(started=run.id)
                import pandas  # noqa: F401  (for the reports, while training goes on)
            elif run is None:
                continue  # it never started; the training process was told why
            elif op == "config":
                run.config.update(request["values"], allow_val_change=True)
            elif op == "log":
                run.log(request["row"], step=request["step"])
            elif op == "reports":
                log_reports(run, request["paths"])
            elif op == "finish":
                for key, value in (request["summary"] or {}).items():
                    run.summary[key] = value
                run.finish(exit_code=0 if request["summary"] is not None else 1)
                reply(closed=True)
                return
        except Exception as error:  # tracking must never lose the run itself
            message = str(error).strip().splitlines()[0] if str(error).strip() else ""
            reply(error=f"{op} failed ({type(error).__name__}: {message})", fatal=op == "init")
            if op == "init":
                return
    if run is not None:  # the training process ended without a word (killed)
        run.finish(exit_code=1)


if __name__ == "__main__":
    # The training process decides when to stop; training comes first (nice 10): wandb and
    # its wandb-core take the spare CPU time.
    serve(*helpers.serve(nice=10))
    # The run is closed: let go of the pipe and the terminal (a `| tee` of the training
    # process ends now) while wandb shuts its service down.
    nowhere = os.open(os.devnull, os.O_WRONLY)
    for stream in (1, 2):
        os.dup2(nowhere, stream)
