"""The benchmark's regression guard: ``--compare-to PATH`` times another checkout's GATr next to ours.

    git worktree add /tmp/prev <commit>          # or any folder holding an older release's gatr/ and algebras/
    python -m experiments.benchmark --compare-to /tmp/prev --algebras projective conformal --modes eager

Both trees name their packages ``gatr``, ``algebras`` and ``experiments``, so the other tree's models
live in a worker process (:mod:`experiments.benchmark_worker`, started with ``PYTHONPATH=PATH`` in PATH
and the same number of torch threads) that builds the same GATr (same algebra, sizes, mode, dtype,
device) with that tree's own ``gatr.GATr`` and times one round of it on request over a pipe. Each of
ours is followed by its old twin in every round, so the machine's drifts hit both alike; the table
gains the per-round ratios new / old (median and min over rounds) for every backend and mode.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

WORKER = Path(__file__).with_name("benchmark_worker.py")


class CompareError(RuntimeError):
    """The other tree could not be loaded or timed (one line, for the command line)."""


def check_tree(path: str) -> str | None:
    """What is wrong with ``--compare-to path`` before anything starts (None when nothing is)."""
    where = Path(path).expanduser()
    if not where.is_dir():
        return f"--compare-to {path}: no such directory"
    missing = [name for name in ("gatr", "algebras") if not (where / name / "__init__.py").is_file()]
    if missing:
        return (f"--compare-to {path}: not a checkout of this project (no {' or '.join(m + '/' for m in missing)} "
                f"package)")
    return None


def describe_tree(path: str) -> str:
    """``path`` and, when it is a git checkout, its commit (what the table's header names)."""
    where = Path(path).expanduser().resolve()
    try:
        commit = subprocess.run(["git", "-C", str(where), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return str(where)
    return f"{where} @ {commit}"


class OtherTree:
    """The worker process that holds the other tree's models (see :mod:`experiments.benchmark_worker`).

    Parameters
    ----------
    path : str
        The other checkout (a folder with its ``gatr/`` and ``algebras/`` packages).
    args : argparse.Namespace
        The benchmark's settings: sizes, device, dtype (threads: this process's ``torch.get_num_threads()``).
    """

    def __init__(self, path: str, args):
        self.path = Path(path).expanduser().resolve()
        self._log = tempfile.TemporaryFile(mode="w+")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(self.path),
                                                                        os.environ.get("PYTHONPATH")))))
        launcher = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"
        self._proc = subprocess.Popen([sys.executable, "-c", launcher, str(WORKER)], cwd=self.path, env=env,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True)
        threads = torch.get_num_threads()
        hello = self._ask({"path": str(self.path), "threads": threads, "device": args.device, "dtype": args.dtype,
                           "batch": args.batch, "items": args.items, "mv": args.mv_channels, "s": args.s_channels,
                           "blocks": args.blocks, "heads": args.heads})
        if hello["threads"] != threads:
            self.close()
            raise CompareError(f"--compare-to {self.path}: its worker runs {hello['threads']} torch threads, "
                               f"this process {threads}")

    def _ask(self, request: dict) -> dict:
        """Send one request, return the worker's answer; CompareError when it failed or ended."""
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            self._log.seek(0)
            last = [x for x in self._log.read().splitlines() if x.strip()][-1:] or ["no message"]
            self.close()
            raise CompareError(f"--compare-to {self.path}: its worker ended ({last[0].strip()})")
        answer = json.loads(line)
        if "error" in answer:
            self.close()
            raise CompareError(f"--compare-to {self.path}: {answer['error']}")
        return answer

    def prepare(self, spec: str, compiled: bool) -> dict:
        """Build (and compile, if asked) the other tree's GATr on ``spec``; ``{"skip": why}`` if it lacks it."""
        return self._ask({"op": "prepare", "spec": spec, "compiled": compiled})

    def timer(self, index: int):
        """``steps -> seconds`` of the other tree's model ``index`` (timed inside the worker)."""
        return lambda steps: self._ask({"op": "time", "index": index, "steps": steps})["seconds"]

    def close(self) -> None:
        """End the worker (it exits when its input ends)."""
        if self._proc.poll() is None:
            try:
                self._proc.stdin.close()
                self._proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        self._log.close()


def add_old_twins(entries: list, tree: OtherTree, entry_cls) -> list:
    """``entries`` with, right after each of ours, its twin from ``tree`` (so every round alternates them).

    Parameters
    ----------
    entries : list of Entry
        The benchmark's prepared models; ours carry the algebra ``spec`` they were built on.
    tree : OtherTree
        The other checkout's worker.
    entry_cls : type
        The benchmark's ``Entry``.

    Returns
    -------
    list of Entry
        The new order; each of ours that the other tree could build has ``twin`` set.
    """
    out = []
    for entry in entries:
        out.append(entry)
        if entry.spec is None:
            continue
        print(f"# preparing old {entry.label} ...", file=sys.stderr, flush=True)
        made = tree.prepare(entry.spec, entry.compiled)
        if "skip" in made:
            print(f"# old {entry.label} skipped: {made['skip']}", file=sys.stderr)
            continue
        entry.twin = entry_cls(f"old {entry.label}", None, (), None, made["flops"], made["compile_s"],
                               params=made["params"], timer=tree.timer(made["index"]))
        out.append(entry.twin)
    if not any(e.twin for e in entries):
        raise CompareError(f"--compare-to {tree.path}: none of these models could be built there")
    return out


def ratio_cells(entry) -> list[str]:
    """The table's new / old cells of ``entry``: median and min over rounds of the per-round ratios."""
    if entry.twin is None:
        return ["–", "–"]
    ratios = [new / old for new, old in zip(entry.rates, entry.twin.rates)]
    return [f"{statistics.median(ratios):.2f}", f"{min(ratios):.2f}"]
