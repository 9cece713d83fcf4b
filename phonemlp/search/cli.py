"""phonemlp-search: the command (conf/search_command.yaml, or phonemlp-search --help)."""

from __future__ import annotations

import dataclasses
import signal
import sys

from phonemlp.errors import PhonemlpError, exit_on_user_error
from phonemlp.search.settings import SearchSettings, parse_settings, search_help, split_arguments
from phonemlp.search.space import Param, free_params, load_space, override
from phonemlp.search.worker import EXIT_FAILING

PROGRAM = "phonemlp-search"


def example_value(param: Param) -> object:
    return param.choices[0] if param.type == "categorical" else param.low


def check_overrides(fixed: list[str], space: list[Param], space_name: str) -> None:
    """Compose phonemlp-train's config with the fixed overrides, then with a value of every
    searched key: a mistyped key fails here, in one line, not in every trial."""
    from hydra import compose, initialize_config_module

    def attempt(overrides: list[str]) -> str | None:
        try:
            with initialize_config_module("phonemlp.conf", version_base="1.3"):
                compose("config", overrides=overrides)
        except Exception as error:
            return (str(error).strip().splitlines() or [type(error).__name__])[0]
        return None

    problem = attempt(fixed)
    if problem is not None:
        raise PhonemlpError(f"phonemlp-train overrides: {problem}")
    sample = [override(p.key, example_value(p)) for p in space]
    problem = attempt([*fixed, *sample])
    if problem is not None:
        raise PhonemlpError(f"space={space_name}: {problem}")


def run(argv: list[str]) -> int:
    from phonemlp.search.launch import run_local, run_submitit
    from phonemlp.search.report import write_report
    from phonemlp.search.study import SearchStudy, study_dir

    own, fixed = split_arguments(argv)
    settings = parse_settings(own)
    settings.dir = str(study_dir(settings))  # absolute: workers and jobs may start elsewhere
    if settings.report:
        print(write_report(SearchStudy(settings, None)))
        return 0
    check_overrides(fixed, free_params(load_space(settings.space), fixed), settings.space)
    study = SearchStudy(settings, fixed)  # creates the study, or checks it is the same one
    counts = study.counts()
    done = counts["complete"] + counts["pruned"]
    print(
        f"{PROGRAM}: study {settings.study} in {study.dir}: {done} of {settings.n_trials} "
        f"trials done; searching {', '.join(p.key for p in study.space) or 'nothing'} "
        f"with {settings.workers} worker(s), launcher={settings.launcher}, "
        f"pruner={settings.pruner}",
        flush=True,
    )
    if done >= settings.n_trials:  # nothing left to run: no worker to start
        print(write_report(study), flush=True)
        return 0
    payload = {"settings": dataclasses.asdict(settings), "fixed": fixed, "dir": settings.dir}
    if settings.launcher == "local":
        codes = run_local(payload, settings)
    else:
        cluster = "slurm" if settings.launcher == "slurm" else "local"
        codes = run_submitit(payload, settings, cluster)
    print(write_report(study), flush=True)
    return outcome(codes, study)


def outcome(codes: list[int], study: object) -> int:
    """The command's exit status from its workers'."""
    from phonemlp.search.study import SearchStudy

    assert isinstance(study, SearchStudy)
    stopped = [c for c in codes if c > 128]
    if stopped:
        name = signal.Signals(stopped[0] - 128).name if stopped[0] - 128 < 65 else "a signal"
        print(
            f"{PROGRAM}: stopped by {name}; the same command continues the study (interrupted "
            "trials resume from their checkpoints)",
            file=sys.stderr,
        )
        return stopped[0]
    if EXIT_FAILING in codes:
        failed = [t for t in study.study.get_trials(deepcopy=False) if "error" in t.user_attrs]
        last = max(failed, key=lambda t: t.number).user_attrs["error"] if failed else "?"
        raise PhonemlpError(
            f"{study.settings.max_failures} trials failed in a row, the last with: {last}; "
            "fix it and run the same command to continue"
        )
    if any(codes):
        print(
            f"{PROGRAM}: a worker ended with an error; its traceback is in "
            f"{study.dir / 'workers'} (local) or {study.dir / '.submitit'} (Slurm)",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if {"-h", "--help"} & set(argv):
        with exit_on_user_error(PROGRAM):
            print(search_help(), end="")
        return
    with exit_on_user_error(PROGRAM):
        code = run(argv)
    sys.exit(code)


__all__ = ["main", "SearchSettings"]
