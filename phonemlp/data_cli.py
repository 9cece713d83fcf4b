"""phonemlp-data: download, check and prepare a corpus in the HW1P2 layout.

phonemlp-data download root=/data/hw1p2 [competition=11785-spring-25-hw-1-p-2]
phonemlp-data check /data/hw1p2 [rare=0.001]
phonemlp-data prepare /data/hw1p2 [data.normalize=utterance data.dtype=float32]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from phonemlp.errors import PhonemlpError, exit_on_user_error

PROGRAM = "phonemlp-data"

USAGE = f"""usage: {PROGRAM} COMMAND [ROOT] [key=value ...]

Commands:
  download root=DIR [competition=SLUG]   download the Kaggle competition's files through the
                                         kaggle API, unzip them into DIR and check the layout
  check ROOT [rare=0.001]                validate every file of a corpus; a table per split
  prepare ROOT [data.normalize=...]      build the prepared cache that phonemlp-train loads

`{PROGRAM} COMMAND --help` explains a command and lists its keys; ROOT may also be root=ROOT.
"""


def _root(options: DictConfig, usage: str) -> Path:
    if not options.root:
        raise PhonemlpError(f"root is required: {usage}")
    return Path(str(options.root)).expanduser()


def download(options: DictConfig) -> None:
    from phonemlp.kaggle_api import download_competition

    download_competition(_root(options, "phonemlp-data download root=DIR"), options.competition)


def check(options: DictConfig) -> None:
    from phonemlp.corpus_check import check_corpus, format_report, problem_lines

    root = _root(options, "phonemlp-data check ROOT")
    reports, across = check_corpus(root, progress=bool(options.progress))
    for report in reports:
        print(format_report(report, float(options.rare)) + "\n", flush=True)
    if across:
        print("\n".join(["== across splits =="] + problem_lines(across)), flush=True)
    problems = sum(len(r.problems) for r in reports) + len(across)
    if problems:
        raise PhonemlpError(f"{root}: {problems:,} problem(s) found (listed above)")
    print(f"{root}: no problems found")


def prepare(options: DictConfig) -> None:
    from phonemlp.data.splits import Preparation, load_split

    root = _root(options, "phonemlp-data prepare ROOT")
    settings = options.data
    if not root.is_dir():
        raise PhonemlpError(f"{root}: data root not found; give a corpus in the HW1P2 layout")
    splits = {settings.train_split: True, settings.dev_split: True, settings.test_split: False}
    stats = None
    for split, labelled in splits.items():
        started = time.perf_counter()
        data, stats = load_split(root, split, Preparation.of(settings, cache=True), labelled, stats)
        where = getattr(data.features, "filename", None)
        print(
            f"{split}: {len(data.names):,} utterances, {data.frames:,} frames, "
            f"{data.features.dtype} -> {Path(where).parent if where else 'memory'} "
            f"({time.perf_counter() - started:.1f} s)",
            flush=True,
        )


COMMANDS: dict[str, Callable[[DictConfig], None]] = {
    "download": download,
    "check": check,
    "prepare": prepare,
}
DATA_KEYS = ("normalize", "dtype", "cache_dir", "train_split", "dev_split", "test_split")


def run(argv: list[str]) -> None:
    """Run one sub-command (raises PhonemlpError for problems the user can fix)."""
    from phonemlp.cli import command_config

    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        if not argv:
            raise PhonemlpError(f"a command is required: {', '.join(COMMANDS)}")
        return
    command, args = argv[0], argv[1:]
    if command not in COMMANDS:
        raise PhonemlpError(f"unknown command '{command}'; the commands are {', '.join(COMMANDS)}")
    if command == "prepare":  # the data keys without their `data.` prefix too
        args = [f"data.{a}" if a.split("=", 1)[0] in DATA_KEYS else a for a in args]
    options = command_config(f"{PROGRAM} {command}", f"data_{command}", args, positional="root")
    if options is not None:
        COMMANDS[command](options)


def main(argv: list[str] | None = None) -> None:
    """The phonemlp-data console script."""
    with exit_on_user_error(PROGRAM):
        run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
