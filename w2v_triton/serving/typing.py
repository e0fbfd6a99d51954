"""Array type aliases shared by the library, so signatures say which dtype flows where."""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]
"""Audio samples and logits (float32, the dtype every model input/output uses)."""
IntArray = NDArray[np.int64]
"""Lengths, token ids."""
AnyArray = NDArray[Any]
"""Arrays whose dtype the caller decides (raw decoded audio before conversion, generic helpers)."""

__all__ = ["AnyArray", "FloatArray", "IntArray"]
