"""`make demo` until the pipeline lands: convert a CNN, check it against PyTorch, count."""
from __future__ import annotations

import torch
from torch import nn

from .nn import convert


def main() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(32, 10)).eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        expected = model(x)
        model, report = convert(model, tile=4)
        error = (model(x) - expected).abs().max().item()
    print(report)
    print(f"max |Winograd - conv2d| on random input: {error:.2e}")
    total_direct = total_winograd = 0
    shape = tuple(x.shape)
    for name, module in model.named_modules():
        if hasattr(module, "multiplications"):
            counts = module.multiplications((1, *shape[1:]))
            total_direct += counts["direct"]
            total_winograd += counts["winograd"]
            print(f"{name}: direct {counts['direct']:,} vs Winograd {counts['winograd']:,} "
                  f"multiplications ({counts['reduction']:.2f}x)")
        if isinstance(module, nn.MaxPool2d):
            shape = (shape[0], shape[1], shape[2] // 2, shape[3] // 2)
    print(f"total: {total_direct / total_winograd:.2f}x fewer multiplications")


if __name__ == "__main__":
    main()
