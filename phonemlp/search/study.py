"""The shared study: its storage, its folder, and which trial a worker runs next.

Every worker of every `phonemlp-search` with the same study opens the same Optuna study (a
journal file in the study folder by default, or any storage URL). A worker picks its next
trial under a lock (a file in the study folder, created with O_EXCL: safe on NFS), in this
order:

1. settle the RUNNING trials whose worker is gone. A worker writes its host, pid and the
   pid's start time into the trial's user attrs (`owner`) and refreshes `owner.beat` every
   minute; the owner is gone when its process no longer runs on this host, or, for another
   host, when it has not beaten for `stale_after_s`. The trial's run folder then says how
   the trial ended: `finished` or `pruned` (the worker died before telling the study) are
   told now; `interrupted` (SIGTERM/Ctrl-C: checkpoints/last.pt saved) is resumable;
   anything else (`running`: kill -9, a crash, a lost node) is told FAIL, with the reason, and
   a new trial replaces it.
2. resume an interrupted trial: same trial number, same folder, `resume=<folder>`.
3. start a new trial if COMPLETE + PRUNED + RUNNING + WAITING < n_trials (counted under the
   lock, so the study never overshoots n_trials however many workers and machines share it).
4. otherwise wait while other workers still run trials (one of them may die and leave a
   trial to replace or resume), or end.

Optuna's own heartbeat (RDBStorage's failed_trial_callback) is not used: the journal storage
has none, and the rule above works the same for every storage.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import FrozenTrial, Trial, TrialState

from phonemlp.errors import PhonemlpError
from phonemlp.records import (
    FAILED,
    FINISHED,
    INTERRUPTED,
    PRUNED,
    process_alive,
    process_start,
    read_status,
)
from phonemlp.search.settings import SearchSettings
from phonemlp.search.space import Param, free_params, load_space

optuna.logging.set_verbosity(optuna.logging.WARNING)  # its lines would drown the workers'

DONE = (TrialState.COMPLETE, TrialState.PRUNED)
JOURNAL = "journal.log"
LOCK_GRACE_S = 60  # a claim lock older than this was left by a killed process: broken


def study_dir(settings: SearchSettings) -> Path:
    return Path(settings.dir or Path("searches") / str(settings.study)).resolve()


def make_storage(settings: SearchSettings, folder: Path) -> optuna.storages.BaseStorage:
    """The journal file in the study folder, a journal file elsewhere, or an RDB URL."""
    target = settings.storage
    if target is None or "://" not in target:
        path = folder / JOURNAL if target is None else Path(target).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path), JournalFileOpenLock(str(path))))
    try:
        return RDBStorage(target)
    except ImportError as error:  # the database's driver (psycopg2, pymysql...) is missing
        raise PhonemlpError(
            f"storage={target.split('://')[0]}://...: {error}; install the database driver"
        ) from None
    except Exception as error:  # refused connection, unknown database...
        first = (str(error).strip().splitlines() or [""])[0]
        raise PhonemlpError(f"storage: cannot open {target.split('@')[-1]}: {first}") from None


def make_sampler(settings: SearchSettings, index: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler of worker `index` (seeded sampler_seed + index: workers draw apart)."""
    seed = None if settings.sampler_seed is None else settings.sampler_seed + index
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # constant liar: a running trial counts as a poor result, so parallel workers spread out
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def make_pruner(settings: SearchSettings) -> optuna.pruners.BasePruner:
    if settings.pruner == "median":
        # steps are epochs from 1; Optuna prunes from step n_warmup_steps on
        return optuna.pruners.MedianPruner(
            n_startup_trials=settings.pruner_startup, n_warmup_steps=settings.pruner_warmup + 1
        )
    if settings.pruner == "hyperband":  # the epochs are the resource; max from the first trial
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto")
    return optuna.pruners.NopPruner()


def owner_record() -> dict[str, Any]:
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "pid_start": process_start(pid),
        "beat": time.time(),
    }


