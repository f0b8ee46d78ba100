"""Parallel, deterministic, resumable generation of rigid-body datasets.

Command line::

    python -m experiments.rigid_body.generate --num-trajectories 1000 --bodies 4 \\
        --seed 0 --out DIR [--workers 2] [--shard-size 500] [--frames 51] [--frame-stride 20]

Trajectory ``i`` of a run with seed ``s`` is simulated from its own generator
``np.random.default_rng([s, i])`` (rejected contact-free scenes consume draws of
the same generator), so the arrays do not depend on the number of workers or on
how the work is chunked.  Rerunning the same command skips complete shards
(corrupted ones are regenerated with a warning); rerunning with a different
configuration into the same directory raises :class:`ConfigMismatchError`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from concurrent.futures import as_completed
from pathlib import Path

import numpy as np

from experiments.cli import examples, prog
from experiments.workers import worker_pool

from .simulate import NoContactError, SimConfig, UnstableSimulationError, simulate_trajectory
from .storage import (
    ARRAY_KEYS, MANIFEST, ShardError, load_shard, read_manifest, shard_name,
    write_json_atomic, write_shard,
)

__all__ = ["ConfigMismatchError", "generate_dataset", "generation_command", "simulate_range", "package_version",
           "main"]

FORMAT_VERSION = 1


class ConfigMismatchError(ValueError):
    """The output directory holds data generated with a different configuration."""


def package_version() -> str:
    """Installed version of ``gatr-algebras`` (``"0+unknown"`` if not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gatr-algebras")
    except (PackageNotFoundError, ValueError):  # not installed, or broken metadata
        return "0+unknown"


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _check_config(found: dict, expected: dict, where: Path) -> None:
    a, b = _flatten(found), _flatten(expected)
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if keys:
        detail = ", ".join(f"{k}: existing={a.get(k)!r} requested={b.get(k)!r}" for k in keys)
        raise ConfigMismatchError(
            f"{where} was generated with a different configuration (mismatched keys: {detail}); "
            "use another output directory or delete the old one"
        )


def simulate_range(start: int, stop: int, seed: int, sim: dict) -> dict:
    """Simulate trajectories ``start .. stop-1`` and stack them.

    Parameters
    ----------
    start, stop : global trajectory indices
    seed : run seed
    sim : ``SimConfig.to_dict()``

    Returns
    -------
    dict of ndarrays with the shard keys (:data:`storage.ARRAY_KEYS`), leading dim ``stop-start``
    """
    config = SimConfig.from_dict(sim)
    trajs = []
    for i in range(start, stop):
        traj, rejected = simulate_trajectory(np.random.default_rng([seed, i]), config)
        traj["rejected"] = rejected
        traj["index"] = i
        trajs.append(traj)
    return {k: np.stack([np.asarray(t[k]) for t in trajs]) for k in ARRAY_KEYS}


def _shard_ok(path: Path, config: dict, start: int, stop: int) -> bool:
    """True if ``path`` is a valid complete shard for ``config``; warn and False if corrupt."""
    if not path.exists():
        return False
    try:
        arrays, meta = load_shard(path)
    except ShardError as e:
        warnings.warn(f"{e}; regenerating it", RuntimeWarning, stacklevel=3)
        return False
    _check_config(meta.get("config", {}), config, path)
    if not np.array_equal(arrays["index"], np.arange(start, stop)):
        warnings.warn(f"shard file {path} holds unexpected trajectories; regenerating it",
                      RuntimeWarning, stacklevel=3)
        return False
    return True


def generate_dataset(
    out_dir: str | os.PathLike,
    num_trajectories: int,
    bodies: int = 4,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    shard_size: int = 500,
    **sim_kwargs,
) -> Path:
    """Generate (or resume generating) a dataset directory.

    Parameters
    ----------
    out_dir : output directory (created if needed)
    num_trajectories : number of accepted trajectories (>= 1)
    bodies : bodies per scene, 2..16
    seed : run seed
    workers : processes (default: ``os.cpu_count()``); ``1`` runs in-process
    progress : show a tqdm progress bar
    shard_size : trajectories per shard (>= 1)
    **sim_kwargs : further :class:`SimConfig` fields (``frames``, ``frame_stride``, ...)

    Returns
    -------
    Path of the dataset directory (holding ``manifest.json`` and the shards).
    """
    if num_trajectories < 1 or shard_size < 1:
        raise ValueError("num_trajectories and shard_size must be positive")
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise ValueError("workers must be positive")
    sim = SimConfig(bodies=bodies, **sim_kwargs)
    config = {"format": FORMAT_VERSION, "num_trajectories": int(num_trajectories), "seed": int(seed),
              "shard_size": int(shard_size), "sim": sim.to_dict()}
    out = Path(out_dir)
    base = _start_manifest(out, config)
    num_shards = math.ceil(num_trajectories / shard_size)
    bounds = [(k * shard_size, min((k + 1) * shard_size, num_trajectories)) for k in range(num_shards)]
    todo = [k for k, (a, b) in enumerate(bounds) if not _shard_ok(out / shard_name(k), config, a, b)]
    n_todo = sum(bounds[k][1] - bounds[k][0] for k in todo)
    t0 = time.perf_counter()
    _simulate_shards(out, base, bounds, todo, workers, progress)
    _finish_manifest(out, base, bounds, sim, {"simulated": n_todo, "seconds": round(time.perf_counter() - t0, 3),
                                              "workers": workers})
    return out


def _start_manifest(out: Path, config: dict) -> dict:
    """Create ``out`` and mark its dataset incomplete until every shard is written; refuse a directory
    generated with another ``config``. Returns the manifest's common part (config, seed, version)."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(out)
    if manifest is not None:
        _check_config(manifest.get("config", {}), config, out / MANIFEST)
    base = {"config": config, "seed": config["seed"], "version": package_version()}
    if manifest is None or manifest.get("complete") is not True:
        write_json_atomic(out / MANIFEST, {**base, "complete": False})
    return base


def _simulate_shards(out: Path, base: dict, bounds: list[tuple[int, int]], todo: list[int], workers: int,
                     progress: bool) -> None:
    """Simulate the trajectories of shards ``todo`` (``bounds[k]``: their global indices) in chunks, in-process
    or on ``workers`` processes, writing each shard as soon as its chunks are in."""
    config, seed = base["config"], base["seed"]
    n_todo = sum(bounds[k][1] - bounds[k][0] for k in todo)
    # Chunks small enough for load balancing and a smooth progress bar.
    chunk = max(1, min(64, math.ceil(n_todo / (8 * workers)))) if n_todo else 1
    tasks = [(k, a, min(a + chunk, bounds[k][1])) for k in todo for a in range(bounds[k][0], bounds[k][1], chunk)]
    pending = {k: {} for k in todo}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        total = config["num_trajectories"]
        bar = tqdm(total=total, initial=total - n_todo, unit="traj", desc="rigid-body trajectories", smoothing=0.1)

    def collect(k, a, result):
        pending[k][a] = result
        if bar is not None:
            bar.update(len(result["index"]))
        if sum(len(r["index"]) for r in pending[k].values()) == bounds[k][1] - bounds[k][0]:
            parts = [pending[k][s] for s in sorted(pending[k])]
            arrays = {key: np.concatenate([p[key] for p in parts]) for key in ARRAY_KEYS}
            meta = {**base, "shard": k, "start": bounds[k][0], "stop": bounds[k][1],
                    "rejected": int(arrays["rejected"].sum())}
            write_shard(out / shard_name(k), arrays, meta)
            del pending[k]

    try:
        if workers == 1 or len(tasks) <= 1:
            for k, a, b in tasks:
                collect(k, a, simulate_range(a, b, seed, config["sim"]))
        else:
            _simulate_on_workers(tasks, seed, config["sim"], workers, collect)
    finally:
        if bar is not None:
            bar.close()


def _simulate_on_workers(tasks: list[tuple[int, int, int]], seed: int, sim: dict, workers: int, collect) -> None:
    """``collect(shard, start, arrays)`` for every task ``(shard, start, stop)``, simulated on ``workers``
    processes (spawned: safe with torch and threads loaded; they exit if this process is killed)."""
    pool = worker_pool(workers)
    try:
        futures = {pool.submit(simulate_range, a, b, seed, sim): (k, a) for k, a, b in tasks}
        for fut in as_completed(futures):
            collect(*futures[fut], fut.result())
    except BaseException:  # e.g. KeyboardInterrupt: drop queued work, keep written shards
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _finish_manifest(out: Path, base: dict, bounds: list[tuple[int, int]], sim: SimConfig, last_run: dict) -> None:
    """Mark the dataset in ``out`` complete: its shards, counts, frame spacing and this run's work."""
    shards, rejected = [], 0
    for k, (a, b) in enumerate(bounds):
        _, meta = load_shard(out / shard_name(k))
        shards.append({"file": shard_name(k), "start": a, "stop": b, "rejected": meta["rejected"]})
        rejected += meta["rejected"]
    write_json_atomic(out / MANIFEST, {
        **base,
        "complete": True,
        "shards": shards,
        "counts": {"trajectories": int(base["config"]["num_trajectories"]), "rejected": int(rejected),
                   "bodies": int(sim.bodies), "frames": sim.frames},
        "frame_dt": sim.timestep * sim.frame_stride,
        "last_run": last_run,
    })


#: ``SimConfig`` fields with a command-line flag (``frame_stride`` -> ``--frame-stride``)
_SIM_FLAGS = ("frames", "frame_stride", "timestep")


def generation_command(out_dir: str | os.PathLike, config: dict) -> str:
    """The one-line command that generates a dataset with a manifest's ``config`` into ``out_dir``; rerunning
    it resumes an interrupted generation and regenerates missing or corrupted shards.

    Parameters
    ----------
    out_dir : path of the dataset directory
    config : the ``"config"`` entry of its manifest

    Returns
    -------
    str
        ``python -m experiments.rigid_body.generate ...``, or, where the simulation settings go beyond the
        command line's flags, ``python -c "...generate_dataset(...)"`` with them.
    """
    sim, default, n = config["sim"], SimConfig().to_dict(), config["num_trajectories"]
    options = {"bodies": sim["bodies"], "seed": config["seed"], "shard_size": config["shard_size"],
               **{k: sim[k] for k in _SIM_FLAGS if sim[k] != default[k]}}
    other = {k: v for k, v in sim.items() if k not in ("bodies", *_SIM_FLAGS) and v != default.get(k)}
    if other:
        keywords = ", ".join(f"{k}={v!r}" for k, v in {**options, **other}.items())
        return ('python -c "from experiments.rigid_body.generate import generate_dataset; '
                f'generate_dataset({str(out_dir)!r}, {n}, {keywords})"')
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in options.items())
    return f"python -m experiments.rigid_body.generate --num-trajectories {n} {flags} --out {out_dir}"


