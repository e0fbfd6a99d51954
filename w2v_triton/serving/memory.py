"""Give the heap memory a finished request freed back to the operating system.

Why: glibc's malloc raises its mmap threshold each time a large block is freed (up to 32 MiB), so
after one long request the tensors of the next ones come from the heap, and what they free stays
resident in the process: a model process that served one 10-minute request kept its memory after
it (docs/optimization.md, "Memory"). `malloc_trim(0)` hands every free page of every malloc arena
back. Without glibc (musl, macOS) there is nothing to call and this does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from functools import lru_cache

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):
        logger.info("no glibc malloc_trim here: freed heap stays with the process")
        return None
    return trim


def release_heap() -> None:
    """Return the free pages of every malloc arena to the OS (glibc `malloc_trim(0)`)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
