"""Helpers for the engine tests: compiled backends present, random sparse layers, references.

Every compiled backend this CPU runs is tested, verified or not (an AVX-512 machine tests the
AVX-512 build). In CI (``CI`` set) a missing compiled library is an error, not a skip: a
failed C++ build must not leave the suite green.
"""
from __future__ import annotations

import copy
import os

import pytest
import torch
import torch.nn.functional as F

from sparsewino import timing
from sparsewino.engine import kernels
from sparsewino.nn import WinogradConv2d

COMPILED = [name for name in kernels.available_backends() if name != "torch"]
if not COMPILED and os.environ.get("CI"):
    raise RuntimeError(f"CI: the compiled engine kernels are missing ({kernels.load_error()}); "
                       "the engine tests would be skipped. Fix the C++ build.")
needs_kernel = pytest.mark.skipif(not COMPILED, reason=f"kernel not built: {kernels.load_error()}")
#: (backend, lanes) pairs: the portable build also runs the 16-lane logic that the AVX-512
#: build uses, so that code is checked on any CPU; lanes=16 asked of the AVX-512 build runs its
#: 16-tile transforms even where the automatic choice keeps them at 8 (AMD Zen 4).
LANE_CASES = [(name, 0) for name in COMPILED] + [
    (name, 16) for name in ("portable", "avx512") if name in COMPILED]


def sparse_layer(c: int, k: int, *, kernel: int = 3, tile: int = 4, padding=1,
                 sparsity: float = 0.0, domain: str = "winograd", seed: int = 0,
                 **kwargs) -> WinogradConv2d:
    """A float32 eval-mode Winograd layer with ``sparsity`` of its Winograd weights zeroed."""
    torch.manual_seed(seed)
    layer = WinogradConv2d(c, k, kernel, padding=padding, tile=tile, domain=domain, **kwargs)
    if sparsity and domain == "winograd":
        with torch.no_grad():
            layer.weight.mul_((torch.rand_like(layer.weight) >= sparsity).float())
    return layer.eval()


def randomize_batchnorm(net: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial eval statistics and affine parameters for every BatchNorm2d of ``net``."""
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            with torch.no_grad():
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return net


def reference(layer: WinogradConv2d, x: torch.Tensor) -> torch.Tensor:
    """The layer's function in float64: conv2d for spatial weights, else the float64 layer."""
    if layer.domain == "spatial" and not layer.winograd_relu:
        bias = layer.bias.double() if layer.bias is not None else None
        return F.conv2d(x.double(), layer.weight.double(), bias, padding=layer.padding,
                        groups=layer.groups)
    with torch.no_grad():
        return copy.deepcopy(layer).double()(x.double())


def assert_matches(y: torch.Tensor, ref: torch.Tensor, tol: float = 2e-5) -> None:
    """fp32 result equals the float64 reference within rounding (relative to its scale)."""
    assert y.shape == ref.shape, (tuple(y.shape), tuple(ref.shape))
    assert torch.isfinite(y).all(), "output has NaN/inf: an element was not written"
    scale = max(1.0, ref.abs().max().item())
    err = (y.double() - ref).abs().max().item() if y.numel() else 0.0
    assert err <= tol * scale, f"max error {err:.3g} > {tol:.1g} x scale {scale:.3g}"


def compile_and_compare(net: torch.nn.Module, x: torch.Tensor, backend: str,
                        tol: float = 1e-4) -> torch.nn.Module:
    """``engine.compile(net)`` run on ``backend``: its output equals the model's (within ``tol``
    of float32 rounding); returns the compiled model."""
    from sparsewino import engine
    with torch.no_grad():
        expected = net(x)
        fast = engine.compile(net)
        with engine.use_backend(backend):
            got = fast(x)
    assert_matches(got, expected.double(), tol=tol)
    return fast


def cpu_flags() -> set[str]:
    """This CPU's vector flags (:func:`sparsewino.timing.cpu_flags`; the test is skipped where
    they cannot be read)."""
    flags = set(timing.cpu_flags().split())
    if not flags:
        pytest.skip("the CPU's flags cannot be read here")
    return flags


@pytest.fixture(scope="module")
def native_backend():
    """For modules that test native programs (artifacts, the C API, program operations): a
    forced ``torch`` backend, which builds no program, gives way to the automatic compiled one
    for the module; a forced compiled backend is kept."""
    with pytest.MonkeyPatch.context() as patch:
        if os.environ.get(kernels.ENV_VAR, "").strip().lower() == "torch":
            patch.delenv(kernels.ENV_VAR)
        yield
