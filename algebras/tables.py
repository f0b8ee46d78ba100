"""Cayley tables of a Clifford algebra, derived from its signature with the ``clifford`` package.

Importing ``clifford`` and JIT-compiling its numba kernels costs seconds, so the tables are cached:
the built-in signatures are shipped as ``algebras/data/tables_<sig>.npz`` (regenerate them with
``python -m algebras.tables``), other signatures are derived once and stored in the user cache
directory (``$GATR_ALGEBRA_CACHE`` or ``~/.cache/gatr-algebras``). ``tests/algebras`` compares the
cached tables against a fresh ``clifford`` derivation.

Table convention: ``table[i, j, k]`` is the coefficient of blade ``k`` in ``e_i * e_j``, so a product
is ``z_k = sum_ij x_i y_j table[i, j, k]``.
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

#: Names of the bilinear tables stored per signature.
PRODUCT_NAMES = ("geometric", "outer", "inner", "left_contraction")

SHIPPED_DIR = Path(__file__).parent / "data"
#: Signatures whose tables ship with the package (euclidean, projective, conformal).
SHIPPED_SIGNATURES = ((1, 1, 1), (0, 1, 1, 1), (1, 1, 1, 1, -1))


def signature_key(signature) -> str:
    """A file-name-safe key: one character per basis vector, ``+``→p, ``-``→m, ``0``→z.

    Parameters
    ----------
    signature : sequence of {1, -1, 0}
        Squares of the basis vectors.

    Returns
    -------
    str
        E.g. ``"zppp"`` for the projective signature ``(0, 1, 1, 1)``.
    """
    return "".join({1: "p", -1: "m", 0: "z"}[int(s)] for s in signature)


def user_cache_dir() -> Path:
    """Directory of derived tables and structures: ``$GATR_ALGEBRA_CACHE``, else ``~/.cache/gatr-algebras``.

    Returns
    -------
    Path
        The directory (not created here; it is created when a file is first saved to it).
    """
    return Path(os.environ.get("GATR_ALGEBRA_CACHE", Path.home() / ".cache" / "gatr-algebras"))


def clifford_layout(signature):
    """The ``clifford`` layout whose blade order matches ours (basis vectors e_0 ... e_{n-1}).

    Parameters
    ----------
    signature : sequence of {1, -1, 0}
        Squares of the basis vectors.

    Returns
    -------
    clifford.Layout
        ``clifford.Cl(sig=signature, firstIdx=0)``'s layout (imports ``clifford``: slow).
    """
    import clifford

    layout, _ = clifford.Cl(sig=list(int(s) for s in signature), firstIdx=0)
    return layout


def derive_tables(signature) -> dict[str, np.ndarray]:
    """Derive blades and product tables from ``clifford`` (slow: imports and JITs clifford).

    Parameters
    ----------
    signature : sequence of {1, -1, 0}
        Squares of the basis vectors.

    Returns
    -------
    dict of str to ndarray
        The tables of :data:`PRODUCT_NAMES`, each ``(dim, dim, dim)`` float64 indexed
        ``[left, right, result]``; ``blades (dim, n)`` int64, each row a blade's basis indices padded
        with -1; ``signature (n,)`` int64.
    """
    layout = clifford_layout(signature)
    # clifford's tables are indexed [left, result, right]; ours are [left, right, result].
    tables = {
        name: np.transpose(np.asarray(getattr(layout, attr).todense(), dtype=np.float64), (0, 2, 1))
        for name, attr in zip(PRODUCT_NAMES, ("gmt", "omt", "imt", "lcmt"))
    }
    dim = len(layout.bladeTupList)
    # Blades padded with -1 so that they fit one integer array.
    blades = np.full((dim, len(signature)), -1, dtype=np.int64)
    for i, blade in enumerate(layout.bladeTupList):
        blades[i, : len(blade)] = blade
    tables["blades"] = blades
    tables["signature"] = np.asarray(signature, dtype=np.int64)
    return tables


def _atomic_save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache is meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load(path: Path, signature) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError):
        return None  # missing or corrupted: derive again
    if tuple(arrays.get("signature", ())) != tuple(signature):
        return None
    return arrays


@lru_cache(maxsize=None)
def load_tables(signature: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Tables for ``signature`` from the shipped data, the user cache, or a fresh derivation.

    A fresh derivation is saved to :func:`user_cache_dir` (silently skipped where that is read-only).
    Memoised per signature.

    Parameters
    ----------
    signature : tuple of int
        Squares of the basis vectors (a tuple: the result is memoised).

    Returns
    -------
    dict of str to ndarray
        As :func:`derive_tables` returns them.
    """
    key = signature_key(signature)
    for directory in (SHIPPED_DIR, user_cache_dir()):
        arrays = _load(directory / f"tables_{key}.npz", signature)
        if arrays is not None:
            return arrays
    arrays = derive_tables(signature)
    try:
        _atomic_save(user_cache_dir() / f"tables_{key}.npz", arrays)
    except OSError:
        pass  # a read-only home is no reason to fail; we just derive again next time
    return arrays


