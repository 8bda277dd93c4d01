"""`make demo`: spatial-Winograd two-step pruning on real Fashion-MNIST, end to end, with a report.

Runs the bundled recipe ``fashion_mnist_spatial_winograd`` (same as
``sparsewino run fashion_mnist_spatial_winograd``): train a baseline, structured spatial pruning
with retraining (step 1), conversion to the Winograd domain, IFM Winograd-domain pruning with
retraining (step 2), evaluation, compilation to the sparse CPU engine, benchmark and report, in
about 10 minutes on 2 idle CPU cores. It prints the headline numbers and where the report is.

A second run reuses the run directory ``runs/fashion_mnist_spatial_winograd``: finished steps are
skipped (an interrupted run resumes where it stopped) and the report is rewritten. Extra
arguments go to ``sparsewino run``: ``--fresh`` starts over, ``--run-dir DIR``, ``--data-dir DIR``,
``--set KEY=VALUE``, ``--quiet``, ``--debug``.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Sequence

from .cli import main as cli_main

__all__ = ["main", "RECIPE"]

RECIPE = "fashion_mnist_spatial_winograd"


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
