"""Result rows as Markdown, CSV and JSON tables."""
from __future__ import annotations

import csv
import io
import json
import math
from typing import Any, Sequence

__all__ = ["COLUMNS", "rows_to_csv", "rows_to_markdown", "rows_to_json", "format_value"]

#: Known columns in display order: key, Markdown header, format.
COLUMNS: list[tuple[str, str, str]] = [
    ("stage", "stage", "text"), ("kind", "kind", "text"), ("step", "step", "text"),
    ("accuracy", "accuracy", "pct2"), ("spatial_sparsity", "spatial sparsity", "pct1"),
    ("winograd_sparsity", "Winograd sparsity", "pct1"),
    ("reduction_vs_direct", "mult. reduction vs direct", "x"),
    ("reduction_vs_winograd", "vs dense Winograd", "x"),
    ("reduction_dynamic", "with activation sparsity (vs direct)", "x"),
    ("speedup_vs_dense", "compiled speed-up vs dense", "x"),
    ("seconds", "time (s)", "int"),
]
_EXTRA_CSV = ["activation_density", "loss", "target", "epochs", "accuracy_before_finetune", "direct_mults",
              "winograd_mults", "sparse_mults", "compiled_accuracy", "compiled_max_abs_error", "batch_size", "threads",
              "dense_ms", "model_ms", "compiled_ms", "speedup_vs_model"]


def format_value(value: Any, style: str) -> str:
    """A cell: percentages, ``N.NNx`` ratios, integers or text; ``-`` for missing values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if style == "pct2":
        return f"{100 * value:.2f}%"
    if style == "pct1":
        return f"{100 * value:.1f}%"
    if style == "x":
        return f"{value:.2f}x"
    if style == "int":
        return f"{value:.0f}"
    return str(value)


def rows_to_markdown(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]] = COLUMNS) -> str:
    """A Markdown table of ``rows`` with ``columns`` (columns empty in every row are dropped)."""
    used = [c for c in columns if any(r.get(c[0]) not in (None, "") for r in rows)]
    lines = ["| " + " | ".join(c[1] for c in used) + " |",
             "|" + "|".join("---" if c[2] == "text" else "---:" for c in used) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(format_value(row.get(c[0]), c[2]) for c in used) + " |")
    return "\n".join(lines)


def rows_to_csv(rows: Sequence[dict[str, Any]], leading: Sequence[str] = ()) -> str:
    """CSV with ``leading`` columns, the known columns, then every other key found in the rows."""
    keys = list(leading) + [c[0] for c in COLUMNS if c[0] not in leading] + \
        [k for k in _EXTRA_CSV if k not in leading]
    for row in rows:
        keys += [k for k in row if k not in keys and not isinstance(row[k], (dict, list))]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in keys})
    return buffer.getvalue()


def rows_to_json(rows: Sequence[dict[str, Any]], **extra: Any) -> str:
    """``{"rows": [...], **extra}`` as indented JSON."""
    return json.dumps({"rows": list(rows), **extra}, indent=1, default=str)
