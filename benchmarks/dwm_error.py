"""Float32 error and multiplications of large and strided kernels: DWM pieces vs plain F(m, r) vs direct.

Error = mean absolute error per output in float32 against float64 direct correlation, one
channel, inputs and kernels uniform(-1, 1) (Barabasz et al.'s measure, the one the tile choice
uses): plain F(m, r) by ``measure_error``, DWM pieces by ``decomposed_error`` (every piece's
transforms and products in float32, pieces summed in the Winograd domain), direct convolution
by the trivial algorithm F(1, k) run in float32. Multiplications: element-wise stage per output
and channel pair (transforms excluded, as in the papers).

A second part measures the summation-order ideas of Barabasz et al. in float32 simulations of
what the kernels do: where the pieces of a DWM layer are summed (Winograd domain: the
engine's stacked layout; after each output transform: its pieces layout), sequential vs
pairwise summation over input channels in the element-wise stage, and the order of the terms
in the transforms (natural vs smallest coefficients first).

    python benchmarks/dwm_error.py [--samples 20000] [--no-summation]
"""
from __future__ import annotations

import argparse

import torch
from common import add_json_argument, record_output  # noqa: E402

from sparsewino.winograd import (
    algorithm,
    choose_decomposition,
    decompose,
    decomposed_error,
    measure_error,
    multiplications_per_output,
)
from sparsewino.winograd.error import direct_correlation_tiles
from sparsewino.winograd.transform import filter_transform, input_transform, output_transform

LARGE = {5: [("plain", 2, 5), ("plain", 3, 5), ("plain", 4, 5), ("dwm", 2, 3), ("dwm", 4, 3),
             ("dwm", 6, 3), ("dwm", 4, 2)],
         7: [("plain", 2, 7), ("plain", 3, 7), ("plain", 4, 7), ("dwm", 2, 3), ("dwm", 4, 3),
             ("dwm", 6, 3), ("dwm", 4, 2)]}
STRIDED = {(3, 2): [(2, 2), (4, 2), (6, 2), (7, 2)],
           (5, 2): [(2, 3), (4, 3), (6, 3), (4, 2)],
           (7, 2): [(2, 2), (4, 2), (6, 2), (2, 3), (4, 3), (2, 4), (4, 4)]}


def _row(label: str, pieces: str, mults: float, direct_mults: float, error: float,
         direct_error: float) -> str:
    return (f"| {label} | {pieces} | {mults:.2f} | {direct_mults / mults:.2f}× | {error:.3g} | "
            f"{error / direct_error:.1f}× |")


def error_tables(samples: int, seed: int) -> None:
    head = ("| algorithm | pieces | mults / output | vs direct | error | error / direct |\n"
            "|---|---|---|---|---|---|")
    for k, cases in LARGE.items():
        direct = measure_error(1, k, samples=samples, seed=seed)
        print(f"\n{k}×{k}, stride 1\n\n{head}")
        print(_row(f"direct {k}×{k}", "1", k * k, k * k, direct, direct))
        for kind, m, r in cases:
            split = decompose((k, k), (1, 1), (r, r))
            error = decomposed_error(k, 1, m, r, samples=samples, seed=seed)
            mults = multiplications_per_output(k, 1, m, r) ** 2
            label = f"F({m},{k})" if kind == "plain" else f"DWM, F({m},{r}) pieces"
            pieces = "1" if kind == "plain" else f"{split.pieces} of {r}×{r}"
            print(_row(label, pieces, mults, k * k, error, direct))
        print(f"\ntile=4 picks F{choose_decomposition(k, requested=4)} (m, r); tile='auto' picks "
              f"F{choose_decomposition(k)}")
    for (k, s), cases in STRIDED.items():
        direct = measure_error(1, k, samples=samples, seed=seed)
        print(f"\n{k}×{k}, stride {s}\n\n{head}")
        print(_row(f"direct {k}×{k}/{s}", "1", k * k, k * k, direct, direct))
        for m, r in cases:
            split = decompose((k, k), (s, s), (r, r))
            error = decomposed_error(k, s, m, r, samples=samples, seed=seed)
            mults = multiplications_per_output(k, s, m, r) ** 2
            print(_row(f"DWM, F({m},{r}) pieces", f"{split.pieces} of {r}×{r}", mults, k * k,
                       error, direct))
        print(f"\ntile=4 picks F{choose_decomposition(k, s, requested=4)} (m, r); tile='auto' "
              f"picks F{choose_decomposition(k, s)}")


# ------------------------------------------------------------------------------- summation order
def _ordered_apply(mat: torch.Tensor, x: torch.Tensor, dim: int, smallest_first: bool) -> torch.Tensor:
    """float32 ``mat`` applied along ``dim`` of ``x``, each output a sum of terms added one at
    a time (a chain of rounded additions), in natural order or smallest |coefficient| first."""
    x = x.movedim(dim, -1)
    out = []
    for row in mat:
        order = (torch.argsort(row.abs(), stable=True) if smallest_first
                 else torch.arange(len(row)))
        acc = torch.zeros(x.shape[:-1], dtype=torch.float32)
        for j in order.tolist():
            if row[j] != 0:
                acc = acc + row[j] * x[..., j]
        out.append(acc)
    return torch.stack(out, dim=-1).movedim(-1, dim)


