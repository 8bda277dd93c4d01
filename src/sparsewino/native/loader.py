"""Loading the package's C++ extension library with ctypes: the mechanism (:class:`NativeLibrary`).

The library is found next to its Python package, loaded once (thread safe, on first use), its
ABI version checked and its functions declared (and its tables checked) by the caller's
``declare``; a missing or stale build is an explanation string, never an exception at import
time. :mod:`sparsewino.native.library` holds the package's one instance.
"""
from __future__ import annotations

import ctypes
import importlib.machinery
import threading
from pathlib import Path
from typing import Callable

__all__ = ["NativeLibrary"]


class NativeLibrary:
    """A lazily loaded extension library ``<directory>/<stem><EXTENSION_SUFFIX>``.

    Args:
        directory: the package directory the build puts the library in.
        stem: the file name without the platform suffix (``"_sw_kernels"``).
        what: how error messages name it (``"the compiled kernel library"``).
        abi_symbol, abi_version: the exported ``int32 f(void)`` and the version it must return.
        declare: sets restype/argtypes and may check more (raise ``OSError`` for a stale build).
        locate: returns the path to load (default :meth:`find`); a module passes its own
            public ``library_path`` so that tests can point it elsewhere.
    """

    def __init__(self, directory: Path, stem: str, what: str, abi_symbol: str, abi_version: int,
                 declare: Callable[[ctypes.CDLL], None],
                 locate: Callable[[], Path | None] | None = None) -> None:
        self.directory, self.stem, self.what = directory, stem, what
        self.abi_symbol, self.abi_version, self.declare = abi_symbol, abi_version, declare
        self.locate = locate
        self._lock = threading.Lock()
        self._loaded = False
        self._lib: ctypes.CDLL | None = None
        self._error: str | None = None

    def fresh(self) -> "NativeLibrary":
        """An unloaded copy (tests make loading fail on it)."""
        return NativeLibrary(self.directory, self.stem, self.what, self.abi_symbol,
                             self.abi_version, self.declare, self.locate)

    def find(self) -> Path | None:
        """The built library's path in ``directory``, or ``None`` if it was not built."""
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            candidate = self.directory / f"{self.stem}{suffix}"
            if candidate.is_file():
                return candidate
        return None

    def get(self) -> ctypes.CDLL | None:
        """The loaded library, or ``None`` (see :meth:`error`)."""
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    self._load()
                    self._loaded = True
        return self._lib

    def error(self) -> str | None:
        """Why the library is unavailable, or ``None`` when it loaded."""
        self.get()
        return self._error

    def _load(self) -> None:
        path = self.locate() if self.locate is not None else self.find()
        if path is None:
            self._error = (f"{self.what} was not built (no C++ compiler or a failed build during "
                           "pip install); reinstall with g++ available: pip install -e .")
            return
        try:
            lib = ctypes.CDLL(str(path))
            abi = getattr(lib, self.abi_symbol)
            abi.restype = ctypes.c_int32
            version = abi()
            if version != self.abi_version:
                raise OSError(f"ABI version {version}, expected {self.abi_version} (stale build; "
                              "reinstall with pip install -e .)")
            self.declare(lib)
        except (OSError, AttributeError) as exc:
            self._error = f"could not load {path.name}: {exc}"
            return
        self._lib = lib
