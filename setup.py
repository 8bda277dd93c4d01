"""Build script for the optional C++/OpenMP kernel library (loaded with ctypes by sparsewino.native).

All metadata lives in pyproject.toml; this file only declares the one native library
``sparsewino.native._sw_kernels``: every operation of the engine, the adder layers' product and
the C API of engine artifacts (``sparsewino.h``; sources in ``src/sparsewino/engine/kernels``). It is
built with the system C++ compiler (C++17, OpenMP when available) by the normal
``pip install .`` / ``pip install -e .``. No ``-march=native``: the AVX-512 and AVX2+FMA
builds are compiled per translation unit (``#pragma GCC target``) and chosen at run time,
next to a portable build. If the compiler is missing or the build fails, installation still succeeds and the
engine and the adder layers fall back to a pure-PyTorch path with a warning.
"""
from __future__ import annotations

import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNEL_DIR = os.path.join("src", "sparsewino", "engine", "kernels")
SOURCES = ["sw_api.cpp", "sw_isa_avx512.cpp", "sw_isa_avx2.cpp", "sw_isa_portable.cpp",
           "sw_extract.cpp", "sw_model.cpp"]
HEADERS = ["sw_kernels.h", "sw_plan.h", "sw_simd_avx2.h", "sw_product_impl.h",
           "sw_conv2d_impl.h", "sw_conv3d_impl.h", "sw_ops_impl.h", "sw_patterns.h",
           "sw_adder_impl.h", "sw_adder_avx2.h", "sw_winograd_impl.h",
           os.path.join("..", "..", "native", "include", "sparsewino.h")]
OPENMP_COMPILE, OPENMP_LINK = ["-fopenmp"], ["-fopenmp"]


class OptionalBuildExt(build_ext):
    """Build the kernel with OpenMP, retry without it, and never fail the installation."""

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
            return
        except Exception as exc:  # noqa: BLE001 - any compiler failure must not break install
            first_error = exc
        ext.extra_compile_args = [a for a in ext.extra_compile_args if a not in OPENMP_COMPILE]
        ext.extra_link_args = [a for a in ext.extra_link_args if a not in OPENMP_LINK]
        try:
            super().build_extension(ext)
            self.warn("sparsewino: built the kernel without OpenMP (single-threaded); "
                      f"the OpenMP build failed: {first_error}")
        except Exception as exc:  # noqa: BLE001
            self.warn(f"sparsewino: the C++ kernel {ext.name} could not be built; its users "
                      f"(sparsewino.engine / the adder layers) will use their pure-PyTorch "
                      f"fallback. Reason: {exc}")


kernel = Extension(
    "sparsewino.native._sw_kernels",
    sources=[os.path.join(KERNEL_DIR, name) for name in SOURCES],
    depends=[os.path.join(KERNEL_DIR, name) for name in HEADERS],
    language="c++",
    extra_compile_args=["-std=c++17", "-O3", "-g0", "-fvisibility=hidden", *OPENMP_COMPILE],
    extra_link_args=OPENMP_LINK,
    optional=True,
)

setup(ext_modules=[kernel], cmdclass={"build_ext": OptionalBuildExt})