class SearchStudy:
    """The study as one process sees it (workers and the command each open their own)."""

    def __init__(
        self, settings: SearchSettings, fixed: list[str] | None = None, index: int = 0
    ) -> None:
        """Open the study, creating it when `fixed` (the command's overrides) is given, else
        (report=true) only an existing one."""
        self.settings = settings
        self.dir = study_dir(settings)
        if fixed is None and not self._exists():
            raise PhonemlpError(
                f"study={settings.study}: no such study in {self.dir}; start it with "
                f"phonemlp-search study={settings.study} data.root=... (or give its dir=/storage=)"
            )
        self.trials_dir = self.dir / "trials"
        self.trials_dir.mkdir(parents=True, exist_ok=True)
        self._lock = JournalFileOpenLock(str(self.dir / "claims"), grace_period=LOCK_GRACE_S)
        self.storage = make_storage(settings, self.dir)
        self.owned: Trial | None = None  # the trial this process runs now
        if fixed is None and settings.study not in optuna.get_all_study_names(self.storage):
            raise PhonemlpError(f"study={settings.study}: no such study in {settings.storage}")
        with self.locked():
            self.study = optuna.create_study(
                study_name=settings.study,
                storage=self.storage,
                sampler=make_sampler(settings, index),
                pruner=make_pruner(settings),
                direction="maximize",
                load_if_exists=True,
            )
            self.space: list[Param] = []
            if fixed is not None:  # not for report=true, which only reads the study
                self.space = free_params(load_space(settings.space), fixed)
                self._settle_definition(fixed)
        self.fixed: list[str] = list(self.study.user_attrs.get("fixed", fixed or []))

    def _exists(self) -> bool:
        storage = self.settings.storage
        if storage is None:
            return (self.dir / JOURNAL).is_file()
        return "://" in storage or Path(storage).is_file()

    # --- the study's definition: the same fixed overrides and space in every command -------

    def _settle_definition(self, fixed: list[str]) -> None:
        space = {param.key: param.describe() for param in self.space}
        attrs = self.study.user_attrs
        if "fixed" not in attrs:
            self.study.set_user_attr("fixed", list(fixed))
            self.study.set_user_attr("space", space)
            self.study.set_user_attr("space_name", self.settings.space)
            return
        if sorted(attrs["fixed"]) != sorted(fixed):
            raise PhonemlpError(
                f"study={self.settings.study} was started with the overrides "
                f"{' '.join(attrs['fixed']) or '(none)'}; give the same ones to continue it, "
                "or name a new study"
            )
        if attrs["space"] != space:
            raise PhonemlpError(
                f"study={self.settings.study} was started with space={attrs.get('space_name')} "
                "and another search space; use the same space to continue it, or name a new study"
            )

    # --- the lock ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self._lock.acquire()
        try:
            yield
        finally:
            with contextlib.suppress(RuntimeError):  # broken by another process after the grace
                self._lock.release()

    # --- trials ------------------------------------------------------------------------------

    def trial_dir(self, number: int) -> Path:
        return self.trials_dir / str(number)

    def handle(self, frozen: FrozenTrial) -> Trial:
        """A live Trial for a RUNNING trial (also one another worker asked for)."""
        return Trial(self.study, frozen._trial_id)  # no public way from a number to a Trial

    def owner_alive(self, owner: dict[str, Any] | None) -> bool:
        if not owner:
            return False
        if owner.get("host") == socket.gethostname():
            return process_alive(int(owner["pid"]), owner.get("pid_start"))
        return time.time() - float(owner.get("beat", 0)) < self.settings.stale_after_s

    def settle(self, frozen: FrozenTrial) -> str:
        """A RUNNING trial whose worker is gone: told as its folder says; returns what it is
        now: `resumable`, or its final state."""
        trial = self.handle(frozen)
        folder = self.trial_dir(frozen.number)
        record = read_status(folder) or {}
        status = record.get("status")
        if status == INTERRUPTED and (folder / "checkpoints" / "last.pt").is_file():
            return "resumable"
        if status == FINISHED and (folder / "summary.json").is_file():
            summary = json.loads((folder / "summary.json").read_text())
            self.catch_up(trial, frozen)
            self.study.tell(trial, float(summary["best_dev_acc"]))
            return "complete"
        if status == PRUNED:
            self.catch_up(trial, frozen)
            self.study.tell(trial, state=TrialState.PRUNED)
            return "pruned"
        owner = frozen.user_attrs.get("owner") or {}
        if status == FAILED:
            reason = record.get("error", "failed")
        else:
            where = f"{owner.get('host', '?')} pid {owner.get('pid', '?')}"
            reason = f"its worker ({where}) died (kill -9, a crash or a lost node)"
        trial.set_user_attr("error", reason)
        self.study.tell(trial, state=TrialState.FAIL)
        return "failed"

    def catch_up(self, trial: Trial, frozen: FrozenTrial) -> None:
        """Report the epochs the folder's metrics.csv has and the study has not (a worker
        killed between saving an epoch and reporting it)."""
        metrics = self.trial_dir(frozen.number) / "metrics.csv"
        if not metrics.is_file():
            return
        import pandas as pd

        try:
            table = pd.read_csv(metrics)
        except (OSError, ValueError):
            return
        for epoch, acc in zip(table["epoch"], table["dev_acc"], strict=True):
            if epoch not in frozen.intermediate_values:
                trial.report(float(acc), int(epoch))

    def failures_in_a_row(self, trials: list[FrozenTrial]) -> int:
        """Failed trials since the last finished or pruned one (a bad setting fails them all)."""
        count = 0
        for trial in sorted(trials, key=lambda t: t.number, reverse=True):
            if trial.state in DONE:
                break
            if trial.state == TrialState.FAIL and "error" in trial.user_attrs:
                count += 1
        return count

    def claim(self) -> tuple[str, Trial | None]:
        """The next job for this worker: ("resume" | "new", trial), ("wait", None) or
        ("done", None) (see the module's docstring)."""
        with self.locked():
            trials = self.study.get_trials(deepcopy=False)
            done = sum(t.state in DONE for t in trials)
            active, others, resumable = 0, 0, []
            for frozen in trials:
                if frozen.state == TrialState.WAITING:
                    active += 1
                if frozen.state != TrialState.RUNNING:
                    continue
                if self.owner_alive(frozen.user_attrs.get("owner")):
                    active += 1
                    others += 1
                    continue
                outcome = self.settle(frozen)
                if outcome == "resumable":
                    active += 1
                    resumable.append(frozen)
                elif outcome in ("complete", "pruned"):
                    done += 1
            if resumable:
                trial = self.handle(resumable[0])
                self.catch_up(trial, resumable[0])
                return "resume", self._own(trial)
            if done + active < self.settings.n_trials:
                trials = self.study.get_trials(deepcopy=False)
                if self.failures_in_a_row(trials) >= self.settings.max_failures:
                    return ("wait" if others else "failing"), None
                return "new", self._own(self.study.ask())
            return ("wait" if others else "done"), None

    def _own(self, trial: Trial) -> Trial:
        trial.set_user_attr("owner", owner_record())  # before the lock is released
        self.owned = trial
        return trial

    def beat(self) -> None:
        """Tell the study this worker still runs its trial (from the worker's watcher thread)."""
        trial = self.owned
        if trial is None:
            return
        with contextlib.suppress(Exception):  # finished meanwhile: nothing to refresh
            self.storage.set_trial_user_attr(trial._trial_id, "owner", owner_record())

    def release(self, trial: Trial) -> None:
        """This worker stops running `trial` without an outcome (a signal): the next worker
        resumes it (folder `interrupted`) or replaces it."""
        self.owned = None
        with contextlib.suppress(Exception):
            trial.set_user_attr("owner", None)

    def counts(self) -> dict[str, int]:
        counts = {state.name.lower(): 0 for state in TrialState}
        for trial in self.study.get_trials(deepcopy=False):
            counts[trial.state.name.lower()] += 1
        return counts


def settings_payload(settings: SearchSettings) -> dict[str, Any]:
    """The settings as plain data, for worker processes and Slurm jobs."""
    return asdict(settings)