def cached_arrays(filename: str, derive, is_valid=None) -> dict[str, np.ndarray]:
    """Arrays from ``SHIPPED_DIR/filename``, else the user cache, else ``derive()`` (then cached).

    ``is_valid(arrays)`` rejects stale or foreign files, which are then derived again. A missing or
    corrupted file is skipped; a derivation is saved atomically to :func:`user_cache_dir` (silently
    skipped where that is read-only).

    Parameters
    ----------
    filename : str
        Name of the ``.npz`` file in either directory.
    derive : callable
        ``() -> dict of str to ndarray``, called when no valid file exists.
    is_valid : callable, optional
        ``(arrays) -> bool``; None accepts any readable file.

    Returns
    -------
    dict of str to ndarray
    """
    for directory in (SHIPPED_DIR, user_cache_dir()):
        try:
            with np.load(directory / filename) as data:
                arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError, EOFError):
            continue  # missing or corrupted
        if is_valid is None or is_valid(arrays):
            return arrays
    arrays = derive()
    try:
        _atomic_save(user_cache_dir() / filename, arrays)
    except OSError:
        pass
    return arrays


def blades_from_array(blades: np.ndarray) -> tuple[tuple[int, ...], ...]:
    """Blades as tuples of basis indices from the padded array of :func:`derive_tables`.

    Parameters
    ----------
    blades : ndarray of int, shape (dim, n)
        One row per blade, its basis indices followed by -1 padding.

    Returns
    -------
    tuple of tuple of int
        E.g. ``((), (0,), (1,), ..., (0, 1, 2))``; the scalar is the empty tuple.
    """
    return tuple(tuple(int(i) for i in row if i >= 0) for row in blades)


#: Built-in (algebra, group) pairs whose derived equivariant structure ships as ``basis_*.npz``.
SHIPPED_GROUPS = (
    ("euclidean", "O(3)"), ("euclidean", "SO(3)"), ("projective", "E(3)"), ("projective", "SE(3)"),
    ("conformal", "E(3)"), ("conformal", "SE(3)"), ("conformal", "Pin(4,1)"), ("conformal", "Spin(4,1)"),
)


if __name__ == "__main__":  # regenerate the shipped tables, then the shipped group structures
    for sig in SHIPPED_SIGNATURES:
        _atomic_save(SHIPPED_DIR / f"tables_{signature_key(sig)}.npz", derive_tables(sig))
        print("wrote", SHIPPED_DIR / f"tables_{signature_key(sig)}.npz")
    load_tables.cache_clear()
    from algebras import get_algebra

    for name, group in SHIPPED_GROUPS:
        alg = get_algebra(name, group=group)
        _atomic_save(SHIPPED_DIR / alg.structure_filename, alg.derive_structure_arrays())
        print("wrote", SHIPPED_DIR / alg.structure_filename)
