"""Cold and cached compile time of one GATr training step, each in a fresh process (as a sweep's runs are).

    python docs/scripts/compile_cache.py --algebra projective --runs 3

Run 1 compiles into an empty inductor cache (``TORCHINDUCTOR_CACHE_DIR`` set to a new temporary folder);
runs 2.. start fresh Python processes that share that folder, as the runs of one sweep do on one machine
(the default cache folder, ``/tmp/torchinductor_<user>``, is shared the same way; a sweep on several
nodes can point ``TORCHINDUCTOR_CACHE_DIR`` at a shared file system). Prints the seconds to the first
finished step (tracing, compiling or loading, and running it) per run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: The measured process: build the benchmark's network in the reference setting, compile, time one step.
CHILD = """
import json, sys, time, torch
from gatr import GATr
torch.set_num_threads(2)
torch.manual_seed(0)
algebra = sys.argv[1]
net = GATr(algebra, 1, 1, 16, 1, 1, 32, 4, 8)
dim = net.algebra.dim
x, s = torch.randn(16, 64, 1, dim), torch.randn(16, 64, 1)
step = torch.compile(lambda: sum(t.square().mean() for t in net(x, s)), fullgraph=True)
start = time.perf_counter()
step().backward()
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def main(argv=None) -> int:
    """Time ``--runs`` fresh processes that compile the same network into one inductor cache.

    Parameters
    ----------
    argv : list of str, optional

    Returns
    -------
    int
        Exit code.
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algebra", default="projective")
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error(f"--runs: expected a positive integer, got {args.runs}")
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "PYTHONPATH": str(REPO)}
        for run in range(1, args.runs + 1):
            out = subprocess.run([sys.executable, "-c", CHILD, args.algebra], env=env, capture_output=True,
                                 text=True, check=False)
            if out.returncode != 0:
                print(f"error: run {run} failed: {out.stderr.strip().splitlines()[-1]}", file=sys.stderr)
                return 1
            seconds = json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
            print(f"{args.algebra} run {run} ({'cold' if run == 1 else 'cached'}): {seconds:.1f} s to the first step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
