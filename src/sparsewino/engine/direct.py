"""Direct sparse convolution: a k×k ``nn.Conv2d`` (any stride, zero padding) as im2col + sparse GEMM.

Winograd needs stride 1; DWM runs strided and large kernels as stacked Winograd pieces, whose
Winograd weights outnumber the spatial ones (four F(4,2) pieces of a 3×3/2 kernel hold 100
weights per channel pair against 9), so on small strided maps a spatially pruned convolution is
cheaper computed directly. Two kernel operations:

* ``extract`` copies the kh·kw shifted, strided views of the input (zeros outside it), stacked as
  channels ``c·kh·kw + i·kw + j`` (``F.unfold``'s order): ``(N, C·kh·kw, Ho, Wo)``;
* ``gemm`` multiplies them by the packed ``K × C·kh·kw`` weights (sparse rows or dense panels),
  with the bias, a folded BatchNorm, a residual and ReLU fused.

Only the non-zero weights are multiplied, so the layer pays off when it is pruned: compile
takes a k×k ``nn.Conv2d`` only at weight density <= :data:`MAX_DENSITY` (dense ones stay with
PyTorch's convolution, which is faster on dense weights).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import kernels
from .modules import OpPlan, _ConvGemm, bf16_inputs

__all__ = ["SparseDirectConv2d", "MAX_DENSITY"]

#: compile runs a k×k ``nn.Conv2d`` as :class:`SparseDirectConv2d` up to this weight density;
#: denser ones stay in PyTorch (its dense convolution beats a GEMM of im2col copies).
MAX_DENSITY = 0.5


class SparseDirectConv2d(_ConvGemm):
    """Inference-only k×k convolution (any stride and zero padding, groups 1, dilation 1) as an
    im2col copy (``extract``) and a sparse GEMM.

    Built by :func:`sparsewino.engine.compile` from a pruned ``nn.Conv2d`` (BatchNorm2d /
    residual / ReLU fused), or with :meth:`from_conv`.

    Examples:
        >>> conv = nn.Conv2d(8, 6, 3, stride=2, padding=1).eval()
        >>> with torch.no_grad():
        ...     conv.weight[conv.weight.abs() < 0.1] = 0
        >>> fast = SparseDirectConv2d.from_conv(conv)
        >>> x = torch.randn(2, 8, 9, 9)
        >>> with torch.no_grad():
        ...     torch.allclose(fast(x), conv(x), atol=1e-5)
        True
    """

    def __init__(self, weight: torch.Tensor, *args: Any, stride: Sequence[int] = (1, 1),
                 padding: Sequence[int] = (0, 0), **kwargs: Any) -> None:
        self.in_channels = int(weight.shape[1])
        self.kernel_size = (int(weight.shape[2]), int(weight.shape[3]))
        super().__init__(weight, *args, **kwargs)
        self.stride, self.padding = tuple(int(s) for s in stride), tuple(int(p) for p in padding)
        kh, kw = self.kernel_size
        ph, pw = self.padding
        self._offsets = torch.tensor([[i - ph, j - pw] for i in range(kh) for j in range(kw)],
                                     dtype=torch.int32)

    @classmethod
    def _geometry_reason(cls, conv: nn.Conv2d) -> str | None:
        if conv.dilation != (1, 1) or conv.groups != 1 or conv.padding_mode != "zeros" or \
                isinstance(conv.padding, str):
            return "only groups 1, dilation 1 and numeric zero padding run as im2col + GEMM"
        return None

    @classmethod
    def _geometry(cls, conv: nn.Conv2d) -> dict[str, Any]:
        return {"stride": conv.stride, "padding": conv.padding}

    def get_extra_state(self) -> dict[str, Any]:
        return {**super().get_extra_state(), "stride": self.stride, "padding": self.padding}

    @property
    def out_channels(self) -> int:
        return self.out_features

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1

    def extract_args(self, batch: int, height: int, width: int,
                     threads: int) -> kernels.SwExtractArgs:
        """The im2col copy's argument struct for ``batch`` images of ``height`` x ``width``."""
        args = kernels.SwExtractArgs()
        args.N, args.C, args.H, args.W = batch, self.in_channels, height, width
        args.S, (args.Ho, args.Wo) = len(self._offsets), self.output_size(height, width)
        args.sh, args.sw = self.stride
        args.offsets = self._offsets.data_ptr()
        args.threads = threads
        return args

    def lower(self, batch: int, height: int, width: int, threads: int,
              backend_name: str) -> list[OpPlan]:
        """The two operations for an input of (batch, C, height, width)."""
        ho, wo = self.output_size(height, width)
        return [OpPlan("extract", self.extract_args(batch, height, width, threads), [("x", "x")],
                       "t0", (batch, self.in_features, ho, wo)),
                OpPlan("gemm", self.fill_args(batch, ho * wo, threads, backend_name),
                       [("x", "t0")] + ([("residual", "residual")] if self.residual else []),
                       "y", (batch, self.out_features, ho, wo))]

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        self._check_residual(residual)
        self._check_common(x, 4)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"SparseDirectConv2d expects input (N, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        batch, _, height, width = x.shape
        ho, wo = self.output_size(height, width)
        if ho < 1 or wo < 1:
            raise ValueError(f"SparseDirectConv2d: input {height}x{width} is smaller than the "
                             f"kernel {self.kernel_size} with padding {self.padding}")
        return self._run(x, (batch, self.out_features, ho, wo), residual, (batch, height, width),
                         lambda threads, name: self.lower(batch, height, width, threads, name))

    def _torch_forward(self, x: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
        x = bf16_inputs(self._packed, x.unsqueeze(0))[0]
        with torch.no_grad():
            w = self._weight_matrix().reshape(self.out_features, self.in_channels, *self.kernel_size)
            return self._finish(F.conv2d(x, w, self._bias, self.stride, self.padding), residual)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_features}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, density={self.density():.3f}"
                + (", relu=True" if self.relu else "") + (", residual=True" if self.residual else ""))
