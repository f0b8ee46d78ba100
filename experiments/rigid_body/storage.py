"""On-disk format of rigid-body datasets: ``.npz`` shards plus ``manifest.json``.

A dataset directory holds ``manifest.json`` and shards ``shard_00000.npz``, ...
Shard ``k`` holds trajectories ``[k * shard_size, min((k + 1) * shard_size, n))``.
Every shard contains, with ``B`` trajectories, ``T`` frames and ``N`` bodies:

=====================  ============  =======  =====================================
key                    shape         dtype    meaning
=====================  ============  =======  =====================================
``positions``          (B,T,N,3)     float32  centre of mass, world frame [m]
``orientations``       (B,T,N,4)     float32  body-to-world quaternion (w, x, y, z)
``velocity``           (B,T,N,3)     float32  linear velocity, world frame [m/s]
``angular_velocity``   (B,T,N,3)     float32  angular velocity, world frame [rad/s]
``contacts``           (B,T)         int32    contacts (see ``simulate_scene``)
``shape``              (B,N)         int8     0 box, 1 sphere, 2 capsule, 3 ellipsoid
``sizes``              (B,N,3)       float32  semi-axis extents along body axes [m]
``mass``               (B,N)         float32  [kg]
``inertia``            (B,N,3,3)     float32  body-frame inertia about the COM
``rejected``           (B,)          int32    contact-free scenes discarded first
``index``              (B,)          int64    global trajectory index
``__meta__``           ()            str      JSON metadata (config, seed, version)
=====================  ============  =======  =====================================

All writes are atomic (temporary file in the same directory + ``os.replace``).
"""

from __future__ import annotations

import json
import os
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = [
    "ARRAY_KEYS",
    "ShardError",
    "shard_name",
    "write_shard",
    "load_shard",
    "write_json_atomic",
    "read_manifest",
    "load_arrays",
]

ARRAY_KEYS = (
    "positions", "orientations", "velocity", "angular_velocity", "contacts",
    "shape", "sizes", "mass", "inertia", "rejected", "index",
)
_DTYPES = {"contacts": np.int32, "shape": np.int8, "rejected": np.int32, "index": np.int64}
MANIFEST = "manifest.json"


class ShardError(RuntimeError):
    """A shard or manifest file is missing, corrupted, truncated or inconsistent."""


def shard_name(k: int) -> str:
    """File name of shard ``k``."""
    return f"shard_{k:05d}.npz"


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextmanager
def _atomic_open(path: str | os.PathLike, mode: str):
    """Open a temporary file beside ``path``; on success fsync it and ``os.replace`` it onto
    ``path``, so readers see the old file or the whole new one, never a partial write."""
    path = Path(path)
    tmp = _tmp_path(path)
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_shard(path: str | os.PathLike, arrays: dict, meta: dict) -> None:
    """Atomically write a shard.

    Parameters
    ----------
    path : path of the ``.npz`` file
    arrays : dict with all :data:`ARRAY_KEYS`, leading dimension B
    meta : JSON-serialisable metadata
    """
    path = Path(path)
    out = {k: np.asarray(arrays[k], dtype=_DTYPES.get(k, np.float32)) for k in ARRAY_KEYS}
    out["__meta__"] = np.array(json.dumps(meta, sort_keys=True))
    with _atomic_open(path, "wb") as f:
        np.savez(f, **out)


def load_shard(path: str | os.PathLike) -> tuple[dict, dict]:
    """Load a shard, raising :class:`ShardError` naming the file on any problem.

    Returns
    -------
    (arrays, meta) : dict of ndarrays (:data:`ARRAY_KEYS`), metadata dict
    """
    path = Path(path)
    if not path.is_file():
        raise ShardError(f"shard file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ARRAY_KEYS + ("__meta__",) if k not in z.files]
            if missing:
                raise ShardError(f"shard file {path} lacks arrays {missing}")
            arrays = {k: z[k] for k in ARRAY_KEYS}
            meta = json.loads(str(z["__meta__"]))
    except ShardError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, json.JSONDecodeError) as e:
        raise ShardError(f"shard file {path} is corrupted or truncated: {e}") from e
    b = len(arrays["index"])
    bad = [k for k in ARRAY_KEYS if arrays[k].shape[:1] != (b,)]
    if bad:
        raise ShardError(f"shard file {path} has inconsistent array lengths for {bad}")
    return arrays, meta


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    """Atomically write ``obj`` as JSON."""
    with _atomic_open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)


def read_manifest(root: str | os.PathLike) -> dict | None:
    """Read ``root/manifest.json``; ``None`` if absent, :class:`ShardError` if unreadable."""
    path = Path(root) / MANIFEST
    if not path.exists():
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ShardError(f"manifest file {path} is corrupted: {e}") from e


def load_arrays(root: str | os.PathLike) -> tuple[dict, dict]:
    """Load and concatenate all shards of a complete dataset directory.

    Returns
    -------
    (arrays, manifest) : arrays as in the shard table with B = all trajectories
        (ordered by global index), and the manifest dict.

    Raises
    ------
    ShardError
        If the manifest is missing or marks the dataset incomplete, or a shard
        is missing/corrupted.
    """
    root = Path(root)
    manifest = read_manifest(root)
    if manifest is None:
        raise ShardError(f"no {MANIFEST} in {root}; generate the dataset first")
    if not manifest.get("complete", False):
        raise ShardError(f"dataset in {root} is incomplete; rerun the generation command to resume")
    parts = [load_shard(root / s["file"])[0] for s in manifest["shards"]]
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in ARRAY_KEYS}
    n = manifest["config"]["num_trajectories"]
    if len(arrays["index"]) != n or not np.array_equal(arrays["index"], np.arange(n)):
        raise ShardError(f"shards in {root} do not hold trajectories 0..{n - 1}")
    return arrays, manifest
