"""The engine artifact's file container (``.swe``): a fixed preamble, a JSON header, a table of
little-endian int64 numbers and 64-byte aligned raw blobs; data only, no code.

Layout (every integer little-endian)::

    offset  size  field
         0     8  magic b"SWENGINE"
         8     4  format version (uint32)            FORMAT_VERSION
        12     4  kernel ABI version (uint32)         SW_ABI_VERSION of the library that wrote it
        16     8  header offset, 24: header bytes     JSON (UTF-8): metadata, never needed to run
        32     8  table offset,  40: table bytes      int64 numbers (below): what a runner needs
        48     8  blobs offset,  56: blobs bytes      64-byte aligned: struct bytes and constants
        64     8  file size in bytes
        72     4  CRC-32 (zlib's) of bytes [0, 72) then [80, end)
        76     4  zero

The table, read in order (so that the C reader in ``sw_model.cpp`` needs no JSON parser)::

    constants:  count, then (blob offset, bytes) each
    programs:   count, then each:
        input rank, input shape..., output rank, output shape...,
        arena bytes, workspace bytes, operation count, then each operation:
            kind (sw_op_kind), struct blob offset, struct bytes, byte offset of its ``isa``
            field (-1: none), relocation count, then (field byte offset, target, index,
            byte offset) each

A relocation writes into the struct's pointer field at ``field byte offset`` the address of
``target`` (:data:`ARENA`, :data:`WORKSPACE`, :data:`INPUT`, :data:`OUTPUT`, or
:data:`CONSTANT` number ``index``) plus ``byte offset``. Pointer fields are stored as zero.
"""
from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ...errors import ArtifactError
from ...files import write_bytes_atomic

__all__ = ["MAGIC", "FORMAT_VERSION", "ARENA", "WORKSPACE", "INPUT", "OUTPUT", "CONSTANT",
           "TARGETS", "Relocation", "OpRecord", "ProgramRecord", "Artifact", "write_artifact",
           "read_artifact", "is_artifact"]

MAGIC = b"SWENGINE"
FORMAT_VERSION = 1
ARENA, WORKSPACE, INPUT, OUTPUT, CONSTANT = 0, 1, 2, 3, 4
#: Relocation target code -> name.
TARGETS = {ARENA: "arena", WORKSPACE: "workspace", INPUT: "input", OUTPUT: "output",
           CONSTANT: "constant"}
_PREAMBLE = struct.Struct("<8sII7QII")
_ALIGN = 64


@dataclass(frozen=True)
class Relocation:
    """Where a pointer field of an operation's struct points: ``target`` (+ ``index`` for a
    constant) at ``offset`` bytes."""

    field_offset: int
    target: int
    index: int
    offset: int


@dataclass
class OpRecord:
    """One operation: its ``sw_op_kind`` code, its struct's bytes (pointers zero), the byte
    offset of its ``isa`` field (-1 when it has none) and its relocations."""

    kind: int
    struct: bytes
    isa_offset: int
    relocations: list[Relocation] = field(default_factory=list)


@dataclass
class ProgramRecord:
    """A whole-model program for one input shape."""

    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    arena_bytes: int
    workspace_bytes: int
    ops: list[OpRecord] = field(default_factory=list)


