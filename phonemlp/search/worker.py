"""A search worker: takes the study's next trial as soon as its last one ends, trains it with
phonemlp.train in the trial's run folder, reports each epoch's dev accuracy to the pruner and
tells the study how it ended. Runs as a local process or as a Slurm job (submitit)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from optuna.trial import Trial, TrialState

from phonemlp.errors import RunPruned, quick_exit, user_error_message
from phonemlp.search.settings import SearchSettings
from phonemlp.search.space import override
from phonemlp.search.study import SearchStudy
from phonemlp.stopping import StopOnSignal

POLL_S = 2.0  # how often an idle worker looks again while others still run trials
BEAT_S = 30.0  # how often a worker tells the study it still runs its trial

# a worker's exit status when it stopped starting trials because they kept failing
EXIT_FAILING = 3


class Worker:
    def __init__(self, study: SearchStudy, name: str, console: TextIO, parent: int | None):
        self.study = study
        self.name = name
        self.console = console
        self.parent = parent  # the command's pid: a worker whose command is gone stops
        self._stop = threading.Event()

    def say(self, text: str) -> None:
        line = f"[{self.name}] {text}"
        for stream in {self.console, sys.stdout}:
            with contextlib.suppress(Exception):
                print(line, file=stream, flush=True)

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> int:
        watcher = threading.Thread(target=self._watch, daemon=True)
        watcher.start()
        try:
            while True:
                kind, trial = self.study.claim()
                if kind in ("done", "failing"):
                    break
                if kind == "wait":
                    time.sleep(POLL_S)
                    continue
                assert trial is not None
                self.run_trial(trial, resume=kind == "resume")
                if StopOnSignal.received:  # it came as the trial ended: stop here
                    raise SystemExit(128 + StopOnSignal.received)
        finally:
            self._stop.set()
        if kind == "failing":
            self.say(f"stopped: {self.study.settings.max_failures} trials failed in a row")
            return EXIT_FAILING
        return 0

    def _watch(self) -> None:
        """Refresh the owned trial's heartbeat; stop (as SIGTERM would) if the command died."""
        last_beat = time.monotonic()
        while not self._stop.wait(1.0):
            if self.parent is not None and os.getppid() != self.parent:
                self.parent = None
                self.say("the search command is gone: stopping after this batch")
                os.kill(os.getpid(), signal.SIGTERM)
            if time.monotonic() - last_beat >= BEAT_S:
                last_beat = time.monotonic()
                self.study.beat()

    # --- one trial ---------------------------------------------------------------------------

    def run_trial(self, trial: Trial, resume: bool) -> None:
        from phonemlp.api import train

        number = trial.number
        folder = self.study.trial_dir(number)
        if resume:
            overrides = list(trial.user_attrs["overrides"])
            arguments = [*overrides, f"resume={folder}"]
            done = len(self.study.storage.get_trial(trial._trial_id).intermediate_values)
            self.say(f"trial {number}: resuming after {done} epochs ({folder})")
        else:
            sampled = [override(p.key, p.suggest(trial)) for p in self.study.space]
            overrides = [*self.study.fixed, *sampled]
            trial.set_user_attr("overrides", overrides)
            arguments = overrides
            self.say(f"trial {number}: {' '.join(sampled) or '(nothing to sample)'}")

        def on_epoch(epoch: int, row: dict[str, Any]) -> None:
            accuracy = float(row["dev_acc"])
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise RunPruned(f"trial {number} pruned at epoch {epoch} (dev acc {accuracy:.4f})")

        study = self.study.study
        try:
            summary = train(arguments, run_dir=folder, on_epoch=on_epoch)
        except RunPruned as pruned:
            self._tell(trial, state=TrialState.PRUNED)
            self.say(str(pruned))
        except Exception as error:
            message = user_error_message(error)
            first = (str(error).strip().splitlines() or [""])[0]
            reason = message or f"{type(error).__name__}: {first}"
            with contextlib.suppress(Exception):
                trial.set_user_attr("error", reason)
            self._tell(trial, state=TrialState.FAIL)
            self.say(f"trial {number} failed: {reason}")
            if message is None:  # a bug: the worker ends with its traceback
                raise
        except BaseException:  # a signal: last.pt is saved, the next worker resumes the trial
            self.study.release(trial)
            self.say(f"trial {number} interrupted; the next run of the search resumes it")
            raise
        else:
            value = float(summary["best_dev_acc"])
            self._tell(trial, value)
            best = ""
            with contextlib.suppress(ValueError):
                best = f" (study best {study.best_value:.4f}, trial {study.best_trial.number})"
            self.say(f"trial {number} finished: best dev acc {value:.4f}{best}")
        finally:
            self.study.owned = None

    def _tell(self, trial: Trial, value: float | None = None, state: Any = None) -> None:
        try:
            self.study.study.tell(trial, value, state=state)
        except (RuntimeError, ValueError) as error:  # settled by another worker meanwhile
            self.say(f"trial {trial.number}: not told ({error})")


# --- the process entry ---------------------------------------------------------------------


def _stop_on_signal(number: int, frame: Any) -> None:
    raise SystemExit(128 + number)


def _redirect_output(path: Path) -> TextIO:
    """Send this process's stdout/stderr (training logs, tracebacks) to `path`; return the
    console, for the worker's own one-line progress."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    console = os.fdopen(os.dup(1), "w", buffering=1)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    return console


def worker_main(payload: dict[str, Any], index: int, local: bool, env: dict[str, str]) -> int:
    """A worker process: `payload` holds the settings and the fixed overrides. `local`: a
    process of phonemlp-search on this machine (its output goes to workers/<index>.log, it
    stops when the command is gone); else a Slurm job whose output submitit keeps."""
    os.environ.update(env)
    settings = SearchSettings(**payload["settings"])
    parent = None
    console = sys.stdout
    if local:
        os.setpgrp()  # Ctrl-C reaches the command only, which passes it on once
        parent = os.getppid()
        folder = Path(payload["dir"])
        console = _redirect_output(folder / "workers" / f"{index}.log")
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, _stop_on_signal)  # training replaces it by its own save-and-stop
    name = f"worker {index}" if local else f"worker {index} on {socket.gethostname()}"
    study = SearchStudy(settings, payload["fixed"], index)
    code = Worker(study, name, console, parent).run()
    if not local:  # no command waits for a Slurm job: the last one leaves the results
        from phonemlp.search.report import write_report

        write_report(study)
    return code


def process_main(payload: dict[str, Any], index: int, env: dict[str, str]) -> None:
    """multiprocessing's target for a local worker (it ends without the interpreter's
    teardown: the command is waiting)."""
    with quick_exit():
        sys.exit(worker_main(payload, index, True, env))
