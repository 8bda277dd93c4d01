"""Markdown tables of the registries (pruning methods and their options, layer kinds, datasets, models).

The docs hold each table between ``<!-- generated: NAME -->`` and ``<!-- end generated -->``.
``python -m sparsewino.doc_tables`` rewrites them from the registries (``make docs``);
``--check`` lists the stale ones and exits 1 (the test suite runs the same check), so a new
method, layer kind, dataset or model shows up in the docs by registration alone.
"""
from __future__ import annotations

import argparse
import re
import sys
import typing
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from .data.augment import Augmentation
from .data.registry import DATASETS
from .engine.ops import COMPILED_KINDS, NODE_OPS
from .models.registry import MODELS, model_options
from .nn.kinds import LAYER_KINDS
from .prune.methods.base import METHODS, option_fields

__all__ = ["TABLES", "methods_table", "method_options_table", "layer_kinds_table", "engine_ops_table", "datasets_table",
           "models_table", "render", "update_docs", "main"]

_BLOCK = re.compile(r"(<!-- generated: (?P<name>[a-z_]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


def _table(header: Sequence[str], rows: list[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _values(hint: Any) -> str:
    kind = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
    if typing.get_origin(kind) is Literal:
        return ", ".join(str(v) for v in typing.get_args(kind))
    return {bool: "true/false", int: "integer", float: "number", str: "text"}.get(kind, str(kind))


def methods_table() -> str:
    """Every pruning method: what it does, its layer function, what it prunes and counts."""
    rows = []
    for name, spec in sorted(METHODS.items()):
        by_name = "training callback (recipes: prunes during `finetune`)" if spec.trains else f'`"{name}"`'
        needs = ", ".join(spec.states) or "any"
        rows.append((f"`{name}`", spec.description, f"`{spec.usage}`", by_name, spec.prunes, spec.unit,
                     needs))
    return _table(("method", "what", "layer function", "by name in `prune_model` / `PruningCallback`",
                   "prunes", "amount counts", "model state it needs"), rows)


def method_options_table() -> str:
    """Every method's options in recipes (stage keys) and on the command line (``--flags``)."""
    rows = []
    for name, spec in sorted(METHODS.items()):
        hints = typing.get_type_hints(spec.options)
        for item in option_fields(spec.options):
            flag = "recipes only" if spec.trains else f"`--{item.name.replace('_', '-')}`"
            rows.append((f"`{name}`", f"`{item.name}`", flag, _values(hints[item.name]),
                         item.metadata["help"]))
    return _table(("method", "recipe key", "CLI flag (`prune`)", "values", "meaning"), rows)


#: How each ``LayerKind.made_by`` reads in the layer-kinds table.
_MADE_BY = {"convert": "`convert(model)`", "low_rank": "`convert(model, low_rank=...)`",
            None: "its `from_conv` (convert leaves it)"}


def layer_kinds_table() -> str:
    """Every layer kind: the torch layer it comes from, its layer class, what makes it, its traits."""
    rows = []
    for name, kind in sorted(LAYER_KINDS.items()):
        traits = [f"weight {kind.domain}" if kind.domain else "weight in its `domain`"]
        if kind.low_rank:
            traits.append(f"W = u·v, positions masked on `{kind.mask_name}`")
        if kind.adder:
            traits.append("adder (-|x - w|^p)")
        rows.append((f"`{name}`", f"`nn.{kind.conv_type.__name__}`", f"`{kind.winograd_type.__name__}`",
                     _MADE_BY[kind.made_by], "; ".join(traits), kind.description))
    return _table(("kind", "from", "layer", "made by", "traits", "what"), rows)


def engine_ops_table() -> str:
    """Every kind the engine compiles or runs (the registries of :mod:`sparsewino.engine.ops`)."""
    rows = [(f"`{name}`", "layer", f"`{kind.compiled_names}`", kind.description)
            for name, kind in COMPILED_KINDS.items()]
    rows += [(f"`{name}`", "node", "–", op.description) for name, op in NODE_OPS.items()]
    return _table(("kind", "of", "compiled into", "what"), rows)


def _augmentation(aug: Augmentation) -> str:
    parts = []
    if aug.crop_size:
        parts.append(f"random {aug.crop_size} crop" + (f" (pad {aug.crop_padding})" if aug.crop_padding else ""))
    elif aug.crop_padding:
        parts.append(f"crop (pad {aug.crop_padding})")
    parts.append("flip" if aug.flip else "no flip")
    return ", ".join(parts)


def datasets_table() -> str:
    """Every dataset: its files, default place, shape and standard augmentation."""
    rows = []
    for name, spec in sorted(DATASETS.items()):
        place = "–" if name == "fake" else f"`{spec.default_root or 'data/' + name}`"
        options = ", ".join(f"`{o}`" for o in spec.options) or "–"
        shape = f"{spec.in_channels}×{spec.image_size}×{spec.image_size}"
        if spec.frames is not None:
            shape = f"clips {spec.in_channels}×{spec.frames}×{spec.image_size}×{spec.image_size}"
        classes = f"{spec.num_classes} classes" if name != "clip-folder" else "from the files"
        rows.append((f"`{name}`", spec.description, place, f"{shape}, {classes}",
                     _augmentation(spec.augmentation), options))
    return _table(("name", "files", "default place", "images", "augmentation", "options"), rows)


def models_table() -> str:
    """Every model: what it is, the input size it was designed for, its options."""
    rows = []
    for name, entry in sorted(MODELS.items()):
        options = model_options(name)
        rows.append((f"`{name}`", entry.description, str(entry.input_size),
                     "any" if options is None else ", ".join(f"`{o}`" for o in options) or "–"))
    return _table(("name", "what", "input size", "options (`args`)"), rows)


#: Table name -> (docs file, generator).
TABLES: dict[str, tuple[str, Callable[[], str]]] = {
    "methods": ("pruning.md", methods_table),
    "method_options": ("pipeline.md", method_options_table),
    "layer_kinds": ("layers.md", layer_kinds_table),
    "datasets": ("pipeline.md", datasets_table),
    "models": ("pipeline.md", models_table),
    "engine_ops": ("performance.md", engine_ops_table),
}


def render(text: str) -> str:
    """``text`` with every generated block replaced by its table now.

    Raises:
        KeyError: a block names a table that does not exist.
    """
    def replace(match: re.Match) -> str:
        return match.group(1) + TABLES[match.group("name")][1]() + match.group(4)
    return _BLOCK.sub(replace, text)


def update_docs(docs: str | Path = "docs", check: bool = False) -> list[str]:
    """Rewrite the generated tables of ``docs`` (or only report them with ``check=True``).

    Returns:
        The files whose tables were (or, with ``check``, would be) changed.

    Raises:
        ValueError: a table of :data:`TABLES` has no block in its file.
    """
    docs = Path(docs)
    changed = []
    for file in sorted({file for file, _ in TABLES.values()}):
        path = docs / file
        text = path.read_text(encoding="utf-8")
        found = {m.group("name") for m in _BLOCK.finditer(text)}
        missing = [name for name, (f, _) in TABLES.items() if f == file and name not in found]
        if missing:
            raise ValueError(f"{path} has no generated block for {missing}: add "
                             f"'<!-- generated: NAME -->' and '<!-- end generated -->' lines")
        new = render(text)
        if new != text:
            changed.append(str(path))
            if not check:
                path.write_text(new, encoding="utf-8")
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sparsewino.doc_tables [--check] [--docs DIR]``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m sparsewino.doc_tables", description=__doc__)
    parser.add_argument("--docs", default="docs", help="the docs directory (docs)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a table is stale")
    args = parser.parse_args(argv)
    changed = update_docs(args.docs, check=args.check)
    for path in changed:
        print(f"{path}: {'stale generated table (run make docs)' if args.check else 'tables updated'}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
