"""The one exception type for problems a user can fix (bad data, bad settings)."""

import contextlib
import sys
from collections.abc import Iterator


class PhonemlpError(Exception):
    """A user-facing error: its message is one line naming the file or setting and the fix."""


@contextlib.contextmanager
def exit_on_user_error(program: str) -> Iterator[None]:
    """Turn a PhonemlpError into one line on stderr and exit status 2, no traceback."""
    try:
        yield
    except PhonemlpError as error:
        print(f"{program}: error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
