"""Helpers shared by the algebra tests (a uniquely named module: tests/ has no packages)."""

from __future__ import annotations

import torch

from algebras import CliffordAlgebra, available_algebras, get_algebra

#: (registry name or signature, clifford Cl(...) keyword arguments)
#: every registered algebra, installed plug-ins included (the shared fixture of the algebra tests)
BACKENDS = tuple(available_algebras())
#: Every signature compared against ``clifford``: the three backends and two user algebras.
SIGNATURES = {
    "euclidean": (1, 1, 1),
    "projective": (0, 1, 1, 1),
    "conformal": (1, 1, 1, 1, -1),
    "plane": (1, 1),
    "spacetime": (1, -1, -1, -1),
}


def algebra_for(key: str) -> CliffordAlgebra:
    if key in ("euclidean", "projective", "conformal"):
        return get_algebra(key)
    return CliffordAlgebra(SIGNATURES[key], name=key)


def clifford_layout(key: str):
    """The clifford layout as the issue spells it (Cl(3), Cl(3,0,1, firstIdx=0), Cl(4,1), ...)."""
    import clifford

    if key == "euclidean":
        layout, _ = clifford.Cl(3, firstIdx=0)
    elif key == "projective":
        layout, _ = clifford.Cl(3, 0, 1, firstIdx=0)
    elif key == "conformal":
        layout, _ = clifford.Cl(4, 1, firstIdx=0)
    else:
        layout, _ = clifford.Cl(sig=list(SIGNATURES[key]), firstIdx=0)
    return layout


def random_mv(alg: CliffordAlgebra, *shape, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, alg.dim, generator=g, dtype=dtype)
