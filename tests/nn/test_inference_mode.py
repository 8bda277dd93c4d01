"""A forward pass under torch.inference_mode() must not poison later training (process-wide caches)."""
import pytest
import torch

from sparsewino.nn import WinogradConv2d, WinogradConv3d

# Points no other test uses: the algorithms (and their cached matrices) are first built here,
# inside inference mode.
CASES = [
    (WinogradConv2d, 3, 2, [0, 3, -3], "spatial"),            # Kronecker path
    (WinogradConv2d, 3, 5, [0, "1/3", "-1/3", "3/2", "-3/2", 3], "winograd"),  # separable
    (WinogradConv3d, 2, 2, [0, 5], "spatial"),
]


@pytest.mark.parametrize("cls,kernel,tile,points,domain", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_training_after_a_forward_in_inference_mode(cls, kernel, tile, points, domain, dtype):
    layer = cls(2, 3, kernel, padding=1, tile=tile, points=points, domain=domain, dtype=dtype)
    x = torch.randn(2, 2, *([7] * cls._dims), dtype=dtype)
    with torch.inference_mode():
        expected = layer(x)
    assert expected.is_inference()
    out = layer(x)                                   # outside: a normal, differentiable tensor
    out.square().sum().backward()
    assert not out.is_inference() and layer.weight.grad is not None
    torch.testing.assert_close(out.detach(), expected.clone())
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    for _ in range(2):                                 # a few training steps
        optimizer.zero_grad()
        layer(x).square().mean().backward()
        optimizer.step()
