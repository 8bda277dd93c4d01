"""Metrics appended as JSON lines (one record per line, rank 0 only)."""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["MetricsLog", "read_metrics"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsLog:
    """Append metric records to a JSON-lines file.

    Args:
        path: the ``.jsonl`` file (created with its directory); ``None`` keeps records in
            memory only.
        enabled: ``False`` on ranks other than 0.

    Examples:
        >>> log = MetricsLog("run/metrics.jsonl")                       # doctest: +SKIP
        >>> log.write(stage="baseline", event="eval", accuracy=0.91)    # doctest: +SKIP
    """

    def __init__(self, path: str | Path | None = None, enabled: bool = True) -> None:
        self.path = Path(path) if path is not None else None
        self.enabled = enabled
        self.records: list[dict[str, Any]] = []
        if self.path is not None and enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, **record: Any) -> dict[str, Any]:
        """Append one record (a ``time`` field is added)."""
        record = {"time": round(time.time(), 3), **{k: _plain(v) for k, v in record.items()}}
        if not self.enabled:
            return record
        self.records.append(record)
        if self.path is not None:
            line = (json.dumps(record) + "\n").encode("utf-8")
            try:   # O_NOFOLLOW: a symbolic link planted at the path is refused, never followed
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o644)
            except OSError as exc:
                if self.path.is_symlink():
                    raise OSError(f"{self.path} is a symbolic link; refusing to write metrics through "
                                  "it (remove the link)") from None
                raise exc
            with os.fdopen(fd, "ab") as handle:
                handle.write(line)
        return record


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Records of a JSON-lines metrics file (a torn last line from a crash is skipped)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records
