"""Progress on long work: a tqdm bar on a terminal, plain log lines anywhere else.

Off a terminal (a Slurm log, `> run.log`, CI) carriage-return bars turn into noise, so there
the same loop prints one plain line every `PLAIN_EVERY_S` seconds or 10 % of the work.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

PLAIN_EVERY_S = 30.0  # a line at least this often...
PLAIN_QUIET_S = 5.0  # ...and at each 10 % of the work, but not more often than this


def is_terminal() -> bool:
    return sys.stderr.isatty()


class PlainProgress:
    """tqdm's small interface (iterate, set_postfix, update, close) as occasional plain lines."""

    def __init__(self, iterable: Iterable[Any] | None, total: int | None, initial: int,
                 desc: str, unit: str) -> None:  # fmt: skip
        self.iterable, self.total, self.n = iterable, total, initial
        self.desc, self.unit = desc, unit
        self.postfix = ""
        self.last_time = time.monotonic()
        self.last_n = initial

    def set_postfix(self, **values: Any) -> None:
        self.postfix = "  ".join(f"{key} {value}" for key, value in values.items())

    def update(self, count: int = 1) -> None:
        self.n += count
        step = max(1, (self.total or 0) // 10)
        now = time.monotonic()
        waited = now - self.last_time
        tenth = bool(self.total) and self.n - self.last_n >= step and waited >= PLAIN_QUIET_S
        if waited >= PLAIN_EVERY_S or tenth:
            of = f"/{self.total}" if self.total else ""
            print(f"{self.desc}: {self.n}{of} {self.unit}  {self.postfix}".rstrip(), flush=True)
            self.last_time, self.last_n = now, self.n

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable or ():
            yield item
            self.update()

    def close(self) -> None:
        pass

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(
    iterable: Iterable[Any] | None = None,
    total: int | None = None,
    initial: int = 0,
    desc: str = "",
    unit: str = "batch",
    disable: bool = False,
) -> Any:
    """A bar over `iterable` (or updated by hand): tqdm on a terminal, else plain lines."""
    if disable:
        from tqdm import tqdm

        return tqdm(iterable, total=total, disable=True)
    if is_terminal():
        from tqdm import tqdm

        return tqdm(iterable, total=total, initial=initial, desc=desc, unit=unit, leave=False)
    return PlainProgress(iterable, total, initial, desc, unit)