def transform_order(samples: int, seed: int, m: int, r: int) -> tuple[float, float]:
    """Error of 2-D F(m, r) with the input/output transforms summed in natural order vs
    smallest coefficients first (filter transform and products as usual)."""
    alg = algorithm(m, r)
    at, g, bt = (t.float() for t in alg.matrices(torch.float32))
    gen = torch.Generator().manual_seed(seed)
    d = torch.rand(samples, alg.n, alg.n, generator=gen, dtype=torch.float64) * 2 - 1
    w = torch.rand(samples, r, r, generator=gen, dtype=torch.float64) * 2 - 1
    reference = direct_correlation_tiles(d, w)
    q = filter_transform(w.float().unsqueeze(1), [alg] * 2).squeeze(1)
    errors = []
    for smallest in (False, True):
        v = _ordered_apply(bt, _ordered_apply(bt, d.float(), 1, smallest), 2, smallest)
        y = _ordered_apply(at, _ordered_apply(at, q * v, 1, smallest), 2, smallest)
        errors.append((y.double() - reference).abs().mean().item())
    return errors[0], errors[1]


def channel_summation(samples: int, seed: int, m: int, channels: int) -> tuple[float, float]:
    """Error per output of F(m, 3) over ``channels`` input channels with the element-wise
    products summed over channels sequentially (as the kernels' multiply-add chains do) vs
    pairwise (a balanced tree)."""
    alg = algorithm(m, 3)
    gen = torch.Generator().manual_seed(seed)
    d = torch.rand(samples, channels, alg.n, alg.n, generator=gen, dtype=torch.float64) * 2 - 1
    w = torch.rand(samples, channels, 3, 3, generator=gen, dtype=torch.float64) * 2 - 1
    reference = torch.nn.functional.conv2d(d.reshape(1, -1, alg.n, alg.n),
                                           w.reshape(-1, 1, 3, 3), groups=samples * channels)
    reference = reference.reshape(samples, channels, m, m).sum(1)
    products = filter_transform(w.float(), [alg] * 2) * input_transform(d.float(), [alg] * 2)
    sequential = products[:, 0]
    for c in range(1, channels):
        sequential = sequential + products[:, c]
    pairwise = products
    while pairwise.shape[1] > 1:
        if pairwise.shape[1] % 2:
            pairwise = torch.cat([pairwise, torch.zeros_like(pairwise[:, :1])], dim=1)
        pairwise = pairwise[:, 0::2] + pairwise[:, 1::2]
    errors = []
    for total in (sequential, pairwise[:, 0]):
        y = output_transform(total, [alg] * 2)
        errors.append((y.double() - reference).abs().mean().item())
    return errors[0], errors[1]


def piece_summation(samples: int, seed: int, k: int, s: int, m: int, r: int) -> tuple[float, float]:
    """Error of a DWM layer with the pieces summed in the Winograd domain (stacked layout) vs
    after each piece's output transform (pieces layout)."""
    split = decompose((k, k), (s, s), (r, r))
    algs = [algorithm(m, r)] * 2
    patch = s * (m - 1) + k
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(samples, patch, patch, generator=gen, dtype=torch.float64) * 2 - 1
    g = torch.rand(samples, k, k, generator=gen, dtype=torch.float64) * 2 - 1
    reference = direct_correlation_tiles(x, g, s)
    q = filter_transform(split.split(g.unsqueeze(1)).squeeze(1).float(), algs)
    v = input_transform(split.stack(x.unsqueeze(1)).float(), algs)
    products = q * v
    winograd = products[:, 0]
    spatial = output_transform(products[:, 0], algs)
    for p in range(1, split.pieces):
        winograd = winograd + products[:, p]
        spatial = spatial + output_transform(products[:, p], algs)
    return ((output_transform(winograd, algs).double() - reference).abs().mean().item(),
            (spatial.double() - reference).abs().mean().item())


def summation_tables(samples: int, seed: int) -> None:
    print("\nWhere DWM pieces are summed (engine layouts)\n")
    print("| layer | pieces | Winograd domain (stacked) | after output transforms (pieces) |")
    print("|---|---|---|---|")
    for k, s, m, r in [(5, 1, 4, 3), (7, 1, 4, 3), (3, 2, 4, 2), (7, 2, 4, 3)]:
        winograd, spatial = piece_summation(samples, seed, k, s, m, r)
        pieces = decompose((k, k), (s, s), (r, r)).pieces
        print(f"| {k}×{k}/{s} | {pieces} × F({m},{r}) | {winograd:.3g} | {spatial:.3g} |")
    few = max(200, samples // 20)
    print(f"\nSumming over input channels in the element-wise stage ({few} samples)\n")
    print("| algorithm | channels | sequential (kernels) | pairwise | sequential / pairwise |")
    print("|---|---|---|---|---|")
    for m in (4, 6):
        for channels in (64, 256, 512):
            seq, pair = channel_summation(few, seed, m, channels)
            print(f"| F({m},3) | {channels} | {seq:.3g} | {pair:.3g} | {seq / pair:.2f} |")
    print("\nOrder of the terms in the input and output transforms (2-D, one channel)\n")
    print("| algorithm | natural order | smallest coefficients first | natural / sorted |")
    print("|---|---|---|---|")
    for m, r in [(4, 3), (6, 3), (4, 2), (6, 2)]:
        natural, ordered = transform_order(samples, seed, m, r)
        print(f"| F({m},{r}) | {natural:.3g} | {ordered:.3g} | {natural / ordered:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-summation", action="store_true", help="only the error tables")
    add_json_argument(parser)
    args = parser.parse_args()
    record_output(args.json)
    torch.set_num_threads(1)
    print(f"samples={args.samples} seed={args.seed} torch={torch.__version__}")
    error_tables(args.samples, args.seed)
    if not args.no_summation:
        summation_tables(args.samples, args.seed)


if __name__ == "__main__":
    main()
