"""Execution strategies of the network's heavy primitives, apart from the mathematics they execute.

Each primitive has kernels chosen by name (``"auto"`` picks one for the size and device); tests and
benchmarks select them explicitly (``EquiLinear(..., kernel="sparse")``, ``GATrConfig.linear_kernel``).
"""

from .bilinear import BILINEAR_KERNELS, select_bilinear_kernel
from .linear import LINEAR_KERNELS, SPARSE_MIN_TOKENS, equi_linear, select_linear_kernel

__all__ = ["BILINEAR_KERNELS", "LINEAR_KERNELS", "SPARSE_MIN_TOKENS", "equi_linear", "select_bilinear_kernel",
           "select_linear_kernel"]
