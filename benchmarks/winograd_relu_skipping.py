"""Would skipping activation zeros pay in a Winograd-ReLU model? Measured on a real model.

Liu et al.'s point: after the ReLU in the Winograd domain many transformed inputs are zero, so
the element-wise products could skip them. The engine computes a position's product for a
vector of T tiles at once (T = 8 lanes with AVX2, 16 with AVX-512), so a skip saves work only
when a whole vector of T tiles is zero for that channel and position. This script runs a
Winograd-ReLU model on test images and reports, per layer and overall (weighted by the
product stage's work, the non-zero weights of each channel and position):

* the activation density (non-zero transformed inputs after the ReLU);
* the fraction of the product work a per-element skip could save (sparse x sparse, the
  ideal of the paper);
* the fraction a skip of all-zero T-tile vectors could save, for T = 8 and 16, with tiles
  in the engine's order (row-major within an image, images one after another).

    python benchmarks/winograd_relu_skipping.py RUN_DIR_OR_CHECKPOINT [--batches 1 32] [--images 256]
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
from common import add_json_argument, record_output  # noqa: E402

from sparsewino.nn import WinogradConv2d
from sparsewino.recipes import load_model, load_recipe
from sparsewino.recipes.data_setup import DataConfig, prepare_data
from sparsewino.timing import cpu_flags
from sparsewino.train import DistContext
from sparsewino.winograd.tiles import extract_tiles, pad_for_tiles
from sparsewino.winograd.transform import input_transform


def layer_stats(layer: WinogradConv2d, x: torch.Tensor, batch: int) -> dict[str, float]:
    """Work shares of one Winograd-ReLU layer on inputs ``x`` run ``batch`` images at a time."""
    algs = layer.algorithms
    q = layer.winograd_weight().detach()                          # (K, C, n, n)
    weights = (q != 0).sum(dim=0).reshape(q.shape[1], -1).double()  # non-zeros per (c, p)
    total = dense = element = 0.0
    vectors = {8: 0.0, 16: 0.0}                 # vector work with all-zero vectors skipped
    vector_total = {8: 0.0, 16: 0.0}            # vector work without (the kernel's, padding incl.)
    for chunk in x.split(batch):
        padded = pad_for_tiles(chunk.double(), [a.r for a in algs], [a.m for a in algs],
                               layer._padding_pairs)
        v = torch.relu(input_transform(extract_tiles(padded, [a.m for a in algs],
                                                     [a.n for a in algs]), algs))
        nonzero = (v != 0).permute(1, 4, 5, 0, 2, 3)              # (C, n, n, N, Th, Tw)
        nonzero = nonzero.reshape(nonzero.shape[0], -1, math.prod(nonzero.shape[3:]))  # (C, P, T)
        tiles = nonzero.shape[2]
        total += float((weights * tiles).sum())
        element += float((weights * nonzero.sum(dim=2)).sum())
        dense += nonzero.numel()
        for lanes in vectors:
            padded_tiles = -(-tiles // lanes) * lanes
            grouped = torch.nn.functional.pad(nonzero.double(), (0, padded_tiles - tiles))
            alive = grouped.reshape(*grouped.shape[:2], -1, lanes).amax(dim=3)   # (C, P, groups)
            vectors[lanes] += float((weights * alive.sum(dim=2)).sum())
            vector_total[lanes] += float(weights.sum()) * alive.shape[2]
    density = element / total if total else 0.0
    return {"work": total, "density": density, "element": 1 - density,
            "vector8": 1 - vectors[8] / vector_total[8] if total else 0.0,
            "vector16": 1 - vectors[16] / vector_total[16] if total else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a run directory or model checkpoint of a Winograd-ReLU model")
    parser.add_argument("--dataset", default="fashion-mnist",
                        help="for a checkpoint; a run directory's own data is used otherwise")
    parser.add_argument("--images", type=int, default=256, help="test images to run (256)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    add_json_argument(parser)
    args = parser.parse_args()
    record_output(args.json)
    model, _ = load_model(args.model)
    recipe_file = Path(args.model) / "recipe.yaml"
    config = load_recipe(recipe_file).data if recipe_file.is_file() else DataConfig(args.dataset)
    data = prepare_data(config, DistContext(), train=False)
    images = data.test_images(args.images)
    layers = {name: m for name, m in model.named_modules()
              if isinstance(m, WinogradConv2d) and m.winograd_relu}
    if not layers:
        sys.exit(f"{args.model} has no Winograd-ReLU layers")
    inputs: dict[str, torch.Tensor] = {}
    def keep_input(name: str):
        def hook(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> None:
            inputs.setdefault(name, args[0].detach())
        return hook
    hooks = [m.register_forward_hook(keep_input(name)) for name, m in layers.items()]
    with torch.no_grad():
        model.eval()(images)
    for hook in hooks:
        hook.remove()
    print(f"model {args.model}, {args.images} test images of {config.dataset}; CPU flags: {cpu_flags()}")
    for batch in args.batches:
        print(f"\n### batch {batch}\n")
        print("| layer | share of product work | activation density | per-element skip saves "
              "| 8-tile vector skip saves | 16-tile vector skip saves |")
        print("|---|---|---|---|---|---|")
        rows = {name: layer_stats(layer, inputs[name], batch) for name, layer in layers.items()}
        work = sum(r["work"] for r in rows.values())
        for name, r in rows.items():
            print(f"| {name} | {r['work'] / work:.1%} | {r['density']:.1%} | {r['element']:.1%} | "
                  f"{r['vector8']:.1%} | {r['vector16']:.1%} |")
        overall = {key: sum(r[key] * r["work"] for r in rows.values()) / work
                   for key in ("density", "element", "vector8", "vector16")}
        print(f"| **all** | 100% | {overall['density']:.1%} | {overall['element']:.1%} | "
              f"{overall['vector8']:.1%} | {overall['vector16']:.1%} |")


if __name__ == "__main__":
    main()
