"""Execution strategies of the network's heavy primitives, apart from the mathematics they execute.

Each primitive has kernels chosen by name (``"auto"`` picks one for the size and device); tests and
benchmarks select them explicitly (``EquiLinear(..., kernel="sparse")``, ``GATrConfig.linear_kernel``).
:mod:`.block_layout` is the component order in which the sparse linear maps and the xor-shift bilinears
meet without permutations (``GeometricBilinear`` under ``torch.compile``).
"""

import torch

from .bilinear import BILINEAR_KERNELS, monomial_tables, product_matrices, select_bilinear_kernel
from .block_layout import block_layout
from .linear import LINEAR_KERNELS, SPARSE_MIN_TOKENS, equi_linear, select_linear_kernel, sparse_structure

__all__ = ["BILINEAR_KERNELS", "KERNEL_DATA", "LINEAR_KERNELS", "SPARSE_MIN_TOKENS", "equi_linear", "prepare",
           "select_bilinear_kernel", "select_linear_kernel"]

#: Builders of the kernels' cached data (``AlgebraTensors.derived``), run ahead of any forward by :func:`prepare`.
KERNEL_DATA = (block_layout, sparse_structure, product_matrices, monomial_tables)


#: Float dtypes whose constants :func:`prepare` builds (weights, autocast operands, float64 checks).
PREPARED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def prepare(algebra, device) -> None:
    """Build the algebra's tensors and every kernel's data on ``device`` for all float dtypes, once.

    Layers call this when they are built or moved (``.to()``), so a forward, traced or compiled with
    ``fullgraph=True``, only reads cached tensors and never converts NumPy data or runs a host loop.

    Parameters
    ----------
    algebra : NetworkAlgebra
    device : torch.device or str
    """
    device = torch.device(device)
    if device.type == "meta":
        return
    done = algebra.__dict__.setdefault("_prepared_devices", set())
    if device in done:
        return
    for dtype in PREPARED_DTYPES:
        t = algebra.tensors(device, dtype).build()
        for build in KERNEL_DATA:
            t.derived(build)
    done.add(device)
