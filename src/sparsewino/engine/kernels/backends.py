"""The engine's backends as objects in one registry: what each needs and whether it may be chosen.

A backend is one build of the kernels (an instruction set) or the pure-PyTorch path. Adding
one = a new ``sw_isa_*.cpp`` build in ``setup.py`` plus one :func:`register_backend` call here;
the loader, the automatic choice, ``SPARSEWINO_ENGINE_BACKEND``, the CLI/bench reports and the
tests all read this registry.

``verified`` records that the test suite has run the backend on a CPU that has it. The
automatic choice never picks an unverified backend (a SIMD path no machine of ours could run
stays off by default); it can still be forced by name, and the tests exercise every backend
the CPU supports, verified or not. Flip ``verified`` once ``make test`` passed on such a CPU.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Backend", "register_backend", "registered_backends", "get_backend"]


@dataclass(frozen=True)
class Backend:
    """One way to run compiled layers.

    Attributes:
        name: what users write (``SPARSEWINO_ENGINE_BACKEND=<name>``).
        isa: the C library's instruction-set code, ``None`` for the PyTorch path.
        rank: preference among the available ones (higher first).
        verified: the test suite has run it on a CPU that has it (see the module docstring).
        description: one line for reports and docs.
        cpu_flags: the CPU flags (``/proc/cpuinfo`` names) it needs, for messages.
    """

    name: str
    isa: int | None
    rank: int
    verified: bool
    description: str
    cpu_flags: tuple[str, ...] = ()

    @property
    def compiled(self) -> bool:
        """Whether it runs compiled kernels (everything but the PyTorch path)."""
        return self.isa is not None


_REGISTRY: dict[str, Backend] = {}


def register_backend(backend: Backend) -> Backend:
    """Add ``backend`` to the registry (names are unique)."""
    if backend.name in _REGISTRY or backend.name == "auto":
        raise ValueError(f"backend {backend.name!r} is already registered (or reserved)")
    _REGISTRY[backend.name] = backend
    return backend


def registered_backends() -> list[Backend]:
    """Every registered backend, most preferred first."""
    return sorted(_REGISTRY.values(), key=lambda b: -b.rank)


def get_backend(name: str) -> Backend:
    """The backend called ``name``.

    Raises:
        ValueError: no such backend.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"{name!r} is not a backend; use one of "
                         f"{['auto'] + [b.name for b in registered_backends()]}") from None


register_backend(Backend(
    "avx512", 3, 30, verified=False,
    description="AVX-512 F/BW/VL/DQ + FMA build: 16-tile element-wise stage, masked borders",
    cpu_flags=("avx512f", "avx512bw", "avx512vl", "avx512dq", "fma", "f16c")))
register_backend(Backend(
    "avx2", 2, 20, verified=True,
    description="AVX2 + FMA build: 8-tile vectors, pattern-specialised transforms",
    cpu_flags=("avx2", "fma", "f16c")))
register_backend(Backend(
    "portable", 1, 10, verified=True,
    description="plain C++ build of the same kernels (any CPU; also runs the 16-lane logic)"))
register_backend(Backend(
    "torch", None, 0, verified=True,
    description="pure PyTorch (no sparse speed-up): when the C++ library is missing"))
