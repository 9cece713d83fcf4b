"""Where and how to compute: device, precision, threads, seeds."""

from __future__ import annotations

import random

import numpy as np
import torch

from phonemlp.errors import PhonemlpError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(name: str) -> torch.device:
    """`auto` is the GPU when there is one, else the CPU."""
    if name not in DEVICES:
        raise PhonemlpError(f"device={name!r} is not one of {', '.join(DEVICES)}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise PhonemlpError(
            "device=cuda but no CUDA GPU is available; use device=auto or device=cpu"
        )
    return torch.device(name)


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


def choose_precision(name: str, device: torch.device) -> tuple[str, str]:
    """The precision to compute in, and why: `auto` is bf16 only where the hardware computes
    it natively (CUDA compute capability >= 8.0; CPUs with AVX512-BF16 or AMX), fp16 with the
    grad scaler on older CUDA GPUs (T4, V100), else fp32."""
    if name not in PRECISIONS:
        raise PhonemlpError(f"precision={name!r} is not one of {', '.join(PRECISIONS)}")
    if name == "fp16" and device.type != "cuda":
        raise PhonemlpError("precision=fp16 needs a CUDA GPU; use precision=bf16 or fp32 on a CPU")
    if name != "auto":
        return name, "set by precision=" + name
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        gpu = f"{torch.cuda.get_device_name(device)} (compute capability {major}.{minor})"
        if major >= 8:
            return "bf16", f"auto: {gpu} computes bf16 natively"
        return "fp16", f"auto: {gpu} has no native bf16; fp16 with the grad scaler"
    if cpu_supports_bf16():
        return "bf16", "auto: this CPU has native bf16 (AVX512-BF16 or AMX)"
    return "fp32", "auto: this CPU has no native bf16 (AVX2 only: bf16 would be emulated, slower)"


def resolve_precision(name: str, device: torch.device) -> str:
    """The precision `choose_precision` picks, without the reason."""
    return choose_precision(name, device)[0]


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The autocast context for a resolved precision (disabled for fp32)."""
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=precision != "fp32")


DEFAULT_THREADS = torch.get_num_threads()
"""torch's own thread count, restored by threads=0 (an earlier job of a sweep may have set one)."""


def configure(device: torch.device, threads: int) -> None:
    """Thread count on CPU, TF32 matmuls on GPUs that have them."""
    torch.set_num_threads(threads if threads > 0 else DEFAULT_THREADS)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
