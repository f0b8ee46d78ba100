"""nn.Modules of GATr; each forward takes and returns ``(multivectors, scalars)``."""

from .attention import GeometricAttention, GeometricCrossAttention
from .bilinear import GeometricBilinear, reference_from_inputs
from .block import GATrBlock, GeometricMLP
from .linear import EquiLinear
from .nonlinearity import ScalarGatedNonlinearity
from .norm import EquiLayerNorm

__all__ = [
    "EquiLayerNorm", "EquiLinear", "GATrBlock", "GeometricAttention", "GeometricBilinear", "GeometricCrossAttention",
    "GeometricMLP", "ScalarGatedNonlinearity", "reference_from_inputs",
]