@dataclass
class Artifact:
    """What an artifact file holds: the JSON header, the constant blobs and the programs."""

    header: dict[str, Any]
    constants: list[Any]                 # bytes-like (readable buffers)
    programs: list[ProgramRecord]
    abi_version: int = 0


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def write_artifact(path: str | Path, artifact: Artifact) -> None:
    """Write ``artifact`` to ``path`` (atomically: a temporary file renamed into place)."""
    blobs: list[tuple[int, Any]] = []
    size = 0

    def place(data: Any) -> int:
        nonlocal size
        offset = size
        blobs.append((offset, data))
        size = _aligned(offset + len(memoryview(data).cast("B")))
        return offset

    numbers: list[int] = [len(artifact.constants)]
    for data in artifact.constants:
        numbers += [place(data), len(memoryview(data).cast("B"))]
    numbers.append(len(artifact.programs))
    for program in artifact.programs:
        numbers += [len(program.input_shape), *program.input_shape, len(program.output_shape),
                    *program.output_shape, program.arena_bytes, program.workspace_bytes,
                    len(program.ops)]
        for op in program.ops:
            numbers += [op.kind, place(op.struct), len(op.struct), op.isa_offset,
                        len(op.relocations)]
            for r in op.relocations:
                numbers += [r.field_offset, r.target, r.index, r.offset]
    table = struct.pack(f"<{len(numbers)}q", *numbers)
    header = json.dumps(artifact.header, sort_keys=True).encode()
    header_offset = _PREAMBLE.size
    table_offset = -(-(header_offset + len(header)) // 8) * 8
    blobs_offset = _aligned(table_offset + len(table))
    total = blobs_offset + size
    body = bytearray(total)
    body[header_offset:header_offset + len(header)] = header
    body[table_offset:table_offset + len(table)] = table
    for offset, data in blobs:
        raw = memoryview(data).cast("B")
        body[blobs_offset + offset:blobs_offset + offset + len(raw)] = raw
    body[:_PREAMBLE.size] = _PREAMBLE.pack(MAGIC, FORMAT_VERSION, artifact.abi_version,
                                           header_offset, len(header), table_offset, len(table),
                                           blobs_offset, size, total, 0, 0)
    crc = zlib.crc32(memoryview(body)[80:], zlib.crc32(memoryview(body)[:72]))
    struct.pack_into("<I", body, 72, crc)
    write_bytes_atomic(path, body)


def is_artifact(path: str | Path) -> bool:
    """Whether ``path`` is a file that starts like an engine artifact (its magic bytes)."""
    path = Path(path)
    if not path.is_file():
        return False
    with path.open("rb") as handle:
        return handle.read(len(MAGIC)) == MAGIC


def read_artifact(path: str | Path, abi_version: int,
                  allocate: Callable[[int], Any] = bytearray) -> Artifact:
    """Read and check an artifact file.

    Args:
        path: the ``.swe`` file.
        abi_version: the kernel ABI this process runs (``sparsewino.native.abi.ABI_VERSION``).
        allocate: returns a writable buffer of ``n`` bytes to read the file into (the loader
            passes a 64-byte aligned one, so that constants are aligned as when they were saved).

    Returns:
        The :class:`Artifact` (its constants are views into the buffer).

    Raises:
        ArtifactError: not an artifact (bad magic), truncated, checksum mismatch (modified or
            corrupted), a newer format version, another kernel ABI, or an inconsistent table.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such artifact file; write one with "
                            "sparsewino.engine.save(compiled, path) or `sparsewino export`")
    size = path.stat().st_size
    buffer = allocate(size)
    view = memoryview(buffer).cast("B")
    with path.open("rb") as handle:
        got = handle.readinto(view)
    if got != size or size < len(MAGIC) or bytes(view[:len(MAGIC)]) != MAGIC:
        raise ArtifactError(f"{path} is not a sparsewino engine artifact (its first bytes are not "
                            f"{MAGIC!r}); make one with `sparsewino export CHECKPOINT -o model.swe`")
    if size < _PREAMBLE.size:
        raise ArtifactError(f"{path} is truncated ({size} bytes, less than the {_PREAMBLE.size}-"
                            "byte preamble); export it again")
    (_, version, abi, header_offset, header_size, table_offset, table_size, blobs_offset,
     blobs_size, total, crc, _) = _PREAMBLE.unpack_from(view)
    if version > FORMAT_VERSION:
        raise ArtifactError(f"{path} has artifact format version {version}; this sparsewino "
                            f"reads versions up to {FORMAT_VERSION}: upgrade sparsewino")
    if size != total:
        state = "truncated" if size < total else "longer than written"
        raise ArtifactError(f"{path} is {state} ({size} bytes, {total} written); copy or "
                            "export it again")
    if zlib.crc32(view[80:], zlib.crc32(view[:72])) != crc:
        raise ArtifactError(f"{path} fails its checksum: it was modified or corrupted after "
                            "export; export it again")
    if abi != abi_version:
        raise ArtifactError(f"{path} was written for kernel ABI version {abi}; this library has "
                            f"version {abi_version}: export it again with this sparsewino")
    try:
        header = json.loads(bytes(view[header_offset:header_offset + header_size]))
        table = _Table(view[table_offset:table_offset + table_size], path)
        blobs = view[blobs_offset:blobs_offset + blobs_size]

        def blob(offset: int, length: int) -> Any:
            if offset < 0 or length < 0 or offset + length > blobs_size:
                raise ArtifactError(f"{path}: a blob lies outside the file")
            return blobs[offset:offset + length]

        constants = [blob(table.next(), table.next()) for _ in range(table.count())]
        programs = []
        for _ in range(table.count()):
            input_shape = tuple(table.next() for _ in range(table.count()))
            output_shape = tuple(table.next() for _ in range(table.count()))
            program = ProgramRecord(input_shape, output_shape, table.next(), table.next())
            for _ in range(table.count()):
                kind, offset, length, isa_offset = (table.next() for _ in range(4))
                op = OpRecord(kind, bytes(blob(offset, length)), isa_offset)
                for _ in range(table.count()):
                    op.relocations.append(Relocation(*(table.next() for _ in range(4))))
                program.ops.append(op)
            programs.append(program)
    except (ValueError, UnicodeDecodeError, struct.error) as exc:
        raise ArtifactError(f"{path}: malformed artifact ({exc}); export it again") from None
    return Artifact(header, constants, programs, abi)


class _Table:
    """Sequential reader of the int64 table."""

    def __init__(self, view: memoryview, path: Path) -> None:
        self.numbers = view.cast("q") if len(view) % 8 == 0 else None
        if self.numbers is None:
            raise ArtifactError(f"{path}: malformed artifact table; export it again")
        self.position, self.path = 0, path

    def next(self) -> int:
        if self.position >= len(self.numbers):
            raise ArtifactError(f"{self.path}: the artifact table ends early; export it again")
        self.position += 1
        return int(self.numbers[self.position - 1])

    def count(self) -> int:
        value = self.next()
        if value < 0 or value > len(self.numbers):
            raise ArtifactError(f"{self.path}: malformed artifact table; export it again")
        return value
