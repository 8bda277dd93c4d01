"""Compile-time tuning: pick each Winograd layer's tile and weight formats by measuring them.

``engine.compile(model, tune=example_input)`` runs the model once to learn every layer's input
shape, then, for each Winograd layer whose weights are spatial (so any tile computes the same
function: F(2,3), F(4,3), F(6,3) for 3x3 kernels, within the fp32 error limit of
:func:`sparsewino.winograd.choose_tile`), times the compiled layer for every candidate tile and
format rule (``auto``, all ``sparse``, all ``dense``, all ``blocked``) on that shape and keeps the
fastest.
Winograd-domain layers keep their tile (their weights, and their zeros, belong to it) and
tune only the formats; Winograd-ReLU layers keep everything (the tile is part of their
function).

Decisions are cached in a JSON file (``$SPARSEWINO_CACHE_DIR`` or ``~/.cache/sparsewino``,
``tuning.json``) keyed by the CPU, its SIMD flags, the backend, the threads, the layer's shape,
the density of its weights and the input shape, so a second compile of the same model on the
same machine is instant and makes the same choice. Results never depend on the choice beyond
fp32 rounding (every candidate computes the layer's function).
"""
from __future__ import annotations

import json
import logging
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..nn.conv import WinogradConv2d, WinogradConv3d
from ..timing import cpu_flags, cpu_model, interleaved_times
from . import kernels

__all__ = ["TuningChoice", "TuningCache", "record_input_shapes", "candidate_tiles", "tune_layer", "retiled",
           "default_cache_path"]

logger = logging.getLogger(__name__)
FORMAT_RULES = ("auto", "sparse", "dense", "blocked")


@dataclass(frozen=True)
class TuningChoice:
    """The measured choice for one layer: tile, format rule, and the times seen (ms)."""

    tile: int
    formats: str
    times: dict[str, float]                 # "F(4,3)/auto" -> median ms
    cached: bool = False

    def describe(self) -> str:
        best = min(self.times.values())
        others = ", ".join(f"{k} {v:.3g}" for k, v in sorted(self.times.items(),
                                                             key=lambda kv: kv[1])[1:4])
        return (f"tuned{' (cached)' if self.cached else ''}: F({self.tile},r) {self.formats} "
                f"{best:.3g} ms" + (f" (then {others})" if others else ""))


def default_cache_path() -> Path:
    """Where tuning decisions are kept: ``$SPARSEWINO_CACHE_DIR/tuning.json`` or
    ``~/.cache/sparsewino/tuning.json``."""
    root = os.environ.get("SPARSEWINO_CACHE_DIR") or Path.home() / ".cache" / "sparsewino"
    return Path(root) / "tuning.json"


class TuningCache:
    """A JSON file of tuning decisions (read once, written atomically after each new one)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, dict] = {}
        if path is not None and path.is_file():
            try:
                data = json.loads(path.read_text())
                if isinstance(data, dict):
                    self.entries = {k: v for k, v in data.items() if isinstance(v, dict)}
            except (OSError, ValueError) as exc:
                logger.warning("ignoring an unreadable tuning cache %s: %s", path, exc)

    def get(self, key: str) -> TuningChoice | None:
        entry = self.entries.get(key)
        try:
            return TuningChoice(int(entry["tile"]), str(entry["formats"]),
                                {str(k): float(v) for k, v in entry["times"].items()}, True)
        except (TypeError, KeyError, ValueError):
            return None

    def put(self, key: str, choice: TuningChoice) -> None:
        self.entries[key] = {"tile": choice.tile, "formats": choice.formats,
                             "times": choice.times}
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            temporary.write_text(json.dumps(self.entries, indent=1, sort_keys=True))
            os.replace(temporary, self.path)
        except OSError as exc:                         # a read-only home: tune, don't cache
            logger.warning("could not write the tuning cache %s: %s", self.path, exc)


def record_input_shapes(model: nn.Module, example: torch.Tensor) -> dict[int, tuple[int, ...]]:
    """The input shape of every 2-D and 3-D Winograd layer of ``model`` on ``example`` (by ``id``)."""
    shapes: dict[int, tuple[int, ...]] = {}

    def record(module: nn.Module, args: tuple) -> None:
        shapes.setdefault(id(module), tuple(args[0].shape))

    handles = [m.register_forward_pre_hook(record) for m in model.modules()
               if isinstance(m, (WinogradConv2d, WinogradConv3d))]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def candidate_tiles(layer: WinogradConv2d | WinogradConv3d) -> list[int]:
    """Tiles a layer may run with: its own for Winograd-domain and Winograd-ReLU layers, else
    2, 4 and 6 (those within the fp32 error limit; square/cubic kernels only)."""
    own = layer.tile[0]
    if layer.domain != "spatial" or layer.winograd_relu or \
            len(set(layer.kernel_size)) != 1 or len(set(layer.tile)) != 1:
        return [own]
    tiles = []
    for tile in (2, 4, 6):
        resolved, note = type(layer).resolve_tile(layer.kernel_size, tile, layer.points[0])
        if note is None and resolved[0] not in tiles:
            tiles.append(resolved[0])
    return tiles or [own]


def retiled(layer: WinogradConv2d | WinogradConv3d, tile: int) -> WinogradConv2d | WinogradConv3d:
    """``layer`` (spatial domain, not decomposed) with another output tile, the same weights."""
    return type(layer).from_conv(layer.to_conv(), tile=tile, domain="spatial", points=None,
                                 decompose="none")


def tune_layer(layer: WinogradConv2d | WinogradConv3d, shape: tuple[int, ...], threads: int,
               build: Callable[[nn.Module, str], nn.Module], cache: TuningCache,
               runs: int = 7) -> TuningChoice:
    """Time ``build(candidate_layer, formats)`` for each candidate tile and format rule on
    an input of ``shape``; return (and cache) the fastest."""
    weight = layer.weight.detach()
    density = float((weight != 0).float().mean())
    key = "|".join(str(v) for v in (
        cpu_model(), cpu_flags(), kernels.backend(), threads, layer.in_channels,
        layer.out_channels, layer.kernel_size, layer.tile, layer.padding, layer.groups,
        layer.domain, layer.winograd_relu, round(density, 2), shape))
    cached = cache.get(key)
    if cached is not None and cached.tile in candidate_tiles(layer):
        return cached
    x = torch.randn(shape)
    calls: dict[str, Callable[[], object]] = {}
    for tile in candidate_tiles(layer):
        candidate = layer if tile == layer.tile[0] else retiled(layer, tile)
        for rule in FORMAT_RULES:
            compiled = build(candidate, rule)
            compiled.threads = threads
            calls[f"F({tile},{layer.kernel_size[0]})/{rule}"] = lambda m=compiled: m(x)
    # In turns, so that a burst of load hits every candidate alike.
    rounds = interleaved_times(calls, warmup=1, repeats=runs)
    times = {name: statistics.median(values) * 1e3 for name, values in rounds.items()}
    best = min(times, key=times.get)
    tile = int(best.split(",")[0][2:])
    choice = TuningChoice(tile, best.split("/")[1], times)
    cache.put(key, choice)
    return choice
