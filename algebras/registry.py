"""Registry of algebra backends: the one list every part of the project reads.

Three ways in, all ending in the same table:

* the built-in backends below;
* ``register_algebra(name, factory)`` at run time;
* installed plug-ins: a package declares an entry point in the group ``gatr.algebras``
  (``[project.entry-points."gatr.algebras"] spacetime = "my_pkg.algebras:spacetime"``), loaded on
  first use of the registry;
* an importable factory named ``"module:attribute"`` wherever an algebra name is accepted
  (``--model.algebra my_pkg.algebras:spacetime``); it is registered under that string once it has
  built an algebra.

A factory is a callable ``(**options) -> NetworkAlgebra`` (a ``CliffordAlgebra`` or any object of the contract; a class works). Only working algebras are
listed: a plug-in that cannot be loaded, is not callable, or fails to build its default algebra is
dropped from :func:`available_algebras`, and its errors name the entry point and its value.
"""

from __future__ import annotations

import importlib
import re
import warnings
from importlib.metadata import entry_points
from typing import Callable

from .clifford_algebra import CliffordAlgebra
from .conformal import ConformalAlgebra
from .contract import NetworkAlgebra, missing_members
from .euclidean import EuclideanAlgebra
from .projective import DistanceProjectiveAlgebra, ProjectiveAlgebra

#: Entry-point group through which installed packages register algebras.
ENTRY_POINT_GROUP = "gatr.algebras"
#: ``"package.module:attribute"``: an importable factory.
FACTORY_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")

_FACTORIES: dict[str, Callable[..., CliffordAlgebra]] = {
    "euclidean": EuclideanAlgebra,
    "projective": ProjectiveAlgebra,
    "projective-distance": DistanceProjectiveAlgebra,
    "conformal": ConformalAlgebra,
}
_ALIASES: dict[str, str] = {"ega": "euclidean", "pga": "projective", "ipga": "projective-distance",
                            "cga": "conformal"}
_INSTANCES: dict[tuple, CliffordAlgebra] = {}
_PLUGINS_LOADED = False


class _Plugin:
    """The factory of an installed plug-in (an entry point), named in its errors; with ``error``: a broken one,
    kept out of :func:`available_algebras` and refused with that error."""

    def __init__(self, label: str, factory: Callable[..., CliffordAlgebra] | None = None, error: str | None = None):
        self.label, self.factory, self.error = label, factory, error

    def __call__(self, **options) -> CliffordAlgebra:
        return self.factory(**options)


