"""phonemlp-data: download, check and prepare a corpus in the HW1P2 layout.

phonemlp-data download root=/data/hw1p2 [competition=11785-spring-25-hw-1-p-2]
phonemlp-data check /data/hw1p2 [rare=0.001]
phonemlp-data prepare /data/hw1p2 [normalize=utterance dtype=float32 cache_dir=DIR]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

from omegaconf import OmegaConf

from phonemlp.errors import PhonemlpError, exit_on_user_error
from phonemlp.kaggle_api import DEFAULT_COMPETITION, download_competition
from phonemlp.options import parse_options, require

PROGRAM = "phonemlp-data"

USAGE = f"""usage: {PROGRAM} COMMAND [ROOT] [key=value ...]

Commands:
  download root=DIR [competition=SLUG]   download the Kaggle competition's files through the
                                         kaggle API, unzip them into DIR and check the layout
  check ROOT [rare=0.001]                validate every file of a corpus; a table per split
  prepare ROOT [normalize=... dtype=...] build the prepared cache that phonemlp-train loads

`{PROGRAM} COMMAND --help` explains a command; ROOT may also be given as root=ROOT.
"""

DOWNLOAD_HELP = f"""usage: {PROGRAM} download root=DIR [competition=SLUG]

Downloads the competition's files through the kaggle package's API into DIR/.phonemlp-download/,
unzips them, moves the split folders (train-clean-100, dev-clean, test-clean) into DIR, checks
their layout and writes DIR/.phonemlp-download.json. A second call does nothing; an
interrupted one reuses a complete archive (or lets the API resume a partial one) and redoes
the extraction.

  root         the folder to fill (created if missing); the corpus root for data.root=
  competition  the Kaggle competition slug (default {DEFAULT_COMPETITION})

Credentials: ~/.kaggle/kaggle.json (or $KAGGLE_CONFIG_DIR/kaggle.json) from kaggle.com >
Settings > API > Create New Token, or the KAGGLE_USERNAME and KAGGLE_KEY variables. Join the
competition and accept its rules on kaggle.com first.
"""

CHECK_HELP = f"""usage: {PROGRAM} check ROOT [rare=0.001] [progress=true]

Validates every file of every split of ROOT with the rules training applies (matching
mfcc/transcript names, transcripts of frames + 2 symbols from [SOS] to [EOS], known symbols,
readable 2-D float features, finite values, one feature dimension) and prints a table per
split: utterances, frames, feature dimension, utterance length min/median/max, class
frequencies (classes under `rare` of the frames flagged) and every problem found.
Exits with status 2 when it finds a problem, 0 otherwise.
"""

PREPARE_HELP = f"""usage: {PROGRAM} prepare ROOT [normalize=...] [dtype=...] [cache_dir=DIR]

Builds the prepared cache of the train, dev and test splits ahead of training (one
memory-mapped array per split), so that `phonemlp-train data.root=ROOT` with the same
settings starts in seconds. The defaults are phonemlp-train's; `data.`-prefixed keys
(data.normalize=global) are accepted too.

  normalize    utterance | global | none (data.normalize)
  dtype        float32 | float16 storage (data.dtype)
  cache_dir    the cache folder (data.cache_dir; default: the user's phonemlp cache)
  train_split, dev_split, test_split   the split folder names
"""


def download(options: SimpleNamespace) -> None:
    root = require(options, "root", "phonemlp-data download root=DIR")
    download_competition(Path(str(root)), str(options.competition))


def check(options: SimpleNamespace) -> None:
    from phonemlp.corpus_check import check_corpus, format_report, problem_lines

    root = Path(str(require(options, "root", "phonemlp-data check ROOT"))).expanduser()
    reports, across = check_corpus(root, progress=bool(options.progress))
    for report in reports:
        print(format_report(report, float(options.rare)) + "\n", flush=True)
    if across:
        print("\n".join(["== across splits =="] + problem_lines(across)), flush=True)
    problems = sum(len(r.problems) for r in reports) + len(across)
    if problems:
        raise PhonemlpError(f"{root}: {problems:,} problem(s) found (listed above)")
    print(f"{root}: no problems found")


def _data_defaults() -> dict:
    """phonemlp-train's data settings (conf/data/hw1p2.yaml), so prepare builds what it loads."""
    from phonemlp.data.splits import storage_options

    text = resources.files("phonemlp.conf").joinpath("data/hw1p2.yaml").read_text()
    data = OmegaConf.to_container(OmegaConf.create(text))
    storage = storage_options(data)
    return {
        "root": None,
        "normalize": data["normalize"],
        "dtype": storage["dtype"],
        "cache_dir": storage["cache_dir"],
        "train_split": data["train_split"],
        "dev_split": data["dev_split"],
        "test_split": data["test_split"],
    }


def prepare(options: SimpleNamespace) -> None:
    from phonemlp.data.splits import load_split

    root = Path(str(require(options, "root", "phonemlp-data prepare ROOT"))).expanduser()
    if not root.is_dir():
        raise PhonemlpError(f"{root}: data root not found; give a corpus in the HW1P2 layout")
    splits = {options.train_split: True, options.dev_split: True, options.test_split: False}
    stats = None
    for split, labelled in splits.items():
        started = time.perf_counter()
        data, stats = load_split(
            root,
            split,
            str(options.normalize),
            labelled=labelled,
            stats=stats,
            cache=True,
            cache_dir=options.cache_dir,
            dtype=str(options.dtype),
        )
        where = getattr(data.features, "filename", None)
        print(
            f"{split}: {len(data.names):,} utterances, {data.frames:,} frames, "
            f"{data.features.dtype} -> {Path(where).parent if where else 'memory'} "
            f"({time.perf_counter() - started:.1f} s)",
            flush=True,
        )


COMMANDS: dict[str, tuple[Callable[[SimpleNamespace], None], dict, str]] = {
    "download": (download, {"root": None, "competition": DEFAULT_COMPETITION}, DOWNLOAD_HELP),
    "check": (check, {"root": None, "rare": 0.001, "progress": True}, CHECK_HELP),
    "prepare": (prepare, {}, PREPARE_HELP),
}


def run(argv: list[str]) -> None:
    """Run one sub-command (raises PhonemlpError for problems the user can fix)."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        if not argv:
            raise PhonemlpError(f"a command is required: {', '.join(COMMANDS)}")
        return
    command, args = argv[0], argv[1:]
    if command not in COMMANDS:
        raise PhonemlpError(f"unknown command '{command}'; the commands are {', '.join(COMMANDS)}")
    function, defaults, help_text = COMMANDS[command]
    if any(arg in ("-h", "--help") for arg in args):
        print(help_text)
        return
    if command == "prepare":
        defaults = _data_defaults()
    aliases = {f"data.{key}": key for key in defaults}
    function(parse_options(args, defaults, positional="root", aliases=aliases))


def main(argv: list[str] | None = None) -> None:
    """The phonemlp-data console script."""
    with exit_on_user_error(PROGRAM):
        run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
