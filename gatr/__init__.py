"""Geometric Algebra Transformers over pluggable Clifford algebras.

>>> from gatr import GATr
>>> net = GATr("conformal", in_mv_channels=2, out_mv_channels=1, hidden_mv_channels=16,
...            in_s_channels=3, out_s_channels=1, hidden_s_channels=32, num_blocks=4, num_heads=8)

Every layer takes and returns ``(multivectors (..., items, channels, dim), scalars (..., items, s))``.
Input scalars may be None when a layer has 0 scalar input channels; output scalars are always a
tensor (0 channels wide when there are none).
"""

from .layers import (EquiLayerNorm, EquiLinear, GATrBlock, GeometricAttention, GeometricBilinear,
                     GeometricCrossAttention, GeometricMLP, ScalarGatedNonlinearity)
from .nets import GATr, GATrConfig
from .packing import PackedSets, PaddedSets, pack, pad

__all__ = [
    "EquiLayerNorm", "EquiLinear", "GATr", "GATrBlock", "GATrConfig", "GeometricAttention", "GeometricBilinear",
    "GeometricCrossAttention", "GeometricMLP", "PackedSets", "PaddedSets", "ScalarGatedNonlinearity", "pack", "pad",
]
