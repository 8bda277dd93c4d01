"""Errors raised when a dataset is missing, incomplete or corrupt."""
from __future__ import annotations

from ..errors import UserError

__all__ = ["DatasetError", "DatasetNotFoundError"]


class DatasetError(UserError, ValueError):
    """A dataset file exists but cannot be read (corrupt, truncated or of the wrong format)."""


class DatasetNotFoundError(UserError, FileNotFoundError):
    """A dataset could not be found; the message says where we looked and how to get it."""
