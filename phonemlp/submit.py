"""phonemlp-submit: check a submission CSV against the test split, then upload it to Kaggle.

phonemlp-submit file=submission.csv [message="pyramid c30"] [data.root=ROOT]
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

from phonemlp.errors import exit_on_user_error
from phonemlp.kaggle_api import (
    DAILY_SUBMISSIONS,
    DEFAULT_COMPETITION,
    require_credentials,
    submit_to_kaggle,
)
from phonemlp.options import parse_options, require
from phonemlp.submission import count_frames, validate_submission

PROGRAM = "phonemlp-submit"

HELP = f"""usage: {PROGRAM} file=submission.csv [message=TEXT] [data.root=ROOT] [key=value ...]

Checks the CSV before anything is uploaded: the header is id,label in any case (the starter
notebook's id,label or Id,Label), there is one row per frame of ROOT's test split, the ids run
0..N-1 in order, and the labels are all phoneme symbols (AH; S25/F24 editions) or all class
indices 0..39. Then submits it through the kaggle package's API (at most {DAILY_SUBMISSIONS}
submissions a day).

  file              the CSV to submit (required)
  message           the submission's description on Kaggle (default: the file name)
  competition       the Kaggle competition slug (default {DEFAULT_COMPETITION})
  data.root         the corpus the predictions are for (default: the embedded demo corpus,
                    like phonemlp-train)
  data.test_split   the test split folder (default test-clean)
  dry_run           true: check the CSV only, upload nothing

Credentials: whatever the kaggle package accepts, in its order: an API token in
KAGGLE_API_TOKEN (the token or a file holding it) or in ~/.kaggle/access_token; a legacy
~/.kaggle/kaggle.json (or $KAGGLE_CONFIG_DIR/kaggle.json) or KAGGLE_USERNAME and KAGGLE_KEY;
the OAuth login `kaggle auth login` saves (~/.kaggle/credentials.json). They are checked
before the CSV, except with dry_run=true. `phonemlp-predict ... submit=true` writes and
submits in one go.
"""

DEFAULTS = {
    "file": None,
    "message": None,
    "competition": DEFAULT_COMPETITION,
    "dry_run": False,
    "data": {"root": None, "test_split": "test-clean", "demo_seed": 0},
}


def submit_csv(path: Path, message: str | None, competition: str, frames: int, where: str) -> str:
    """Validate the CSV for `frames` test frames (of `where`), then upload it."""
    label_format = validate_submission(path, frames, where)
    print(f"{path}: valid ({frames:,} rows, labels as {label_format})", flush=True)
    answer = submit_to_kaggle(path, message or f"phonemlp: {path.name}", competition)
    print(
        f"submitted {path} to {competition}: {answer or 'accepted'}; scores at "
        f"https://www.kaggle.com/competitions/{competition}/submissions",
        flush=True,
    )
    return answer


def submit(options: SimpleNamespace) -> None:
    from phonemlp.data.splits import corpus_root

    path = Path(str(require(options, "file", "phonemlp-submit file=submission.csv"))).expanduser()
    if not options.dry_run:
        require_credentials()  # before the (possibly long) check of a large CSV
    root = corpus_root(options.data.root, int(options.data.demo_seed))
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
    args = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in args):
        print(HELP)
        return
    with exit_on_user_error(PROGRAM):
        submit(parse_options(args, DEFAULTS))


if __name__ == "__main__":
    main()
