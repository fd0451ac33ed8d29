"""Where a large V lives: in memory, or in a disk-backed memory map when it does not fit.

The selection reads V in chunks of candidate rows (:func:`fishermask.fisher.mean_fisher`, the
set-up and refresh of :func:`fishermask.fisher.greedy_select`) or in one sequential pass per
block of steps (the block product), and gathers a few rows per step (exact re-scoring, guesses),
so a V whose storage is a file works unchanged: the operating system keeps the pages it can and
reads the rest again, and only the chunks, the d x d matrices and O(N C^2) carried values must
fit in memory (docs/benchmarks.md, "The paper's mask size").
"""

from __future__ import annotations

import math
import tempfile

import numpy as np
import torch

_NUMPY = {torch.float32: np.float32, torch.float64: np.float64}


def disk_tensor(
    shape: tuple[int, ...], dtype: torch.dtype = torch.float32, directory: str | None = None
) -> torch.Tensor:
    """An uninitialised CPU tensor of ``shape`` whose storage is a memory-mapped file.

    The file is an anonymous temporary file in ``directory`` (default: the system's temporary
    directory), already unlinked: its disk space is freed when the tensor is.
    """
    if dtype not in _NUMPY:
        raise TypeError(f"disk_tensor supports float32 and float64, not {dtype}")
    nbytes = max(1, math.prod(shape) * torch.finfo(dtype).bits // 8)
    with tempfile.TemporaryFile(dir=directory) as f:
        f.truncate(nbytes)
        arr = np.memmap(f, dtype=_NUMPY[dtype], mode="r+", shape=shape)
    return torch.from_numpy(arr)


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``), else ``None``."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def pool_tensor(
    shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, fraction: float = 0.5
) -> torch.Tensor:
    """An empty tensor for V: in memory, or on disk (:func:`disk_tensor`) when it is a CPU
    tensor larger than ``fraction`` of the available memory."""
    nbytes = math.prod(shape) * torch.finfo(dtype).bits // 8
    free = available_memory()
    if device.type == "cpu" and dtype in _NUMPY and free is not None and nbytes > fraction * free:
        return disk_tensor(shape, dtype)
    return torch.empty(shape, dtype=dtype, device=device)
