"""Registry of algebra backends: ``get_algebra("cga")``, ``register_algebra(name, factory)``."""

from __future__ import annotations

from typing import Callable

from .clifford_algebra import CliffordAlgebra
from .conformal import ConformalAlgebra
from .euclidean import EuclideanAlgebra
from .projective import DistanceProjectiveAlgebra, ProjectiveAlgebra

_FACTORIES: dict[str, Callable[..., CliffordAlgebra]] = {
    "euclidean": EuclideanAlgebra,
    "projective": ProjectiveAlgebra,
    "projective-distance": DistanceProjectiveAlgebra,
    "conformal": ConformalAlgebra,
}
_ALIASES: dict[str, str] = {"ega": "euclidean", "pga": "projective", "ipga": "projective-distance",
                            "cga": "conformal"}
_INSTANCES: dict[tuple, CliffordAlgebra] = {}


def available_algebras() -> list[str]:
    """Registered names (aliases excluded; see :func:`algebra_aliases`)."""
    return sorted(_FACTORIES)


def algebra_aliases() -> dict[str, str]:
    return dict(_ALIASES)


def canonical_name(name: str) -> str:
    """Resolve an alias; raise a ``ValueError`` listing the valid names for an unknown one."""
    if not isinstance(name, str):
        raise TypeError(f"algebra name must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _FACTORIES:
        aliases = ", ".join(f"{a} -> {n}" for a, n in sorted(_ALIASES.items()))
        raise ValueError(f"unknown algebra {name!r}; valid names: {available_algebras()} (aliases: {aliases})")
    return key


def get_algebra(name: str | CliffordAlgebra, **options) -> CliffordAlgebra:
    """The algebra registered under ``name`` (or an alias), built once per option set and cached.

    ``options`` are passed to the factory, e.g. ``get_algebra("conformal", group="Pin(4,1)")``.
    An algebra object is returned unchanged, so APIs can accept either.
    """
    if isinstance(name, CliffordAlgebra):
        if options:
            raise ValueError("options can only be given together with an algebra name")
        return name
    key = (canonical_name(name), tuple(sorted(options.items())))
    if key not in _INSTANCES:
        _INSTANCES[key] = _FACTORIES[key[0]](**options)
    return _INSTANCES[key]


def register_algebra(name: str, factory: Callable[..., CliffordAlgebra], aliases=(), overwrite: bool = False):
    """Register ``factory(**options) -> CliffordAlgebra`` under ``name`` (and ``aliases``).

    Example: ``register_algebra("spacetime", lambda: CliffordAlgebra((1, -1, -1, -1), "spacetime"))``.
    """
    key = name.strip().lower()
    taken = [k for k in (key, *aliases) if (k in _FACTORIES or k in _ALIASES)]
    if taken and not overwrite:
        raise ValueError(f"algebra name(s) {taken} already registered; pass overwrite=True to replace")
    if not callable(factory):
        raise TypeError("factory must be callable and return a CliffordAlgebra")
    _FACTORIES[key] = factory
    for alias in aliases:
        _ALIASES[alias.strip().lower()] = key
    for cached in [k for k in _INSTANCES if k[0] == key]:
        del _INSTANCES[cached]
