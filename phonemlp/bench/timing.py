"""Measuring: medians, device synchronisation, this machine's matmul FLOP/s, endless training
batches, and whole commands run in a fresh process for their wall time and peak memory."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from phonemlp.data.windows import WindowedSplit
from phonemlp.errors import PhonemlpError
from phonemlp.runtime import cpu_supports_bf16

BIN = Path(sys.executable).parent  # the console scripts installed beside this Python


def machine() -> dict[str, Any]:
    """This machine: CPU, memory, GPU, versions, and the load average now."""
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_bytes": memory,
        "cpu_bf16": cpu_supports_bf16(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average": list(os.getloadavg()),
    }


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_flops(
    dtype: torch.dtype,
    device: torch.device,
    seconds: float = 0.4,
    shape: tuple[int, int, int] = (4096, 1024, 1024),
) -> float:
    """FLOP/s of an (m x k) @ (k x n) matmul in `dtype`, `shape` = (m, k, n): this machine's
    reference peak (4096x1024 @ 1024x1024 by default; a GPU needs larger to reach its peak)."""
    m, k, n = shape
    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(k, n, device=device).to(dtype)
    for _ in range(3):
        a @ b
    synchronize(device)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(4):
            a @ b
        count += 4
        synchronize(device)
    return 2 * m * k * n * count / (time.perf_counter() - started)


def endless_batches(
    windows: WindowedSplit, batch_size: int, seed: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Training batches in a fresh random order each pass, forever."""
    generator = torch.Generator(device=windows.device).manual_seed(seed)
    while True:
        order = torch.randperm(windows.frames, generator=generator, device=windows.device)
        yield from windows.batches(batch_size, order)


# Starts the measured command from a small fresh process: a child's peak RSS (ru_maxrss)
# counts the memory of whatever process forked it, so forking from the bench would add the
# bench's own memory to every figure.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss * 1024))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(command: list[str], log: Path, cwd: Path) -> tuple[float, int, int]:
    """Run a command to completion: (wall seconds, peak resident bytes, exit status)."""
    peak_file = log.with_name(log.name + ".peak")
    started = time.perf_counter()
    with open(log, "w") as output:
        status = subprocess.call(
            [sys.executable, "-c", _LAUNCHER, str(peak_file), *command],
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )
    seconds = time.perf_counter() - started
    peak = int(peak_file.read_text()) if peak_file.is_file() else 0
    return seconds, peak, status


def run_checked(command: list[str], log: Path, cwd: Path) -> tuple[float, int]:
    seconds, peak, status = run_measured(command, log, cwd)
    if status != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(command)} exited with {status}:\n{tail}")
    return seconds, peak


def script(name: str) -> str:
    """An installed console script: beside this Python, else on PATH."""
    beside = BIN / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise PhonemlpError(
            f"{name}: not found beside {sys.executable} nor on PATH; install phonemlp "
            "(pip install -e .)"
        )
    return found