def _int_at_least(low: int, kind: str):
    """argparse type: an integer >= ``low`` ("positive", "non-negative" in the message)."""
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind} integer, got {s!r}")
        if v < low:
            raise argparse.ArgumentTypeError(f"expected a {kind} integer, got {v}")
        return v

    return parse


_positive_int = _int_at_least(1, "positive")
_non_negative_int = _int_at_least(0, "non-negative")


def _bodies(s: str) -> int:
    v = _positive_int(s)
    if not 2 <= v <= 16:
        raise argparse.ArgumentTypeError(f"number of bodies must be between 2 and 16, got {v}")
    return v


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}")
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {v}")
    return v


def build_parser() -> argparse.ArgumentParser:
    d = SimConfig()
    program = prog("experiments.rigid_body.generate", "gatr-generate")
    p = argparse.ArgumentParser(prog=program, description="Generate rigid-body collision trajectories with MuJoCo.",
                                epilog=examples(program, "--num-trajectories 10000 --bodies 4 --seed 0 --out data/rb10k",
                                                "--num-trajectories 2000 --frames 16 --out data/quick --workers 2"),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-trajectories", type=_positive_int, required=True)
    p.add_argument("--bodies", type=_bodies, default=4, help="bodies per scene (2..16)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="run seed (>= 0)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--workers", type=_positive_int, default=os.cpu_count() or 1)
    p.add_argument("--shard-size", type=_positive_int, default=500)
    p.add_argument("--frames", type=_positive_int, default=d.frames, help="recorded frames per trajectory (>= 2)")
    p.add_argument("--frame-stride", type=_positive_int, default=d.frame_stride, help="simulator steps per frame")
    p.add_argument("--timestep", type=_positive_float, default=d.timestep, help="simulator step [s]")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.frames < 2:
        parser.error("--frames must be at least 2")
    try:
        out = generate_dataset(args.out, args.num_trajectories, bodies=args.bodies, seed=args.seed,
                               workers=args.workers, progress=not args.no_progress,
                               shard_size=args.shard_size, frames=args.frames,
                               frame_stride=args.frame_stride, timestep=args.timestep)
    except (ConfigMismatchError, ShardError, NoContactError, UnstableSimulationError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # --out is a file, under a file, not writable, ...
        print(f"error: cannot write the dataset to --out {args.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    m = read_manifest(out)
    run = m["last_run"]
    if run["simulated"] == 0:
        print(f"{out} is already complete ({m['counts']['trajectories']} trajectories); nothing to do")
        return 0
    rate = run["simulated"] / max(run["seconds"], 1e-9)
    print(f"wrote {out}: {m['counts']['trajectories']} trajectories ({m['counts']['rejected']} rejected "
          f"without contact); simulated {run['simulated']} in {run['seconds']:.1f} s "
          f"({rate:.1f} traj/s, {run['workers']} workers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
