"""Clifford-algebra backends for Geometric Algebra Transformers.

>>> from algebras import get_algebra
>>> cga = get_algebra("cga")
>>> cga.dim, cga.signature
(32, (1, 1, 1, 1, -1))
"""

from .clifford_algebra import CliffordAlgebra
from .conformal import ConformalAlgebra
from .constants import AlgebraTensors
from .contract import Embedding3D, NetworkAlgebra, NetworkConstants
from .euclidean import EuclideanAlgebra
from .geometry3d import Euclidean3DAlgebra
from .groups import VersorGroup, pin_group, plane_group
from .hooks import Bilinear
from .projective import DistanceProjectiveAlgebra, ProjectiveAlgebra
from .registry import (ENTRY_POINT_GROUP, algebra_aliases, algebra_spec, available_algebras, canonical_name,
                       get_algebra, register_algebra)
from .structure import GroupStructure

__all__ = [
    "ENTRY_POINT_GROUP", "AlgebraTensors", "Bilinear", "CliffordAlgebra", "ConformalAlgebra",
    "DistanceProjectiveAlgebra", "Embedding3D", "Euclidean3DAlgebra", "EuclideanAlgebra", "GroupStructure",
    "NetworkAlgebra", "NetworkConstants",
    "ProjectiveAlgebra", "VersorGroup", "algebra_aliases", "algebra_spec", "available_algebras", "canonical_name",
    "get_algebra", "pin_group", "plane_group", "register_algebra",
]
