"""Memory budgets: parse sizes such as ``2GB``, measure what the machine has, and read peak RSS."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from .errors import SeedPrintsError

#: Share of available memory that extraction may use when no budget is given.
DEFAULT_SHARE = 0.6

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*$")


class MemoryBudgetError(SeedPrintsError):
    """A memory budget is unreadable or too small for the work asked of it."""


def parse_size(text: str | int | float) -> int:
    """Bytes in a size such as ``2GB``, ``512MiB``, ``1.5g`` or a plain number of bytes."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text <= 0:
            raise MemoryBudgetError(f"memory budget must be positive, got {text!r}")
        return int(text)
    m = _SIZE.match(str(text).lower())
    if not m or m.group(2) not in _UNITS:
        raise MemoryBudgetError(f"cannot read memory size {text!r}: write it like 2GB, 512MB or 1.5GiB")
    value = int(float(m.group(1)) * _UNITS[m.group(2)])
    if value <= 0:
        raise MemoryBudgetError(f"memory budget must be positive, got {text!r}")
    return value


def format_size(n: float) -> str:
    """Human form of a byte count, in decimal units (what --max-memory reads back)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def available_ram() -> int:
    """Bytes of RAM available to new allocations (MemAvailable, capped by a cgroup limit if any)."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    if avail is None:
        avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit.isdigit() and int(limit) < (1 << 60):
                avail = min(avail, int(limit) - int(Path(usage_file).read_text().strip()))
            break
        except (OSError, ValueError):
            continue
    return max(int(avail), 0)


def default_budget(device: torch.device) -> int:
    """60% of free GPU memory on a GPU, else 60% of available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(DEFAULT_SHARE * free)
    return int(DEFAULT_SHARE * available_ram())


def resolve_budget(max_memory: str | int | None, device: torch.device) -> int:
    """The caller's budget in bytes, or the default for this device."""
    return default_budget(device) if max_memory is None else parse_size(max_memory)


_TRIM: Any = None  # glibc's malloc_trim once looked up; False where there is none


def release_freed_memory() -> None:
    """Hand memory freed by Python and torch back to the OS (glibc's malloc_trim), where that exists.

    Layer streaming frees one layer's tensors after each layer; without this the C heap keeps
    the freed pages and peak memory creeps up with depth.
    """
    global _TRIM
    if _TRIM is None:
        try:
            import ctypes

            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


def peak_rss() -> int:
    """Peak resident set size of this process so far (VmHWM), in bytes; 0 where unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
