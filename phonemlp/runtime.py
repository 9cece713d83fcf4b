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


def resolve_precision(name: str, device: torch.device) -> str:
    """`auto` is bf16 where the device computes it natively, else fp32."""
    if name not in PRECISIONS:
        raise PhonemlpError(f"precision={name!r} is not one of {', '.join(PRECISIONS)}")
    if name == "fp16" and device.type != "cuda":
        raise PhonemlpError("precision=fp16 needs a CUDA GPU; use precision=bf16 or fp32 on a CPU")
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if cpu_supports_bf16() else "fp32"
    return name


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
