"""``engine.load``: an engine artifact as a runnable module, without the model's class.

Each saved program's structs are rebuilt from their bytes by writing the addresses of its
arena, workspace and constants into the pointer fields (the relocations), and run through the
same ``sw_run_program`` as a compiled model. Per call only the input and output pointers are
patched (under the model's lock: the arena is shared). A batch size that was not saved runs in
pieces of saved ones with the same image shape; other shapes are an :class:`ArtifactError`.
"""
from __future__ import annotations

import ctypes
import logging
import math
import threading
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import ArtifactError
from .. import kernels
from .container import ARENA, CONSTANT, INPUT, OUTPUT, TARGETS, WORKSPACE, ProgramRecord, read_artifact
from .machine import cpu_description

__all__ = ["load", "LoadedModel", "batch_pieces"]

logger = logging.getLogger(__name__)
_OPERATIONS = {op.code: op for op in kernels.OPERATIONS}


def _address(buffer: Any) -> int:
    view = memoryview(buffer).cast("B")
    return ctypes.addressof(ctypes.c_char.from_buffer(view)) if len(view) else 0


class _LoadedProgram:
    """One saved program with its own arena and workspace, ready to run."""

    def __init__(self, record: ProgramRecord, constants: list[Any], isa: int | None,
                 path: Path) -> None:
        self.input_shape, self.output_shape = record.input_shape, record.output_shape
        self.arena = torch.empty(max(record.arena_bytes // 4, 16))
        self.workspace = torch.empty(max(record.workspace_bytes // 4, 16))
        self.structs: list[tuple[str, ctypes.Structure]] = []
        self.patches: list[tuple[int, int, int]] = []          # (field address, target, offset)
        bases = {ARENA: (self.arena.data_ptr(), 4 * self.arena.numel()),
                 WORKSPACE: (self.workspace.data_ptr(), 4 * self.workspace.numel())}
        constant_bases = [(_address(c), len(memoryview(c).cast("B"))) for c in constants]
        for index, op in enumerate(record.ops):
            operation = _OPERATIONS.get(op.kind)
            if operation is None or len(op.struct) != ctypes.sizeof(operation.struct):
                raise ArtifactError(f"{path}: operation {index} (kind {op.kind}, "
                                    f"{len(op.struct)} bytes) does not match this library's "
                                    "operations; export the model again with this sparsewino")
            args = operation.struct.from_buffer_copy(op.struct)
            size = ctypes.sizeof(args)
            if isa is not None and 0 <= op.isa_offset <= size - 4:
                ctypes.c_int32.from_buffer(args, op.isa_offset).value = isa
            for r in op.relocations:
                if not 0 <= r.field_offset <= size - 8 or r.target not in TARGETS:
                    raise ArtifactError(f"{path}: operation {index} has a bad relocation")
                if r.target in (INPUT, OUTPUT):
                    shape = self.input_shape if r.target == INPUT else self.output_shape
                    if not 0 <= r.offset < 4 * math.prod(shape):
                        raise ArtifactError(f"{path}: operation {index} points past its "
                                            f"{TARGETS[r.target]}")
                    self.patches.append((ctypes.addressof(args) + r.field_offset, r.target,
                                         r.offset))
                    continue
                if r.target == CONSTANT:
                    if not 0 <= r.index < len(constant_bases):
                        raise ArtifactError(f"{path}: operation {index} names constant "
                                            f"{r.index} of {len(constant_bases)}")
                    base, extent = constant_bases[r.index]
                else:
                    base, extent = bases[r.target]
                if not 0 <= r.offset < extent:
                    raise ArtifactError(f"{path}: operation {index} points past its "
                                        f"{TARGETS[r.target]} buffer")
                ctypes.c_uint64.from_buffer(args, r.field_offset).value = base + r.offset
            self.structs.append((operation.name, args))
        self.array = kernels.op_array(self.structs)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty(self.output_shape)
        addresses = {INPUT: x.data_ptr(), OUTPUT: out.data_ptr()}
        for field, target, offset in self.patches:
            ctypes.c_uint64.from_address(field).value = addresses[target] + offset
        failed = ctypes.c_int32(-1)
        status = kernels.library().sw_run_program(self.array, len(self.structs),
                                                  ctypes.byref(failed))
        kernels.check_status(status, f"artifact program step {failed.value}")
        return out


def batch_pieces(batch: int, saved: list[int]) -> list[int] | None:
    """The fewest saved batch sizes adding up to ``batch`` (largest first), or ``None``.

    Examples:
        >>> batch_pieces(10, [4, 1])
        [4, 4, 1, 1]
        >>> batch_pieces(6, [4, 3])
        [3, 3]
        >>> batch_pieces(5, [2]) is None
        True
    """
    best: list[list[int] | None] = [[]] + [None] * batch
    for total in range(1, batch + 1):
        for size in sorted(set(saved), reverse=True):
            rest = best[total - size] if size <= total else None
            if rest is not None and (best[total] is None or len(rest) + 1 < len(best[total])):
                best[total] = sorted(rest + [size], reverse=True)
    return best[batch]


class LoadedModel(nn.Module):
    """A model loaded from an engine artifact: runs its saved programs (inference only).

    Attributes:
        header: the artifact's JSON header (backend, CPU, threads, precision, versions, report).
        input_shapes, output_shapes: the saved shapes, in the order they were saved.
        backend: the backend it runs on (the saved one unless this CPU lacks it).
    """

    def __init__(self, header: dict[str, Any], programs: list[_LoadedProgram], backend: str,
                 keep: Any) -> None:
        super().__init__()
        self.header, self.backend = header, backend
        self._programs = {p.input_shape: p for p in programs}
        self._keep = keep                       # the file buffer the constants live in
        self._lock = threading.Lock()
        self.eval()

    @property
    def input_shapes(self) -> list[tuple[int, ...]]:
        return list(self._programs)

    @property
    def output_shapes(self) -> list[tuple[int, ...]]:
        return [p.output_shape for p in self._programs.values()]

    @property
    def compile_report(self) -> str:
        """The compile report of the model that was saved (text)."""
        return str(self.header.get("report", ""))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dtype != torch.float32 or x.device.type != "cpu":
            raise TypeError("a loaded engine artifact takes one float32 CPU tensor, got "
                            f"{getattr(x, 'dtype', type(x).__name__)}")
        x = x.detach().contiguous()
        shape = tuple(x.shape)
        with self._lock:
            if shape in self._programs:
                return self._programs[shape].run(x)
            saved = [s[0] for s in self._programs if s[1:] == shape[1:]]
            pieces = batch_pieces(shape[0], saved) if saved and shape else None
            if pieces is None:
                raise ArtifactError(
                    f"this artifact has programs for input shapes {self.input_shapes}, none "
                    f"for {shape} (nor batch sizes adding up to it with the same image shape); "
                    "export one for it: `sparsewino export CHECKPOINT --tune-shape "
                    f"{'x'.join(map(str, shape))}` or engine.save(compiled, path, "
                    f"shapes=[{shape}])")
            outputs, start = [], 0
            for size in pieces:
                outputs.append(self._programs[(size, *shape[1:])].run(x[start:start + size]))
                start += size
            return torch.cat(outputs)

    def extra_repr(self) -> str:
        return (f"artifact of {self.header.get('model', '?')}, shapes {self.input_shapes}, "
                f"backend {self.backend}")


def _choose_isa(header: dict[str, Any], backend: str | None, path: Path) -> tuple[str, int | None]:
    """The backend to run on and the ISA code to write into the structs (``None``: keep)."""
    saved = str(header.get("backend", ""))
    available = kernels.available_backends()
    if kernels.library() is None:
        raise ArtifactError(f"cannot run {path}: no compiled kernel library "
                            f"({kernels.load_error()})")
    if backend is not None:
        if backend not in available or not kernels.get_backend(backend).compiled:
            raise ArtifactError(f"backend {backend!r} cannot run here; available: "
                                f"{[b for b in available if b != 'torch']}")
        return backend, kernels.isa_code(backend)
    if saved in available and kernels.get_backend(saved).compiled:
        here = cpu_description()["model"]
        if header.get("cpu", {}).get("model") not in (None, here):
            logger.info("%s was planned on %s, this CPU is %s: it runs as planned there "
                        "(export it again here to re-plan and re-tune)", path,
                        header["cpu"]["model"], here)
        return saved, None
    compiled = [name for name in available if kernels.get_backend(name).compiled]
    if not compiled:
        raise ArtifactError(f"cannot run {path}: no compiled backend on this machine")
    chosen = kernels.backend() if kernels.backend() in compiled else compiled[0]
    warnings.warn(f"{path} was planned for backend {saved!r} on "
                  f"{header.get('cpu', {}).get('model', 'another CPU')}, which this CPU cannot "
                  f"run: it runs on {chosen!r} instead (results may differ in the last bits; "
                  "export it again on this machine for its own plan)", RuntimeWarning,
                  stacklevel=3)
    return chosen, kernels.isa_code(chosen)


def load(path: str | Path, backend: str | None = None) -> LoadedModel:
    """Load an engine artifact written by :func:`sparsewino.engine.save`.

    Nothing is traced, packed or tuned: the saved programs run as they were planned. If this
    CPU cannot run the backend they were planned for (say ``avx512`` on an AVX2 machine), they
    run on the best backend it has, with a ``RuntimeWarning``.

    Args:
        path: the ``.swe`` file.
        backend: run on this compiled backend instead of the saved one (``"portable"``...).

    Returns:
        A :class:`LoadedModel` (an ``nn.Module``: ``model(x)`` for float32 inputs of a saved
        shape, or a batch made of saved batch sizes).

    Raises:
        ArtifactError: a missing, foreign, truncated, modified or newer file, another kernel
            ABI, or no compiled kernel library here.
    """
    path = Path(path)
    buffers: list[torch.Tensor] = []

    def allocate(size: int) -> Any:
        buffers.append(torch.empty(max(size, 1), dtype=torch.uint8))   # 64-byte aligned
        return buffers[-1].numpy()[:size]

    artifact = read_artifact(path, kernels.ABI_VERSION, allocate)
    if artifact.header.get("format") != "sparsewino-engine" or not artifact.programs:
        raise ArtifactError(f"{path}: the header does not describe an engine artifact")
    name, isa = _choose_isa(artifact.header, backend, path)
    programs = [_LoadedProgram(record, artifact.constants, isa, path)
                for record in artifact.programs]
    return LoadedModel(artifact.header, programs, name, (buffers, artifact.constants))
