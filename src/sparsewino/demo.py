"""`make demo`: our recipe on real Fashion-MNIST, end to end, with a report.

Runs the bundled recipe ``fashion_mnist_gradual_step2_distill_short`` (same as
``sparsewino run fashion_mnist_gradual_step2_distill_short``): train a baseline (6 epochs), a
light gradual spatial-Winograd step 1, conversion to F(4x4, 3x3) Winograd-domain layers, a
gradual Winograd-domain step 2 (importance factor matrix) to 62 % of the Winograd weights, every
fine-tune distilled from the dense model, then evaluation, compilation to the sparse CPU engine,
benchmark and report, in under 10 minutes on 2 idle CPU cores. It is our recipe
``fashion_mnist_gradual_step2_distill`` cut after its first step-2 stage (the full one goes on to
72 % in a few more minutes). It prints the headline numbers and where the report is
(docs/results.md has the measured runs).

A second run reuses the run directory ``runs/fashion_mnist_gradual_step2_distill_short``:
finished steps are skipped (an interrupted run resumes where it stopped) and the report is
rewritten. Extra arguments go to ``sparsewino run``: ``--fresh`` starts over, ``--run-dir DIR``,
``--data-dir DIR``, ``--set KEY=VALUE``, ``--threads N``, ``--quiet``, ``--debug``.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Sequence

from .cli import main as cli_main

__all__ = ["main", "RECIPE"]

RECIPE = "fashion_mnist_gradual_step2_distill_short"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo recipe; ``argv`` are extra ``sparsewino run`` options. Returns the exit status."""
    extra = list(sys.argv[1:] if argv is None else argv)
    if "-h" in extra or "--help" in extra:
        print(__doc__)
        return 0
    status = cli_main(["run", RECIPE, *extra])
    hint = command_hint()
    if status == 0 and hint:
        print(hint)
    return status


def command_hint() -> str | None:
    """Where the ``sparsewino`` command is when it is not on ``PATH`` (``None`` when it is)."""
    if shutil.which("sparsewino"):
        return None
    command = Path(sys.executable).parent / "sparsewino"
    activate = Path(sys.executable).parent / "activate"
    text = f"the sparsewino command is {command}"
    if activate.is_file():
        text += f" (or `source {activate}` once, then type sparsewino)"
    return text + f", e.g. {command} inspect runs/{RECIPE}/model.pt"


if __name__ == "__main__":
    sys.exit(main())