def _load_plugins() -> None:
    """Register the entry points of group ``gatr.algebras`` (once; a broken plug-in only warns)."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        key = ep.name.strip().lower()
        if key in _FACTORIES or key in _ALIASES:
            continue  # a name registered in code wins (and an editable + regular install is not a clash)
        label = f"algebra plug-in {ep.name!r} ({ep.value})"
        try:
            factory = ep.load()
            if not callable(factory):
                raise TypeError(f"it is not callable (got {type(factory).__name__})")
            _FACTORIES[key] = _Plugin(label, factory)
        except Exception as err:  # noqa: BLE001 - one broken plug-in must not break the registry
            _FACTORIES[key] = _Plugin(label, error=f"failed to load: {err}")
            warnings.warn(f"{label} failed to load: {err}", stacklevel=2)


def _is_broken(factory) -> bool:
    return isinstance(factory, _Plugin) and factory.error is not None


def import_factory(path: str) -> Callable[..., CliffordAlgebra]:
    """Import the factory named ``"module:attribute"`` (the attribute may be dotted: ``"m:Cls.build"``).

    Parameters
    ----------
    path : str
        ``"package.module:attribute"``.

    Returns
    -------
    callable
        The object at that path.

    Raises
    ------
    ValueError
        Naming what could not be imported: the module, the attribute, or a non-callable object.
    """
    module_name, _, attribute = path.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"algebra factory {path!r}: cannot import module {module_name!r} ({err})") from None
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"algebra factory {path!r}: module {module_name!r} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"algebra factory {path!r} is not callable (got {type(obj).__name__})")
    return obj


def available_algebras() -> list[str]:
    """Registered names, working plug-ins included (aliases and broken plug-ins excluded; see
    :func:`algebra_aliases`)."""
    _load_plugins()
    return sorted(name for name, factory in _FACTORIES.items() if not _is_broken(factory))


def algebra_aliases() -> dict[str, str]:
    """``{alias: registered name}``."""
    _load_plugins()
    return dict(_ALIASES)


def canonical_name(name: str) -> str:
    """The registered name that ``name`` stands for.

    Surrounding blanks are ignored. Names are matched case-insensitively and aliases are resolved
    (``"PGA"`` -> ``"projective"``); a ``"module:attribute"`` path is kept as written, imported
    (:func:`import_factory`) and registered under that string on first use. Installed plug-ins
    (entry-point group ``gatr.algebras``) are loaded first.

    Parameters
    ----------
    name : str
        A registered name, an alias, or an importable factory ``"module:attribute"``.

    Returns
    -------
    str
        The key of the factory in the registry.

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        For an unknown name (listing the valid names and aliases), a broken plug-in (naming its entry
        point) or a factory path that cannot be imported.
    """
    if not isinstance(name, str):
        raise TypeError(f"algebra name must be a string, got {type(name).__name__}")
    _load_plugins()
    if FACTORY_PATH.fullmatch(name.strip()):
        path = name.strip()
        if path not in _FACTORIES:
            import_factory(path)  # errors now; registered once it has built an algebra (get_algebra)
        return path
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if _is_broken(_FACTORIES.get(key)):
        raise ValueError(f"{_FACTORIES[key].label} is broken: {_FACTORIES[key].error}")
    if key not in _FACTORIES:
        aliases = ", ".join(f"{a} -> {n}" for a, n in sorted(_ALIASES.items()))
        raise ValueError(f"unknown algebra {name!r}; valid names: {available_algebras()} (aliases: {aliases}), "
                         "or an importable factory 'module:attribute'")
    return key


def get_algebra(name: str | CliffordAlgebra, **options) -> CliffordAlgebra:
    """The algebra registered under ``name`` (an alias, or a ``"module:attribute"`` factory), built once
    per option set and cached.

    ``options`` are passed to the factory, e.g. ``get_algebra("conformal", group="Pin(4,1)")``.
    An algebra object is returned unchanged, so APIs can accept either.

    Parameters
    ----------
    name : str or CliffordAlgebra
        A name as :func:`canonical_name` accepts, or an algebra object.
    **options
        Keyword arguments of the factory (hashable: they are part of the cache key).

    Returns
    -------
    CliffordAlgebra
        The same object for every call with the same name and options.

    Raises
    ------
    ValueError
        For an unknown name, or options given together with an algebra object.
    TypeError
        If the factory does not return a :class:`~algebras.CliffordAlgebra`.
    ValueError, TypeError
        If the factory fails (naming the algebra, factory path or plug-in).
    """
    if not isinstance(name, str) and isinstance(name, NetworkAlgebra):  # an algebra object (any that
        if options:                                                    # satisfies the network's contract)
            raise ValueError("options can only be given together with an algebra name")
        return name
    key = (canonical_name(name), tuple(sorted(options.items())))
    if key not in _INSTANCES:
        _INSTANCES[key] = _build(key[0], options)
    return _INSTANCES[key]


def algebra_spec(algebra) -> tuple[str, dict] | None:
    """The name and options :func:`get_algebra` built ``algebra`` from: ``get_algebra(name, **options)``
    rebuilds it, in any process where ``name`` resolves (built-ins, plug-ins, ``"module:attribute"`` factories).

    Parameters
    ----------
    algebra : CliffordAlgebra
        An algebra object.

    Returns
    -------
    tuple of (str, dict), or None
        ``(canonical name, options)``; None for an algebra the registry did not build (constructed directly).
    """
    for (name, options), instance in _INSTANCES.items():
        if instance is algebra:
            return name, dict(options)
    return None


def _build(name: str, options: dict) -> CliffordAlgebra:
    """``factory(**options)`` of the canonical ``name``, checked; a factory path is registered once it works,
    and a plug-in that cannot build its default algebra is marked broken (so it is no longer listed)."""
    factory = _FACTORIES.get(name) or import_factory(name)
    label = factory.label if isinstance(factory, _Plugin) else f"algebra {name!r}"
    if options:
        label += f" with options {options}"
    try:
        algebra = factory(**options)
    except (TypeError, ValueError) as err:
        _mark_broken(name, factory, options, str(err))
        raise (TypeError if isinstance(err, TypeError) else ValueError)(f"{label} failed: {err}") from err
    if not isinstance(algebra, NetworkAlgebra):
        _mark_broken(name, factory, options, f"it returned {type(algebra).__name__}")
        missing = missing_members(algebra, NetworkAlgebra)
        raise TypeError(f"{label} returned {type(algebra).__name__}, not an algebra the network can use "
                        f"(a NetworkAlgebra such as CliffordAlgebra); it lacks {', '.join(missing)}")
    _FACTORIES.setdefault(name, factory)
    return algebra


def _mark_broken(name: str, factory, options: dict, error: str) -> None:
    """Drop a plug-in from the listing when its default algebra cannot be built (with options it may be the
    options that are wrong)."""
    if isinstance(factory, _Plugin) and not options:
        _FACTORIES[name] = _Plugin(factory.label, error=error)


def register_algebra(name: str, factory: Callable[..., CliffordAlgebra], aliases=(), overwrite: bool = False):
    """Register ``factory(**options) -> CliffordAlgebra`` under ``name`` (and ``aliases``), at run time.

    Example: ``register_algebra("spacetime", lambda: CliffordAlgebra((1, -1, -1, -1), "spacetime"))``.
    The name is then accepted wherever an algebra name is (``get_algebra``, ``GATr``, configs read in
    this process). Names and aliases are stored lower-case; algebras cached under a replaced name
    are dropped.

    Parameters
    ----------
    name : str
        The registry name.
    factory : callable
        ``(**options) -> CliffordAlgebra`` (a class works).
    aliases : iterable of str
        Further names for the same factory.
    overwrite : bool
        Replace names or aliases that are already registered instead of raising.

    Returns
    -------
    None

    Raises
    ------
    ValueError
        If ``name`` or an alias is taken and ``overwrite`` is False.
    TypeError
        If ``factory`` is not callable.
    """
    _load_plugins()
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
