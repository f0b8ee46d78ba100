"""A study directory's records on disk: atomic JSON writes, reading every run's ``result.json``, and the
``results.csv`` / ``results.jsonl`` tables built from them (written atomically, so shards running in
parallel never leave a half-written file)."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path
from typing import Any

CSV_COLUMNS = ("run_id", "status", "name", "family", "algebra", "augment", "width", "depth", "steps",
               "train_trajectories", "seed", "batch_size", "params", "flops_per_step", "train_flops",
               "val_loss", "test_loss", "test_contact_loss", "test_free_loss", "test_e3_loss",
               "test_rotation_loss", "test_translation_loss", "wall_time_s", "error_type", "error_message",
               "timestamp")


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    for attr in ("item", "tolist"):  # numpy / torch scalars and arrays
        if hasattr(o, attr):
            try:
                return getattr(o, attr)()
            except Exception:  # noqa: BLE001
                pass
    return repr(o)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a unique temporary file + os.replace (safe with parallel shards)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: Path) -> Any | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


#: spec keys every analysed record needs, with their types
_SPEC_TYPES = {"name": str, "family": str, "width": int, "depth": int, "steps": int, "train_trajectories": int,
               "seed": int}
_NUMBERS = ("params", "train_flops", "val_loss", "test_loss", "test_contact_loss", "test_e3_loss", "train_time_s")


def record_problem(r) -> str | None:
    """Why a ``result.json``'s content is not a usable result record (None when it is): not a mapping,
    no ``run_id``, a ``spec`` that is not a mapping or lacks a grid key, a number given as a string."""
    if not isinstance(r, dict):
        return f"not a JSON object ({type(r).__name__})"
    if not isinstance(r.get("run_id"), str):
        return "no run_id"
    spec = r.get("spec")
    if not isinstance(spec, dict):
        return f"spec is {type(spec).__name__}, not a mapping"
    for k, t in _SPEC_TYPES.items():
        if not isinstance(spec.get(k), t) or isinstance(spec.get(k), bool):
            return f"spec.{k} is {spec.get(k)!r}, expected {t.__name__}"
    for k in _NUMBERS:
        v = r.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            return f"{k} is {v!r}, expected a number"
    return None


def _scan(out_dir: Path):
    runs = Path(out_dir) / "runs"
    for p in sorted(runs.glob("*/result.json")) if runs.is_dir() else []:
        r = read_json(p)
        yield p, r, ("not readable JSON" if r is None else record_problem(r))


def unreadable_results(out_dir: Path) -> list[tuple[Path, str]]:
    """``(path, reason)`` of the ``result.json`` files under ``out_dir/runs`` that are not a usable
    result record (truncated, edited by hand, ...); :func:`collect_results` skips them and ``analyze``
    names them."""
    return [(p, why) for p, _, why in _scan(out_dir) if why is not None]


def collect_results(out_dir: Path) -> list[dict]:
    """All usable result records under ``out_dir/runs`` (every shard), sorted by run id."""
    return [r for _, r, why in _scan(out_dir) if why is None]


def flatten_result(r: dict) -> dict:
    spec = r.get("spec", {})
    row = {}
    for c in CSV_COLUMNS:
        if c in r:
            row[c] = r[c]
        elif c in spec:
            row[c] = spec[c]
        else:
            row[c] = None
    return row


def write_tables(out_dir: Path) -> list[dict]:
    """Write ``results.csv`` and ``results.jsonl`` atomically from all result files present."""
    results = collect_results(out_dir)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
    w.writeheader()
    for r in results:
        row = flatten_result(r)
        w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    atomic_write_text(Path(out_dir) / "results.csv", buf.getvalue())
    lines = "".join(json.dumps({k: v for k, v in r.items() if k != "traceback"}, default=_json_default) + "\n"
                    for r in results)
    atomic_write_text(Path(out_dir) / "results.jsonl", lines)
    return results
