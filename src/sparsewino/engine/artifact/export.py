"""``engine.save``: a compiled model's programs written as a data-only artifact file.

For every saved input shape the model's :class:`~sparsewino.engine.program.Program` (one
``sw_run_program`` call over an arena) is written as its operations: each one's code, its
argument struct's bytes with the pointers zeroed, and a relocation per pointer field saying
which buffer it points into (the arena, the workspace, the input, the output, or a constant:
the packed weights, transforms, biases and offsets the struct reads, saved as raw bytes).
``engine.load`` and the C API rebuild the structs by relocating the pointers; nothing is
traced, packed or tuned again, and no Python class of the model is needed.
"""
from __future__ import annotations

import bisect
import ctypes
import platform
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from ...errors import ArtifactError
from .. import kernels
from ..compile import CompiledModel
from ..modules import CompiledLayer
from ..program import Program, _Segment
from .container import (
    ARENA,
    CONSTANT,
    INPUT,
    OUTPUT,
    WORKSPACE,
    Artifact,
    OpRecord,
    ProgramRecord,
    Relocation,
    write_artifact,
)
from .machine import cpu_description, library_version

__all__ = ["save", "pointer_fields"]


def pointer_fields(struct_type: type[ctypes.Structure], base: int = 0
                   ) -> list[tuple[str, int]]:
    """``(dotted name, byte offset)`` of every pointer field of ``struct_type``, nested structs
    (``w.val``) included."""
    found = []
    for name, kind in struct_type._fields_:
        offset = base + getattr(struct_type, name).offset
        if kind is ctypes.c_void_p:
            found.append((name, offset))
        elif isinstance(kind, type) and issubclass(kind, ctypes.Structure):
            found += [(f"{name}.{inner}", at) for inner, at in pointer_fields(kind, offset)]
    return found


class _Constants:
    """The memory the structs may point into besides the arena, workspace, input and output:
    every tensor reachable from the compiled layers, found by storage; saved on first use."""

    def __init__(self, roots: Iterable[Any]) -> None:
        storages: dict[int, int] = {}
        seen: set[int] = set()
        stack = list(roots)
        while stack:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if isinstance(obj, torch.Tensor):
                storage = obj.untyped_storage()
                if storage.nbytes() and obj.device.type == "cpu":
                    storages[storage.data_ptr()] = storage.nbytes()
            elif isinstance(obj, dict):
                stack += list(obj.values())
            elif isinstance(obj, (list, tuple)):
                stack += list(obj)
            elif hasattr(obj, "__dict__") and not isinstance(obj, type):
                stack += list(vars(obj).values())
        self.starts = sorted(storages)
        self.sizes = [storages[s] for s in self.starts]
        self.index: dict[int, int] = {}
        self.blobs: list[bytes] = []

    def find(self, address: int) -> tuple[int, int] | None:
        """(constant index, byte offset) of ``address``, or ``None`` if no tensor holds it."""
        at = bisect.bisect_right(self.starts, address) - 1
        if at < 0 or address >= self.starts[at] + self.sizes[at]:
            return None
        start = self.starts[at]
        if start not in self.index:
            self.index[start] = len(self.blobs)
            self.blobs.append(ctypes.string_at(start, self.sizes[at]))
        return self.index[start], address - start


def _program(compiled: CompiledModel, shape: Sequence[int]) -> Program:
    x = torch.zeros(tuple(shape))
    program = compiled.program(x)
    if program is None:
        raise ArtifactError(f"the model cannot run as one engine program for input {tuple(shape)} "
                            f"on backend {kernels.backend()!r} (the graph has several inputs or "
                            "outputs, or the backend is 'torch'); only such models can be saved")
    if program.torch_nodes:
        raise ArtifactError(f"the model's program runs PyTorch steps {program.torch_nodes} (no "
                            "engine kernel for them), which a data-only artifact cannot hold; "
                            "replace those modules or run the compiled model from Python")
    segments = [s for s in program.steps if isinstance(s, _Segment)]
    if len(segments) != 1 or len(program.steps) != 1 or not program._fresh_output:
        raise ArtifactError(f"the model's program for input {tuple(shape)} is not one kernel "
                            "program writing a new output (it returns its input or a view "
                            "of it); there is nothing to save")
    return program


def _record(program: Program, constants: _Constants) -> ProgramRecord:
    """The :class:`ProgramRecord` of ``program``: structs with pointers zeroed, relocations."""
    input_root = program.values[program._input].root
    output_root = program.values[program.output].root
    dynamic = {(id(struct), name): (root, shift) for struct, name, root, shift in program.patches}
    regions = ((program.arena, ARENA), (program.workspace, WORKSPACE))
    result, root = program.values[program.output], program.values[output_root]
    # the model's result may be a whole view of the output buffer in another shape (Flatten)
    output_shape = result.shape if result.shift == 0 and result.numel == root.numel else root.shape
    record = ProgramRecord(program.values[input_root].shape, output_shape,
                           4 * program.arena.numel(), 4 * program.workspace.numel())
    segment = program.steps[0]
    for op in segment.ops:
        args = op.args
        struct_type = type(args)
        copy = struct_type.from_buffer_copy(args)
        relocations = []
        for name, offset in pointer_fields(struct_type):
            owner, field_name = args, name
            for part in name.split(".")[:-1]:
                owner = getattr(owner, part)
            field_name = name.rsplit(".", 1)[-1]
            ctypes.c_uint64.from_buffer(copy, offset).value = 0
            if (id(owner), field_name) in dynamic:
                root, shift = dynamic[(id(owner), field_name)]
                target = INPUT if root == input_root else OUTPUT if root == output_root else None
                if target is None:
                    raise ArtifactError(f"operation {op.name or op.op}: {name} points to a value "
                                        "computed outside the engine; it cannot be saved")
                relocations.append(Relocation(offset, target, 0, shift))
                continue
            address = getattr(owner, field_name)
            if not address:
                continue
            for tensor, target in regions:
                start = tensor.data_ptr()
                if start <= address < start + 4 * tensor.numel():
                    relocations.append(Relocation(offset, target, 0, address - start))
                    break
            else:
                found = constants.find(address)
                if found is None:
                    raise ArtifactError(f"operation {op.name or op.op} ({op.op}): pointer {name} "
                                        "points to memory no compiled layer holds; this is a "
                                        "defect of sparsewino, please report it")
                relocations.append(Relocation(offset, CONSTANT, *found))
        isa_offset = struct_type.isa.offset if hasattr(struct_type, "isa") else -1
        record.ops.append(OpRecord(kernels.OP_KINDS[op.op], bytes(copy), isa_offset, relocations))
    return record


