"""Clifford-algebra backends for Geometric Algebra Transformers.

>>> from algebras import get_algebra
>>> cga = get_algebra("cga")
>>> cga.dim, cga.signature
(32, (1, 1, 1, 1, -1))
"""

from .clifford_algebra import Bilinear, CliffordAlgebra
from .conformal import ConformalAlgebra
from .euclidean import EuclideanAlgebra
from .geometry3d import Euclidean3DAlgebra
from .groups import VersorGroup, pin_group, plane_group
from .projective import DistanceProjectiveAlgebra, ProjectiveAlgebra
from .registry import algebra_aliases, available_algebras, canonical_name, get_algebra, register_algebra

__all__ = [
    "Bilinear", "CliffordAlgebra", "ConformalAlgebra", "DistanceProjectiveAlgebra", "Euclidean3DAlgebra",
    "EuclideanAlgebra", "ProjectiveAlgebra", "VersorGroup", "algebra_aliases", "available_algebras",
    "canonical_name", "get_algebra", "pin_group", "plane_group", "register_algebra",
]
