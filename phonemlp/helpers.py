"""Helper processes: small Python processes a run starts beside itself (`python -m <module>`),
so that slow Python work (wandb, matplotlib) runs on another core instead of competing with
training for the interpreter.

A helper reads requests from its stdin and answers on its stdout, one JSON object a line;
it ends when its stdin closes, so it never outlives the process that started it (even one
killed with -9). Its answers start with `REPLY`: a stray line that a library prints is not
an answer. Ctrl-C and SIGTERM are left to the process that started it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

REPLY = "phonemlp-helper "


def start(module: str) -> subprocess.Popen[str]:
    """Start `python -m module` with pipes for its stdin and stdout (stderr is shared); it
    finds phonemlp even when the package is only on this process's sys.path (a notebook).
    Raises OSError when it cannot start."""
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[1])
    if package_parent not in _site_folders():  # a checkout or a notebook's path: say where
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", module], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, env=env,
    )  # fmt: skip


def _site_folders() -> set[str]:
    """Where installed packages live; never put on PYTHONPATH (ahead of the standard
    library, where a same-named module would shadow it)."""
    import site
    import sysconfig

    paths = sysconfig.get_paths()
    folders = {paths["purelib"], paths["platlib"], *site.getsitepackages()}
    return {str(Path(folder).resolve()) for folder in [*folders, site.getusersitepackages()]}


def send(process: subprocess.Popen[str], **request: Any) -> bool:
    """Send one request; False when the helper has gone."""
    try:
        assert process.stdin is not None
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()
        return True
    except (BrokenPipeError, OSError, ValueError):  # ValueError: its pipe was closed here
        return False


def answers(process: subprocess.Popen[str]) -> Iterator[dict[str, Any]]:
    """The helper's answers, as they come, until it closes its stdout."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith(REPLY):
            yield json.loads(line[len(REPLY) :])


def _requests(stream: IO[str]) -> Iterator[dict[str, Any]]:
    for line in stream:
        yield json.loads(line)


def serve(nice: int) -> tuple[Iterator[dict[str, Any]], Callable[..., None]]:
    """In the helper: leave Ctrl-C and SIGTERM to the process that started it, lower its
    priority, and send everything printed to stderr. Returns its requests, as they come
    until its stdin closes, and a `reply(**answer)` function."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if hasattr(os, "nice"):  # (not on Windows)
        os.nice(nice)
    replies = sys.stdout.fileno()  # written unbuffered: nothing is left to flush at exit
    sys.stdout = sys.stderr

    def reply(**answer: Any) -> None:
        with contextlib.suppress(OSError):  # the process that started it has gone
            os.write(replies, (REPLY + json.dumps(answer) + "\n").encode())

    return _requests(sys.stdin), reply
