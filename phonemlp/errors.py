"""The one exception type for problems a user can fix (bad data, bad settings), and how a
command ends."""

import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterator


class PhonemlpError(Exception):
    """A user-facing error: its message is one line naming the file or setting and the fix."""


class RunPruned(Exception):  # noqa: N818 (a stop, not an error)
    """Raised by an `on_epoch` callback to stop a run early (a search's pruner): its
    checkpoints are kept and its status.json says `pruned`."""


def user_error_message(error: BaseException) -> str | None:
    """The one-line message for a problem the user can fix; None for anything else (a bug)."""
    from hydra.errors import HydraException
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    if isinstance(error, MissingMandatoryValue):
        key = getattr(error, "full_key", "") or "a required setting"
        return f"{key} is required; set it as {key}=..."
    if isinstance(error, OmegaConfBaseException):
        return f"config: {str(error).splitlines()[0]}"
    if isinstance(error, PhonemlpError):
        return str(error)
    if isinstance(error, HydraException):  # a bad override or an unknown group option
        text = str(error)
        unknown = re.search(r"Could not override '([^']+)'", text)
        if unknown:
            return (f"config: unknown key '{unknown.group(1)}'; check its spelling "
                    "(--help and docs/configuration.md list the keys)")  # fmt: skip
        text = text.split("Config search path")[0]  # Hydra's search path: noise here
        if error.__cause__ is not None and "Error merging override" in text:
            text += ": " + str(error.__cause__).splitlines()[0]  # why (a wrong type)
        return f"config: {' '.join(text.split())}"
    return None


@contextlib.contextmanager
def exit_on_user_error(program: str) -> Iterator[None]:
    """Turn a problem the user can fix into one line on stderr and exit status 2, no traceback.

    Output cut short by a closed pipe (`phonemlp-bench --help | head`) ends quietly too."""
    try:
        yield
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        sys.exit(1)
    except Exception as error:
        message = user_error_message(error)
        if message is None:
            raise
        print(f"{program}: error: {message}", file=sys.stderr, flush=True)
        sys.exit(2)


@contextlib.contextmanager
def quick_exit() -> Iterator[None]:
    """End the process as soon as the work inside is done (with its exit status): every file
    phonemlp writes is complete by then (written, fsynced, renamed, closed) and the wandb run
    closed, so the interpreter's teardown of torch and friends (over a second) buys nothing."""
    code = 0
    try:
        yield
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if not isinstance(stop.code, int | None):
            print(stop.code, file=sys.stderr)
    for handler in logging.getLogger().handlers + logging.getLogger("phonemlp").handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