def _layers(compiled: CompiledModel) -> list[dict[str, Any]]:
    """The compile report's rows, with the tile and per-position formats of compiled layers."""
    rows = []
    modules = dict(compiled.named_modules())
    for entry in compiled.compile_report:
        row: dict[str, Any] = {"name": entry.name, "kernel": entry.kernel, "detail": entry.detail,
                               "fused": list(entry.fused)}
        layer = modules.get(entry.name)
        if isinstance(layer, CompiledLayer):
            spec = getattr(layer, "spec", None)
            if spec is not None and hasattr(spec, "tile"):
                row["tile"] = spec.tile
            packed = getattr(layer, "packed", None)
            if packed is not None:
                row["formats"] = packed.formats()
                row["weights"] = packed.precision
        rows.append(row)
    return rows


def _seen_shapes(compiled: CompiledModel) -> list[tuple[int, ...]]:
    return sorted({key[0] for key, program in compiled._programs.items()
                   if program is not None})


def save(compiled: nn.Module, path: str | Path,
         shapes: Sequence[Sequence[int]] | None = None) -> Path:
    """Write ``compiled`` (what :func:`sparsewino.engine.compile` returned) as an engine artifact.

    The file holds, per input shape, the whole-model kernel program (packed weights in their
    formats included), plus the compile report, the per-layer tiles and formats, the backend
    and CPU they were planned on, the threads, the precision and the library and ABI versions.
    It is data only: :func:`sparsewino.engine.load` runs it without the model's class, the
    checkpoint, tracing or tuning.

    Args:
        compiled: a :class:`~sparsewino.engine.CompiledModel`.
        path: the file to write (``.swe`` by convention).
        shapes: the input shapes to save, e.g. ``[(1, 3, 32, 32), (8, 3, 32, 32)]``; default:
            the shapes the model has already run on. A loaded artifact runs other batch sizes
            of the same image shape in pieces of the saved ones.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ArtifactError: not a compiled whole model, no shape given or seen, the ``torch``
            backend, or a program that runs PyTorch steps (the message names them).

    Examples:
        >>> import tempfile, pathlib
        >>> from sparsewino import engine
        >>> from sparsewino.nn import WinogradConv2d
        >>> net = nn.Sequential(WinogradConv2d(1, 4, 3, padding=1), nn.ReLU()).eval()
        >>> fast = engine.compile(net)
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "net.swe"
        >>> _ = engine.save(fast, path, shapes=[(1, 1, 8, 8)])
        >>> x = torch.randn(1, 1, 8, 8)
        >>> bool((engine.load(path)(x) == fast(x)).all())
        True
    """
    if not isinstance(compiled, CompiledModel):
        raise ArtifactError(f"engine.save expects what engine.compile returns for a traceable "
                            f"model (a CompiledModel), got {type(compiled).__name__}; models that "
                            "torch.fx cannot trace, or single layers, cannot be saved")
    backend = kernels.backend()
    if backend == "torch":
        raise ArtifactError("the engine runs on the 'torch' backend here (no compiled kernel "
                            f"library: {kernels.load_error()}); an artifact needs the kernels")
    shapes = [tuple(int(s) for s in shape) for shape in shapes] if shapes else \
        _seen_shapes(compiled)
    if not shapes:
        raise ArtifactError("no input shape to save: pass shapes=[(N, C, H, W)] or run the "
                            "compiled model once on an input first")
    threads = compiled.threads or torch.get_num_threads()
    with torch.no_grad():
        built = [_program(compiled, shape) for shape in dict.fromkeys(shapes)]
    layers = [m for m in compiled.modules() if isinstance(m, CompiledLayer)]
    constants = _Constants(layers + [program.kept for program in built])
    programs = [_record(program, constants) for program in built]
    header = {
        "format": "sparsewino-engine",
        "library_version": library_version(),
        "abi_version": kernels.ABI_VERSION,
        "torch_version": torch.__version__.split("+")[0],
        "backend": backend,
        "isa": kernels.isa_code(backend),
        "cpu": cpu_description(),
        "machine": platform.machine(),
        "threads": threads,
        "precision": getattr(compiled.compile_report, "precision", "fp32"),   # of the products
        "input_shapes": [list(p.input_shape) for p in programs],
        "output_shapes": [list(p.output_shape) for p in programs],
        "model": type(compiled._tree).__name__,
        "report": str(compiled.compile_report),
        "layers": _layers(compiled),
    }
    write_artifact(path, Artifact(header, constants.blobs, programs, kernels.ABI_VERSION))
    return Path(path)
