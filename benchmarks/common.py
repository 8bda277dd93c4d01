"""Shared benchmark helpers: the conditions line, and the printed tables as committed raw data
(timing itself lives in sparsewino.timing)."""
from __future__ import annotations

import argparse
import atexit
import io
import json
import sys
import time
from pathlib import Path

import torch

from sparsewino.timing import cpu_flags, cpu_model, median_time

__all__ = ["conditions", "cpu_model", "median_time", "add_json_argument", "record_output",
           "markdown_tables", "run_record"]


def conditions(batch: str | int, warmup: int, runs: int) -> str:
    """One line stating the benchmark conditions."""
    return (f"CPU: {cpu_model()} | torch {torch.__version__} | threads: {torch.get_num_threads()} "
            f"| batch: {batch} | warm-up: {warmup} | runs: {runs} (median)")


def run_record() -> dict:
    """The conditions every JSON of a benchmark starts with: command, date, CPU model and vector
    flags, torch version, threads."""
    return {"command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M"),
            "cpu": cpu_model(), "cpu_flags": cpu_flags(), "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    """``--json PATH``: also write every table the benchmark prints (see :func:`record_output`)."""
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the printed tables, with the CPU, its flags, threads and "
                             "the command, to this JSON file (the raw data of a docs table)")


def markdown_tables(text: str) -> list[dict]:
    """Every Markdown table in ``text``: its caption (the last non-empty line before it), header
    and rows (cells as printed)."""
    tables: list[dict] = []
    caption, lines = "", text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("|") and i + 1 < len(lines) and set(lines[i + 1].strip()) <= set("|-: "):
            cells = lambda row: [c.strip() for c in row.strip().strip("|").split("|")]   # noqa: E731
            header, rows = cells(line), []
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(cells(lines[i]))
                i += 1
            tables.append({"caption": caption, "header": header, "rows": rows})
            continue
        if line:
            caption = line
        i += 1
    return tables


class _Tee(io.TextIOBase):
    def __init__(self, *streams: io.TextIOBase) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def record_output(path: Path | None) -> None:
    """With a ``path`` (``--json``): keep printing as usual, and when the script finishes without
    an error, write the printed tables (:func:`markdown_tables`), the whole output and the
    conditions (command, date, CPU model and flags, torch, threads) there as JSON."""
    if path is None:
        return
    captured, failed = io.StringIO(), []
    stdout = sys.stdout
    sys.stdout = _Tee(stdout, captured)
    hook = sys.excepthook

    def on_error(*exc_info) -> None:
        failed.append(True)
        hook(*exc_info)

    def write() -> None:
        sys.stdout = stdout
        if failed:
            print(f"not writing {path}: the benchmark failed", file=sys.stderr)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**run_record(), "output": captured.getvalue(),
                                    "tables": markdown_tables(captured.getvalue())}, indent=1) + "\n")
        print(f"wrote {path}", file=sys.stderr)

    sys.excepthook = on_error
    atexit.register(write)


def prune_random(weight: torch.Tensor, sparsity: float, seed: int) -> torch.Tensor:
    """``weight`` with exactly ``round(sparsity * numel)`` zeros at random positions."""
    zeros = round(sparsity * weight.numel())
    order = torch.randperm(weight.numel(), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones(weight.numel())
    mask[order[:zeros]] = 0
    return weight * mask.reshape(weight.shape)


def prune_random_blocks(weight: torch.Tensor, sparsity: float, seed: int) -> torch.Tensor:
    """``round(sparsity * blocks)`` random blocks of BLOCK_ROWS output channels (dim 0) at one
    index of the other dims set to zero (K a multiple of the block): :func:`prune_random` over
    the blocks."""
    from sparsewino.engine.kernels import BLOCK_ROWS as block
    k, rest = weight.shape[0], weight.shape[1:]
    if k % block:
        raise ValueError(f"--blocks needs output channels that are a multiple of {block}")
    mask = prune_random(torch.ones(k // block, 1, *rest), sparsity, seed)
    return weight * mask.expand(k // block, block, *rest).reshape(weight.shape)
