"""How one job of a study executes on disk: a single run, or WSD runs sharing a trunk.

Each job takes a lock (created with its content in one step; stale when unreadable or left by a dead
process on this host), trains through the train function, and writes every run's ``result.json``
atomically as it ends (status "ok" or "failed" with the error), with the host, the CPU and the code
(git commit, package versions) that produced it. :mod:`experiments.scaling.runner` plans a study and
hands its jobs to these functions, in this process, in worker processes or in cluster jobs.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from .grid import run_id
from .results import read_json, write_json

REQUIRED_RESULT_KEYS = ("params", "train_flops", "val_loss", "test_loss", "test_e3_loss")


# ----------------------------------------------------------------------------- small utilities


def resolve(obj: str | Callable | None) -> Callable | None:
    """A callable, or one named by a dotted path ``pkg.module.attr`` (or ``pkg.module:attr``)."""
    if obj is None or callable(obj):
        return obj
    path = str(obj)
    if ":" in path:
        mod, attr = path.split(":", 1)
    else:
        mod, _, attr = path.rpartition(".")
    if not mod:
        raise ValueError(f"expected a dotted path 'package.module.function', got {path!r}")
    try:
        module = importlib.import_module(mod)
    except ImportError as e:
        raise ImportError(f"cannot import module {mod!r} for {path!r}: {e}") from e
    try:
        fn = getattr(module, attr)
    except AttributeError:
        raise ImportError(f"module {mod!r} has no attribute {attr!r} (from {path!r})") from None
    if not callable(fn):
        raise TypeError(f"{path!r} is not callable")
    return fn


def host_info() -> dict:
    """Host description recorded with each result (computed once per process)."""
    global _HOST
    if _HOST is None:
        _HOST = _host_info()
    return dict(_HOST)


_HOST: dict | None = None


def _host_info() -> dict:
    info = {"hostname": socket.gethostname(), "platform": platform.platform(),
            "python": platform.python_version(), "cpu_count": os.cpu_count(), "cpu": _cpu_model()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = bool(torch.cuda.is_available())
        if info["cuda"]:
            info["gpu"] = torch.cuda.get_device_name(0)
        info["torch_threads"] = torch.get_num_threads()
    except Exception:  # noqa: BLE001
        pass
    return info


_CODE: dict | None = None


def code_info() -> dict:
    """The code that produced a result: the git commit of this checkout (and whether it had
    uncommitted changes) and the versions of the packages that decide the numbers."""
    global _CODE
    if _CODE is None:
        from importlib.metadata import PackageNotFoundError, version

        root = Path(__file__).resolve().parents[2]
        info: dict[str, Any] = {"git_commit": None, "git_dirty": None}
        try:
            info["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                                text=True, timeout=10, check=True).stdout.strip()
            status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "algebras",
                                     "gatr", "experiments"], cwd=root, capture_output=True, text=True, timeout=10,
                                    check=True).stdout
            info["git_dirty"] = bool(status.strip())
        except (OSError, subprocess.SubprocessError):
            pass
        versions = {}
        for pkg in ("gatr-algebras", "torch", "lightning", "numpy", "scipy", "mujoco"):
            try:
                versions[pkg] = version(pkg)
            except (PackageNotFoundError, ValueError):
                versions[pkg] = None
        info["versions"] = versions
        _CODE = info
    return dict(_CODE)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _fmt_time(s: float) -> str:
    s = int(round(s))
    h, r = divmod(s, 3600)
    m, s = divmod(r, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def try_lock(lock: Path) -> dict | None:
    """Take ``lock`` and return None; if another live process holds it, return its record.

    The lock is created with its content in one step (a written temporary file hard-linked to the
    lock's name, which fails if the name exists), so a lock is never seen half-written. A lock that
    is unreadable (empty, truncated: a full disk, a crash) or left by a dead process on this host is
    stale and taken over; a holder on another host (a shared file system) is taken to be alive.
    """
    lock = Path(lock)
    me = {"host": socket.gethostname(), "pid": os.getpid()}
    tmp = lock.with_name(f".{lock.name}.{me['host']}.{me['pid']}.tmp")
    tmp.write_text(json.dumps(me))
    try:
        while True:
            try:
                os.link(tmp, lock)
                return None
            except FileExistsError:
                holder = read_json(lock)
                if not (isinstance(holder, dict) and isinstance(holder.get("pid"), int) and holder.get("host")):
                    lock.unlink(missing_ok=True)  # unreadable: no process can be waiting on it
                    continue
                if holder["host"] == me["host"] and not _pid_alive(holder["pid"]):
                    lock.unlink(missing_ok=True)  # stale lock of a dead process on this host
                    continue
                return holder
    finally:
        tmp.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- one run


def _clean_float(v: Any) -> Any:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    return f


def execute_run(spec: dict, data_dir: Path, run_dir: Path, train_fn: Callable, redo: bool = False) -> dict:
    """Train one run and return its result record (never raises for errors inside ``train_fn``).

    A per-run lock (``run_dir/.lock``) keeps concurrent sweeps on one directory (two ``run`` commands,
    array jobs on a shared file system) from training the same run twice: a run locked by a live
    process is returned with status "skipped", one finished meanwhile as it is (unless ``redo``), and
    nothing is written."""
    rid = run_id(spec)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / ".lock"
    holder = try_lock(lock)
    if holder is not None:
        return {"run_id": rid, "status": "skipped", "spec": spec, "reason": f"running in {holder}"}
    try:
        if not redo and is_done(run_dir, spec):  # finished by another process between planning and now
            return {**read_json(run_dir / "result.json"), "status": "ok", "reused": True}
        return _execute_locked(spec, rid, data_dir, run_dir, train_fn)
    finally:
        lock.unlink(missing_ok=True)


def _execute_locked(spec: dict, rid: str, data_dir: Path, run_dir: Path, train_fn: Callable) -> dict:
    (run_dir / "result.json").unlink(missing_ok=True)
    write_json(run_dir / "spec.json", {"run_id": rid, "spec": spec, "started": _now()})
    start, t0 = _now(), time.time()
    try:
        out = train_fn(dict(spec), Path(data_dir), Path(run_dir))
    except Exception as e:  # noqa: BLE001 - a failed run is recorded, never dropped
        return _write_record(run_dir, spec, start, t0, error=e)
    return _write_record(run_dir, spec, start, t0, out=out)


def _write_record(run_dir: Path, spec: dict, start: str, t0: float, out: Any = None,
                  error: BaseException | None = None) -> dict:
    """Build a run's result record from the train function's output (or its error) and write it."""
    record: dict[str, Any] = {"run_id": run_id(spec), "status": None, "spec": spec, "seed": spec.get("seed"),
                              "timestamp_start": start}
    try:
        if error is not None:
            raise error
        if not isinstance(out, dict):
            raise TypeError(f"train_fn returned {type(out).__name__}, expected a dict")
        missing = [k for k in REQUIRED_RESULT_KEYS if k not in out]
        if missing:
            raise KeyError(f"train_fn result lacks required keys {missing}; got {sorted(out)}")
        metrics = {k: v for k, v in out.items() if k not in ("run_id", "status", "spec")}
        metrics.setdefault("wall_time_s", time.time() - t0)
        metrics.setdefault("flops_per_step", None)
        for k in ("train_flops", "flops_per_step", "val_loss", "test_loss", "test_e3_loss", "wall_time_s"):
            if metrics.get(k) is not None:
                metrics[k] = _clean_float(metrics[k])
        metrics["params"] = int(metrics["params"])
        record.update(metrics)
        record["status"] = "ok"
    except Exception as e:  # noqa: BLE001 - a failed run is recorded, never dropped
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        record.update({"status": "failed", "error_type": type(e).__name__, "error_message": str(e),
                       "traceback": tb, "wall_time_s": time.time() - t0})
    record["host"] = host_info()
    record["code"] = code_info()
    record["timestamp"] = _now()
    write_json(Path(run_dir) / "result.json", record)
    return record


def branches_fn(train_fn: Callable) -> Callable | None:
    """The train function's WSD branch trainer (``train_fn.branches``), if it offers one."""
    fn = getattr(train_fn, "branches", None)
    return fn if callable(fn) else None


def trunk_id(spec: dict) -> str:
    """Directory name of the WSD trunk shared by the runs that differ from ``spec`` only in budget."""
    from experiments.training.run import branch_key

    readable = re.sub(r"[^A-Za-z0-9._+-]", "_", f"{spec['name']}_w{spec['width']}_d{spec['depth']}"
                                                 f"_n{spec['train_trajectories']}_seed{spec['seed']}")
    return f"{readable}-{hashlib.sha1(branch_key(spec).encode()).hexdigest()[:8]}"


def execute_group(specs: list[dict], data_dir: Path, out_dir: Path, train_fn: Callable, redo: bool = False) -> list[dict]:
    """Train WSD runs that differ only in their budget as one trunk with cooldown branches
    (``train_fn.branches``); each run's ``result.json`` is written as its branch finishes.

    The trunk's lock (``OUT/trunks/<id>/.lock``) plays the per-run lock's part: a group held by a
    live process is returned as "skipped"; runs finished meanwhile are kept (unless ``redo``).
    When all runs are finished the trunk's checkpoints are deleted."""
    out_dir = Path(out_dir)
    trunk_dir = out_dir / "trunks" / trunk_id(specs[0])
    trunk_dir.mkdir(parents=True, exist_ok=True)
    holder = try_lock(trunk_dir / ".lock")
    if holder is not None:
        return [{"run_id": run_id(s), "status": "skipped", "spec": s, "reason": f"running in {holder}"} for s in specs]
    records = []
    try:
        todo = []
        for spec in specs:
            rdir = out_dir / "runs" / run_id(spec)
            if not redo and is_done(rdir, spec):
                records.append({**read_json(rdir / "result.json"), "status": "ok", "reused": True})
            else:
                rdir.mkdir(parents=True, exist_ok=True)
                (rdir / "result.json").unlink(missing_ok=True)
                write_json(rdir / "spec.json", {"run_id": run_id(spec), "spec": spec, "started": _now(),
                                                "trunk": trunk_dir.name})
                todo.append(spec)
        start, t0 = _now(), time.time()
        served = set()
        try:
            rdirs = [out_dir / "runs" / run_id(s) for s in todo]
            for spec, out in branches_fn(train_fn)(todo, Path(data_dir), rdirs, trunk_dir):
                rec = _write_record(out_dir / "runs" / run_id(spec), spec, start, t0, out=out)
                records.append(rec)
                served.add(run_id(spec))
                _log(f"[scaling] {run_id(spec)} {rec['status']} (branch of {trunk_dir.name})")
                start, t0 = _now(), time.time()
        except Exception as e:  # noqa: BLE001 - the rest of the group fails with the trunk's error
            for spec in todo:
                if run_id(spec) not in served:
                    records.append(_write_record(out_dir / "runs" / run_id(spec), spec, start, t0, error=e))
        if all(r.get("status") == "ok" for r in records):
            for ckpt in trunk_dir.glob("step-*.ckpt"):
                ckpt.unlink()
        return records
    finally:
        (trunk_dir / ".lock").unlink(missing_ok=True)


def is_done(run_dir: Path, spec: dict) -> bool:
    """A run counts as finished when its result.json says status "ok" for the same spec."""
    r = read_json(run_dir / "result.json")
    return bool(r) and r.get("status") == "ok" and r.get("spec") == spec


def run_one(spec: dict, data_dir: str | Path, out_dir: str | Path, train_fn: str | Callable,
            redo: bool = False) -> dict:
    """Execute one run of a study wherever it lands: in this process, a worker process or a cluster job.

    Parameters
    ----------
    spec : dict
        The run spec (see the module docstring).
    data_dir : str or Path
        The dataset directory passed to ``train_fn``.
    out_dir : str or Path
        The study directory; the run writes into ``out_dir/runs/<run_id>``.
    train_fn : str or callable
        The train function or its dotted path (resolved in the executing process).
    redo : bool
        Train again even if the run finished meanwhile (``--force``).

    Returns
    -------
    dict
        The result record (status "ok", "failed", or "skipped" when another live process holds the
        run's lock), as :func:`execute_run` writes it.
    """
    return execute_run(spec, Path(data_dir), Path(out_dir) / "runs" / run_id(spec), resolve(train_fn), redo)


def run_group(specs: list[dict], data_dir: str | Path, out_dir: str | Path, train_fn: str | Callable,
              redo: bool = False) -> list[tuple[dict, dict]]:
    """Execute one job of a study (a single run, or WSD runs sharing a trunk) wherever it lands.

    Returns
    -------
    list of (spec, record)
        One per spec, as :func:`execute_run` / :func:`execute_group` write them.
    """
    fn = resolve(train_fn)
    if len(specs) == 1 and (branches_fn(fn) is None or specs[0].get("scheduler") != "wsd"):
        return [(specs[0], run_one(specs[0], data_dir, out_dir, fn, redo))]
    records = execute_group(specs, Path(data_dir), Path(out_dir), fn, redo)
    by_id = {r["run_id"]: r for r in records}
    return [(s, by_id[run_id(s)]) for s in specs]


def trunk_groups(specs: list[dict]) -> list[list[dict]]:
    """``specs`` grouped by the trunk they share: WSD runs that differ only in budget together, every
    other run alone (first-appearance order)."""
    from experiments.training.run import branch_key

    groups: dict = {}
    for k, s in enumerate(specs):
        groups.setdefault(branch_key(s) if s.get("scheduler") == "wsd" else f"single-{k}", []).append(s)
    return list(groups.values())


def study_jobs(todo: list[dict], train_fn: Callable) -> list[list[dict]]:
    """The runs to train grouped into jobs: WSD runs that differ only in budget share one job (one
    trunk) when the train function offers branches; every other run is a job of its own."""
    if branches_fn(train_fn) is None:
        return [[s] for s in todo]
    return trunk_groups(todo)


def optimiser_steps(specs: list[dict]) -> tuple[int, int]:
    """(steps as dedicated runs, steps actually trained): WSD runs that differ only in budget share a
    trunk up to their largest budget's cooldown start, then each trains its own cooldown."""
    from experiments.settings import spec_settings, wsd_cooldown_start

    dedicated = sum(int(s["steps"]) for s in specs)
    trained = 0
    for group in trunk_groups(specs):
        if len(group) == 1 or group[0].get("scheduler") != "wsd":
            trained += sum(int(s["steps"]) for s in group)
            continue
        frac = float(spec_settings(group[0])["cooldown_fraction"])
        starts = [wsd_cooldown_start(int(s["steps"]), frac) for s in group]
        trained += max(starts) + sum(int(s["steps"]) - b for s, b in zip(group, starts))
    return dedicated, trained


