"""CompiledAdderConv2d: an AdderNet layer (``-sum |x - w|^p`` over each receptive field) in the engine.

It lowers to the engine's own operations: an ``extract`` gathers the receptive fields of every
image as ``C·kh·kw`` rows of ``Ho·Wo`` columns (im2col, zero padding included), one ``adder``
operation per image computes ``y[k, l] = -sum_j |w[k, j] - patches[j, l]|^p`` straight into
that image's ``(K, Ho, Wo)`` output, and an ``eltwise`` applies the bias and a fused
BatchNorm (a per-channel affine map: the product is not linear, so BatchNorm cannot be folded
into the weights), a fused residual addition and ReLU. It runs alone (``forward``) or as steps
of a compiled model's program, through the same operations.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.adder import AdderConv2d
from . import kernels
from .modules import CompiledLayer, OpPlan

__all__ = ["CompiledAdderConv2d", "adder_unsupported_reason"]


def adder_unsupported_reason(layer: nn.Module) -> str | None:
    """Why the engine cannot compile ``layer`` (an ``AdderConv2d``), or ``None`` when it can."""
    weight = layer.weight
    if weight.device.type != "cpu":
        return f"weights on {weight.device}: the engine runs on CPU"
    if weight.dtype != torch.float32:
        return f"dtype {weight.dtype}: the kernels are float32"
    return None


class CompiledAdderConv2d(CompiledLayer):
    """Inference-only :class:`~sparsewino.nn.AdderConv2d` on the engine's ``adder`` operation.

    Args:
        weight: ``(K, C, kh, kw)`` filters.
        bias: ``(K,)`` or ``None``.
        p: the exponent (``-sum |x - w|^p``), 1 <= p <= 2.
        stride, padding: as the source layer's (pairs).
        scale, shift: a fused BatchNorm, ``y * scale + shift`` after the bias.
        relu, residual: a fused ReLU / residual addition (second input, added before the ReLU).
        threads: OpenMP threads; ``None`` follows ``torch.get_num_threads()``.

    Examples:
        >>> layer = AdderConv2d(3, 8, 3, padding=1).eval()
        >>> fast = CompiledAdderConv2d.from_layer(layer)
        >>> x = torch.randn(2, 3, 9, 9)
        >>> with torch.no_grad():
        ...     torch.allclose(fast(x), layer(x), rtol=1e-4, atol=1e-3)
        True
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, p: float,
                 stride: Sequence[int], padding: Sequence[int], *,
                 scale: torch.Tensor | None = None, shift: torch.Tensor | None = None,
                 relu: bool = False, residual: bool = False, threads: int | None = None) -> None:
        super().__init__(threads)
        k = weight.shape[0]
        self.in_channels, self.out_channels = int(weight.shape[1]), int(k)
        self.kernel_size = (int(weight.shape[2]), int(weight.shape[3]))
        self.stride, self.padding = tuple(stride), tuple(padding)
        self.p, self.relu, self.residual = float(p), bool(relu), bool(residual)
        self._weight = weight.detach().to(dtype=torch.float32).reshape(k, -1).contiguous().clone()
        scale_t = torch.ones(k) if scale is None else scale.detach().float().reshape(k).clone()
        shift_t = torch.zeros(k) if shift is None else shift.detach().float().reshape(k).clone()
        if bias is not None:                         # (y + b) * s + t = y * s + (b * s + t)
            shift_t = shift_t + bias.detach().float().reshape(k) * scale_t
        self._affine = bias is not None or scale is not None or shift is not None
        self._scale, self._shift = scale_t.contiguous(), shift_t.contiguous()
        kh, kw = self.kernel_size
        self._offsets = torch.tensor([[i - self.padding[0], j - self.padding[1]]
                                      for i in range(kh) for j in range(kw)],
                                     dtype=torch.int32).reshape(-1).contiguous()
        self.eval()

    @classmethod
    def from_layer(cls, layer: AdderConv2d, threads: int | None = None, relu: bool = False,
                   scale: torch.Tensor | None = None, shift: torch.Tensor | None = None,
                   residual: bool = False) -> "CompiledAdderConv2d":
        """Compile one :class:`~sparsewino.nn.AdderConv2d` (prune masks applied)."""
        reason = adder_unsupported_reason(layer)
        if reason is not None:
            raise ValueError(f"cannot compile {type(layer).__name__}: {reason}")
        return cls(layer.weight, layer.bias, layer.p, layer.stride, layer.padding, scale=scale,
                   shift=shift, relu=relu, residual=residual, threads=threads)

    # ------------------------------------------------------------------ what count reads
    @property
    def weight(self) -> torch.Tensor:
        """A copy of the filters ``(K, C, kh, kw)``."""
        return self._weight.reshape(self.out_channels, self.in_channels, *self.kernel_size).clone()

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Output spatial size for an input of ``height x width``."""
        return AdderConv2d.output_size(self, height, width)  # type: ignore[arg-type]

    def operations(self, input_shape: Sequence[int]) -> dict[str, int]:
        """Operations of one forward pass, as :meth:`AdderConv2d.operations` counts them (the
        fused bias, BatchNorm and ReLU are not counted there either)."""
        return AdderConv2d.operations(self, input_shape)  # type: ignore[arg-type]

    def density(self) -> float:
        """Fraction of non-zero filter weights."""
        return float((self._weight != 0).sum()) / self._weight.numel()

    # ------------------------------------------------------------------ state
    def get_extra_state(self) -> dict[str, Any]:
        return {"weight": self._weight.clone(), "scale": self._scale.clone(),
                "shift": self._shift.clone()}

    def set_extra_state(self, state: Any) -> None:
        if not isinstance(state, dict) or set(state) != {"weight", "scale", "shift"}:
            raise ValueError(f"{type(self).__name__}: not a compiled adder layer's state")
        weight = torch.as_tensor(state["weight"], dtype=torch.float32)
        scale = torch.as_tensor(state["scale"], dtype=torch.float32)
        shift = torch.as_tensor(state["shift"], dtype=torch.float32)
        if weight.shape != self._weight.shape or scale.shape != self._scale.shape or \
                shift.shape != self._shift.shape:
            raise ValueError(f"{type(self).__name__}: a state of shapes "
                             f"{tuple(weight.shape), tuple(scale.shape), tuple(shift.shape)} "
                             f"does not fit this layer {tuple(self._weight.shape)}")
        if not (torch.isfinite(weight).all() and torch.isfinite(scale).all()
                and torch.isfinite(shift).all()):
            raise ValueError(f"{type(self).__name__}: the state holds NaN or infinite values")
        with self._lock:
            self._weight, self._scale = weight.contiguous().clone(), scale.contiguous().clone()
            self._shift = shift.contiguous().clone()
            self._affine = True
            self._changed()

    # ------------------------------------------------------------------ lowering
    def lower(self, batch: int, height: int, width: int, threads: int,
              backend_name: str) -> tuple[list[OpPlan], dict[str, tuple[int, ...]]]:
        """The operations for an input of (batch, C, height, width) and the buffers that
        operations write in parts (name -> shape; made before the operations run)."""
        ho, wo = self.output_size(height, width)
        k, j, columns = self.out_channels, self._weight.shape[1], ho * wo
        out_shape = (batch, k, ho, wo)
        isa = kernels.isa_code(backend_name)
        ext = kernels.SwExtractArgs()
        ext.N, ext.C, ext.H, ext.W = batch, self.in_channels, height, width
        ext.S, ext.Ho, ext.Wo = self._offsets.numel() // 2, ho, wo
        ext.sh, ext.sw = self.stride
        ext.offsets = self._offsets.data_ptr()
        ext.threads = threads
        plans = [OpPlan("extract", ext, [("x", "x")], "patches", (batch, j, ho, wo))]
        products = "products" if self._finishes else "y"
        for image in range(batch):
            args = kernels.SwAdderArgs(1, k, columns, j, self._weight.data_ptr(), None, None,
                                       self.p, threads, isa)
            plans.append(OpPlan("adder", args, [("wt", "patches")], products, (k, ho, wo),
                                offsets={"wt": image * j * columns, "y": image * k * columns}))
        if self._finishes:
            plans += self._finish_plans(out_shape, threads, isa)
        return plans, self._partial(batch, height, width)

    @property
    def _finishes(self) -> bool:
        """Whether an element-wise step follows the products (bias/BatchNorm, residual, ReLU)."""
        return self._affine or self.relu or self.residual

    def _partial(self, batch: int, height: int, width: int) -> dict[str, tuple[int, ...]]:
        """The buffer the per-image products write in parts, with its shape."""
        return {"products" if self._finishes else "y": (batch, self.out_channels,
                                                        *self.output_size(height, width))}

    def _finish_plans(self, out_shape: tuple[int, ...], threads: int, isa: int) -> list[OpPlan]:
        """Bias/BatchNorm (affine), residual addition and ReLU on the products."""
        plans, source = [], "products"
        if self._affine or not self.residual:
            kind = kernels.ELTWISE_AFFINE if self._affine else kernels.ELTWISE_COPY
            affine = (self._scale, self._shift) if self._affine else ()
            args = kernels.eltwise_args(kind, self.relu and not self.residual, out_shape, threads,
                                        isa, *affine)
            target = "scaled" if self.residual else "y"
            plans.append(OpPlan("eltwise", args, [("a", source)], target, out_shape))
            source = target
        if self.residual:
            args = kernels.eltwise_args(kernels.ELTWISE_ADD, self.relu, out_shape, threads, isa)
            plans.append(OpPlan("eltwise", args, [("a", source), ("b", "residual")], "y",
                                out_shape))
        return plans

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        self._check_common(x, 2)
        if x.dim() == 3:                                     # unbatched, as AdderConv2d takes
            return self.forward(x.unsqueeze(0), None if residual is None else
                                residual.unsqueeze(0)).squeeze(0)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__} expects (N, {self.in_channels}, H, W), got "
                             f"{tuple(x.shape)}")
        if (residual is not None) != self.residual:
            raise TypeError(f"{type(self).__name__} was compiled "
                            f"{'with' if self.residual else 'without'} a fused residual input")
        ho, wo = self.output_size(*x.shape[2:])
        if ho < 1 or wo < 1:
            raise ValueError(f"input {tuple(x.shape[2:])} is smaller than the kernel "
                             f"{self.kernel_size} with padding {self.padding}")
        name = kernels.backend()
        if name == "torch" or x.shape[0] == 0:
            return self._torch_forward(x, residual)
        return self._forward_kernel(x, name, residual)

    def _forward_kernel(self, x: torch.Tensor, backend_name: str,
                        residual: torch.Tensor | None = None, poison: bool = False) -> torch.Tensor:
        x = x.contiguous()
        residual = residual.contiguous() if residual is not None else None
        batch, _, height, width = x.shape
        threads = self.threads or torch.get_num_threads()
        key = (batch, height, width, threads, backend_name)
        buffers: dict[str, torch.Tensor | None] = {"x": x, "residual": residual}
        for name, shape in self._partial(batch, height, width).items():
            buffers[name] = torch.full(shape, float("nan")) if poison else torch.empty(shape)
        return self._run_plans(key, lambda: self.lower(batch, height, width, threads,
                                                       backend_name)[0], buffers, poison)

    def _torch_forward(self, x: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad():
            n = x.shape[0]
            ho, wo = self.output_size(*x.shape[2:])
            cols = F.unfold(x, self.kernel_size, padding=self.padding, stride=self.stride)
            y = torch.empty(n, self.out_channels, cols.shape[2])
            step = max(1, (1 << 24) // max(1, cols.numel()))       # bounded temporaries
            for k in range(0, self.out_channels, step):
                w = self._weight[k:k + step, :, None]               # (k, J, 1)
                y[:, k:k + step] = -(cols[:, None] - w).abs().pow(self.p).sum(2)
            y = y.reshape(n, self.out_channels, ho, wo)
            y = y * self._scale.reshape(1, -1, 1, 1) + self._shift.reshape(1, -1, 1, 1)
            if residual is not None:
                y = y + residual
            return torch.relu(y) if self.relu else y

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, p={self.p:g}")
        for flag, label in ((self._affine, "affine"), (self.residual, "residual=True"),
                            (self.relu, "relu=True")):
            if flag:
                text += ", " + label
        return text
