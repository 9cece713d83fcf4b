"""Stopping cleanly on a signal: SIGINT (Ctrl-C) and SIGTERM (Slurm, a search's command)
become a flag that the training loop and a search's worker check (no torch here: a search's
command uses it too)."""

from __future__ import annotations

import signal
import threading
from typing import Any


class StopOnSignal:
    """Turn SIGINT/SIGTERM into a flag the loop checks after each batch (main thread only).

    A signal that came too late for the run to act on it (during the last dev pass, or just
    before a search's pruner stopped the run) stays on record in `StopOnSignal.received`, so
    that a caller running several trainings (a search worker) stops after this one."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    received = 0  # the last signal any run of this process received

    def __init__(self) -> None:
        self.signal_number = 0
        self.previous: dict[int, Any] = {}

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name

    def __bool__(self) -> bool:
        return self.signal_number != 0

    def _handle(self, number: int, frame: Any) -> None:
        if self.signal_number:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal_number = StopOnSignal.received = number
        print(f"\n{signal.Signals(number).name}: saving checkpoints/last.pt after this batch")

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for number in self.SIGNALS:
                self.previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)
