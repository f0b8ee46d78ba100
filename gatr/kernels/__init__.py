"""Execution strategies of the network's heavy primitives, apart from the mathematics they execute.

:mod:`.plan` decides, once per forward, how every layer executes (:class:`~.plan.ExecutionPlan`): the
kernel of the linear maps (:mod:`.linear`, :mod:`.sparse_linear`, with the custom operators of :mod:`.ops`),
the kernel of the bilinears (:mod:`.bilinear`) and the layout of the hidden multivectors (blade order or
the label layout of :mod:`.label_layout`). The layers import the plan and nothing else from here; tests and
benchmarks name kernels explicitly (``EquiLinear(..., kernel="sparse")``, ``GATrConfig.linear_kernel``).
"""

from .bilinear import BILINEAR_KERNELS
from .linear import LINEAR_KERNELS
from .plan import SPARSE_MIN_TOKENS, ExecutionPlan, prepare, resolve_plan, select_linear_kernel

__all__ = ["BILINEAR_KERNELS", "ExecutionPlan", "LINEAR_KERNELS", "SPARSE_MIN_TOKENS", "prepare", "resolve_plan",
           "select_linear_kernel"]
