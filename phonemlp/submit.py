"""phonemlp-submit: check a submission CSV against the test split, then upload it to Kaggle.

phonemlp-submit file=submission.csv [message="pyramid c30"] [data.root=ROOT]
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from phonemlp.errors import PhonemlpError, exit_on_user_error
from phonemlp.kaggle_api import require_credentials
from phonemlp.submission import count_frames, submit_csv, validate_submission

PROGRAM = "phonemlp-submit"


def submit(options: DictConfig) -> None:
    from phonemlp.data.splits import corpus_root

    if not options.file:
        raise PhonemlpError("file is required: phonemlp-submit file=submission.csv")
    path = Path(options.file).expanduser()
    if not options.dry_run:
        require_credentials()  # before the (possibly long) check of a large CSV
    root = corpus_root(options.data.root, options.demo_seed)
    split = str(options.data.test_split)
    frames = count_frames(root, split)
    message = None if options.message is None else str(options.message)
    if options.dry_run:
        label_format = validate_submission(path, frames, str(root / split))
        print(f"{path}: valid ({frames:,} rows, labels as {label_format}); not submitted")
        return
    submit_csv(path, message, str(options.competition), frames, str(root / split))


def main(argv: list[str] | None = None) -> None:
    """The phonemlp-submit console script."""
    from phonemlp.cli import command_config

    with exit_on_user_error(PROGRAM):
        options = command_config(PROGRAM, "submit", sys.argv[1:] if argv is None else argv)
        if options is not None:
            submit(options)


if __name__ == "__main__":
    main()
