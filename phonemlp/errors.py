"""The one exception type for problems a user can fix (bad data, bad settings)."""

import contextlib
import sys
from collections.abc import Iterator


class PhonemlpError(Exception):
    """A user-facing error: its message is one line naming the file or setting and the fix."""


@contextlib.contextmanager
def exit_on_user_error(program: str) -> Iterator[None]:
    """Turn a PhonemlpError into one line on stderr and exit status 2, no traceback."""
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    try:
        yield
    except MissingMandatoryValue as error:
        key = getattr(error, "full_key", "") or "a required setting"
        print(f"{program}: error: {key} is required; set it as {key}=...", file=sys.stderr)
        sys.exit(2)
    except OmegaConfBaseException as error:
        message = str(error).splitlines()[0]
        print(f"{program}: error: config: {message}", file=sys.stderr, flush=True)
        sys.exit(2)
    except PhonemlpError as error:
        print(f"{program}: error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
