"""Old import path of :mod:`sparsewino.schema` (moved to the package root, a foundation module)."""
from __future__ import annotations

from ..schema import (
    NO_RESULT_CHANGE,
    ConfigError,
    OutOfRangeError,
    check_range,
    from_dict,
    to_dict,
    unknown_key_error,
)

__all__ = ["ConfigError", "OutOfRangeError", "from_dict", "to_dict", "check_range", "unknown_key_error",
           "NO_RESULT_CHANGE"]
