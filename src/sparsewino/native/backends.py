"""The backends of the native layer in one registry, and the one choice among them.

A backend is one build of the kernels (an instruction set) or the pure-PyTorch path. Adding
one = a new ``sw_isa_*.cpp`` build in ``setup.py`` plus one :func:`register_backend` call here;
the loader, the automatic choice, ``SPARSEWINO_ENGINE_BACKEND``, the CLI/bench reports and the
tests all read this registry. The engine's compiled layers and the adder layers' product run on
the same choice (:func:`backend`).

The choice: :func:`use_backend` (a ``with`` block, this thread), else the environment variable
``SPARSEWINO_ENGINE_BACKEND`` (``auto`` or a name), else ``auto``: the most preferred
*verified* backend this CPU runs. The adder layers' former variable ``SPARSEWINO_ADDER_BACKEND``
is still honoured when ``SPARSEWINO_ENGINE_BACKEND`` is unset, with a ``DeprecationWarning``.
Forcing a backend the CPU or the build lacks is a clear ``RuntimeError``, never an illegal
instruction: the library checks the CPU (``sw_isa_supported``) before it runs any
instruction-set build. Without the library everything warns once and runs ``torch``.

``verified`` records that the test suite has run the backend on a CPU that has it. The
automatic choice never picks an unverified backend (a SIMD path no machine of ours could run
stays off by default); it can still be forced by name, and the tests exercise every backend
the CPU supports, verified or not. Flip ``verified`` once ``make test`` passed on such a CPU.
"""
from __future__ import annotations

import contextlib
import os
import threading
import warnings
from dataclasses import dataclass
from typing import Iterator

from ..errors import UnknownNameError, UserError
from . import abi
from . import handle as _handle

__all__ = ["Backend", "register_backend", "registered_backends", "get_backend", "backend",
           "available_backends", "use_backend", "isa_code", "unavailable_reason", "ENV_VAR",
           "DEPRECATED_ENV_VAR", "BackendUnavailableError"]

ENV_VAR = "SPARSEWINO_ENGINE_BACKEND"
DEPRECATED_ENV_VAR = "SPARSEWINO_ADDER_BACKEND"


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


class BackendUnavailableError(UserError, RuntimeError):
    """A backend asked for by name cannot run on this machine (the message says why)."""


def get_backend(name: str) -> Backend:
    """The backend called ``name``.

    Raises:
        UnknownNameError: no such backend (a ``ValueError``).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError(f"{name!r} is not a backend; use one of "
                         f"{['auto'] + [b.name for b in registered_backends()]}") from None


register_backend(Backend(
    "avx512", abi.ISA_AVX512, 30, verified=True,
    description="AVX-512 F/BW/VL/DQ + FMA build: 16-tile element-wise stage, masked borders",
    cpu_flags=("avx512f", "avx512bw", "avx512vl", "avx512dq", "fma", "f16c")))
register_backend(Backend(
    "avx2", abi.ISA_AVX2, 20, verified=True,
    description="AVX2 + FMA build: 8-tile vectors, pattern-specialised transforms",
    cpu_flags=("avx2", "fma", "f16c")))
register_backend(Backend(
    "portable", abi.ISA_PORTABLE, 10, verified=True,
    description="plain C++ build of the same kernels (any CPU; also runs the 16-lane logic)"))
register_backend(Backend(
    "torch", None, 0, verified=True,
    description="pure PyTorch (no speed-up): when the C++ library is missing"))


_state: dict[str, object] = {"warned": False, "available": None, "choices": {}}
_override = threading.local()


def unavailable_reason(entry: Backend) -> str | None:
    """Why ``entry`` cannot run here, or ``None`` when it can."""
    if not entry.compiled:
        return None
    lib = _handle.library()
    if lib is None:
        return _handle.load_error()
    if not lib.sw_isa_compiled(entry.isa):
        return f"the {entry.name} build is not part of this library (compiler or platform)"
    if not lib.sw_isa_supported(entry.isa):
        needs = " ".join(entry.cpu_flags) or entry.name
        return f"this CPU lacks {needs}"
    return None


def available_backends() -> list[str]:
    """Backends that can run on this machine, most preferred first (``"torch"`` always).

    Includes backends not yet verified on hardware (they run only when forced by name).

    Examples:
        >>> available_backends()[-1]
        'torch'
    """
    cached = _state.get("available")
    if cached is None:
        cached = _state["available"] = tuple(
            b.name for b in registered_backends() if unavailable_reason(b) is None)
    return list(cached)  # type: ignore[arg-type]


def _requested() -> str:
    """The raw request: the ``with`` block's, the environment variable's, or ``"auto"``."""
    raw = getattr(_override, "name", None) or os.environ.get(ENV_VAR)
    if not raw and os.environ.get(DEPRECATED_ENV_VAR):
        raw = os.environ[DEPRECATED_ENV_VAR]
        warnings.warn(f"{DEPRECATED_ENV_VAR} is deprecated: the adder layers and the engine "
                      f"share one backend; set {ENV_VAR}={raw} instead",
                      DeprecationWarning, stacklevel=3)
    return raw or "auto"


def backend(noun: str = "backend") -> str:
    """Name of the backend native code runs on now.

    Args:
        noun: how error messages name a backend (``"adder backend"`` for the adder layers).

    Raises:
        UnknownNameError: the requested name is not a backend (a ``ValueError``).
        BackendUnavailableError: a backend was requested by name but cannot run here (a
            ``RuntimeError``; the message says why: missing CPU flags, missing build, library
            not loaded).

    Examples:
        >>> backend() in available_backends()
        True
    """
    raw = _requested()
    chosen = _state["choices"].get(raw)  # type: ignore[union-attr]
    if chosen is not None:
        return chosen
    requested = raw.strip().lower()
    available = available_backends()
    if requested == "auto":
        chosen = next(name for name in available if get_backend(name).verified)
        if chosen == "torch" and not _state["warned"]:
            _state["warned"] = True
            warnings.warn(f"sparsewino: {_handle.load_error()}. Compiled layers and adder "
                          "layers fall back to a pure-PyTorch path without the speed-up.",
                          RuntimeWarning, stacklevel=3)
    else:
        if requested not in _REGISTRY:
            article = "an" if noun[0] in "aeiou" else "a"
            raise UnknownNameError(f"{ENV_VAR}={raw!r} is not {article} {noun}; use one of "
                             f"{['auto'] + [b.name for b in registered_backends()]}")
        reason = unavailable_reason(_REGISTRY[requested])
        if reason is not None:
            raise BackendUnavailableError(f"sparsewino {noun} {requested!r} is not available: {reason}. "
                               f"Available here: {available}")
        chosen = requested
    _state["choices"][raw] = chosen  # type: ignore[index]
    return chosen


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Run native code on backend ``name`` (or ``"auto"``) inside a ``with`` block.

    Examples:
        >>> with use_backend("torch"):
        ...     backend()
        'torch'
    """
    previous = getattr(_override, "name", None)
    _override.name = name
    try:
        yield backend()
    finally:
        _override.name = previous


def isa_code(name: str) -> int:
    """The C library's instruction-set code of a compiled backend."""
    entry = get_backend(name)
    if entry.isa is None:
        raise ValueError(f"backend {name!r} has no compiled kernels")
    return entry.isa
