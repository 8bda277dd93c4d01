"""The import layering of docs/architecture.md holds: no module imports from a layer above its own."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "sparsewino"

#: Modules at the package root that import nothing from the package (but each other): any layer may use them.
FOUNDATION = {"errors", "registry", "timing", "native", "files", "schema", "onnx_import", "allocator"}
_LOW = {"winograd", "nn", "prune", "engine", "data", "models"}
#: What each part of the package may import (architecture.md, "Rules of the house").
ALLOWED = {
    "winograd": set(),
    "nn": {"winograd"},
    "prune": {"nn", "winograd"},
    "engine": {"nn", "winograd"},
    "data": set(),
    "models": {"nn", "winograd"},
    "train": {"prune", "nn", "winograd", "data", "models"},
    "report": {"train", *_LOW},
    "recipes": {"report", "train", *_LOW},
    "doc_tables": {"recipes", "report", "train", *_LOW},
    "cli": {"recipes", "report", "train", *_LOW},
    "demo": {"cli"},
    "__init__": set(),
}


def imported_parts(source: str, module: tuple[str, ...], is_package: bool) -> set[str]:
    """The top-level parts of sparsewino (``nn``, ``prune``, ``errors``...) that ``source`` imports.

    ``module`` is the importing module's dotted path (``("sparsewino", "nn", "convert")``).
    """
    parts = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(module if is_package else module[:-1])
                base = base[:len(base) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
                targets = [target + [alias.name] for alias in node.names] if not node.module else [target]
            elif node.module and node.module.split(".")[0] == "sparsewino":
                targets = [node.module.split(".")]
            else:
                continue
        elif isinstance(node, ast.Import):
            targets = [a.name.split(".") for a in node.names if a.name.split(".")[0] == "sparsewino"]
        else:
            continue
        parts.update(t[1] for t in targets if len(t) > 1)
    return parts


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        part = relative.parts[0] if len(relative.parts) > 1 else relative.stem
        dotted = ("sparsewino", *relative.with_suffix("").parts)
        is_package = dotted[-1] == "__init__"
        yield part, path, (dotted[:-1] if is_package else dotted), is_package


def test_the_import_checker_resolves_relative_imports():
    source = "from ..prune import stats\nfrom . import conv\nfrom .. import engine\nimport sparsewino.data.idx\n"
    assert imported_parts(source, ("sparsewino", "nn", "convert"), False) == {"prune", "nn", "engine", "data"}
    assert imported_parts("from .mask import x\n", ("sparsewino", "prune"), True) == {"prune"}


@pytest.mark.parametrize("part", sorted({part for part, *_ in _modules()}))
def test_no_import_runs_upward(part):
    assert part in ALLOWED or part in FOUNDATION, f"new top-level module {part}: add it to ALLOWED"
    allowed = (FOUNDATION - {part}) | ALLOWED.get(part, set())
    for owner, path, dotted, is_package in _modules():
        if owner != part:
            continue
        used = imported_parts(path.read_text(encoding="utf-8"), dotted, is_package) - {part}
        if part in FOUNDATION:
            assert used <= FOUNDATION, f"{path} is a foundation module but imports {sorted(used - FOUNDATION)}"
        assert used <= allowed, (f"{path.relative_to(PACKAGE.parent)} ({part}) imports "
                                 f"{sorted(used - allowed)}; {part} may import only {sorted(allowed)}")
