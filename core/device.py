"""Pick the compute device and seed every random number generator once.

``select_device("auto")`` prefers CUDA, then Apple MPS, then the CPU; an explicit choice that this
machine cannot honour is an error that names what is available. ``seed_everything`` seeds Python,
NumPy and torch (all CUDA devices too) from one integer.
"""

from __future__ import annotations

import logging
import os
import random
import time
from functools import cache

import numpy as np
import torch

logger = logging.getLogger(__name__)

__all__ = ["available_devices", "fast_bfloat16", "seed_everything", "select_device"]


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """Names of the device kinds usable on this machine, best first.

    Returns:
        A list drawn from ``"cuda"``, ``"mps"`` and ``"cpu"``; ``"cpu"`` is always last.
    """
    names = []
    if torch.cuda.is_available():
        names.append("cuda")
    if _mps_available():
        names.append("mps")
    names.append("cpu")
    return names


def select_device(pref: str = "auto") -> torch.device:
    """Resolve a device preference to a usable ``torch.device``.

    Under ``torchrun`` with CUDA, ``"auto"`` and ``"cuda"`` pick ``cuda:$LOCAL_RANK``.

    Args:
        pref: ``"auto"`` (CUDA, else MPS, else CPU), ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"cpu"``.

    Returns:
        The device to put models and tensors on.

    Raises:
        ValueError: ``pref`` is not a device name, or names a device this machine does not have.

    Example:
        >>> select_device("cpu")
        device(type='cpu')
    """
    choice = pref.strip().lower()
    if choice == "auto":
        choice = available_devices()[0]
    try:
        device = torch.device(choice)
    except RuntimeError as err:
        raise ValueError(f"device {pref!r} is not a device name; use auto, cuda, cuda:N, mps or cpu") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {pref!r} asked for but CUDA is not available here; "
                f"use one of {available_devices()} or auto"
            )
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {pref!r} asked for but only {torch.cuda.device_count()} CUDA device(s) exist; "
                "use cuda:0 … or auto"
            )
    elif device.type == "mps":
        if not _mps_available():
            raise ValueError(
                f"device {pref!r} asked for but MPS is not available here; "
                f"use one of {available_devices()} or auto"
            )
    elif device.type != "cpu":
        raise ValueError(f"device {pref!r} is not supported; use auto, cuda, cuda:N, mps or cpu")
    logger.debug("selected device %s (asked for %r)", device, pref)
    return device


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device).

    Args:
        seed: Any integer; it is reduced modulo 2**32 for NumPy.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


@cache
def fast_bfloat16(device_type: str = "cpu") -> bool:
    """True when bfloat16 matrix products run at least twice as fast as float32 on ``device_type``.

    CUDA: the device supports bfloat16 (Ampere and later). CPU: measured once per process — a
    (1024 × 512) @ (512 × 2048) product in each dtype, best of three (~30 ms); CPUs with AMX or
    AVX512-BF16 (Sapphire Rapids and later) pass, others (emulated bfloat16) do not. Other
    devices: False.
    """
    if device_type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device_type != "cpu":
        return False
    a32, b32 = torch.randn(1024, 512), torch.randn(512, 2048)

    def best(a: torch.Tensor, b: torch.Tensor) -> float:
        times = []
        for _ in range(4):
            t0 = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - t0)
        return min(times[1:])

    float32_s = best(a32, b32)
    bfloat16_s = best(a32.bfloat16(), b32.bfloat16())
    logger.debug("matmul float32 %.4f s, bfloat16 %.4f s", float32_s, bfloat16_s)
    return bfloat16_s * 2 <= float32_s
