"""Cold and cached compile time of one training step, each in a fresh process (as a sweep's runs are), for
ours and lgatr side by side.

    python docs/scripts/compile_cache.py --algebra projective --runs 3

Every model gets its own empty inductor cache (``TORCHINDUCTOR_CACHE_DIR`` set to a new temporary folder):
its run 1 compiles cold; its runs 2.. start fresh Python processes that share that folder, as the runs of
one sweep do on one machine (the default cache folder, ``/tmp/torchinductor_<user>``, is shared the same
way; a sweep on several nodes can point ``TORCHINDUCTOR_CACHE_DIR`` at a shared file system). Prints the
seconds to the first finished step (tracing, compiling or loading, and running it) per run, in the reference
setting of ``python -m experiments.benchmark`` (4 blocks, 16 / 32 channels, 8 heads, batch 16 x 64, 2 threads).

Models (``--models``):

* ``ours``: ``GATr(..., compile=True)``, how training's ``--model.compile true`` runs it (one block's forward
  compiled and shared by every block, the input and output maps eager);
* ``ours-whole``: ``torch.compile`` of the whole training step's forward (``fullgraph=True``), as the benchmark's
  compiled rows wrap every model;
* ``lgatr``: lgatr 2.x on Cl(1,3) through ``torch.compile(fullgraph=True)`` (its own ``compile=True`` wraps the
  whole model the same way), if it is installed.
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

#: The measured process: build one model in the reference setting, time its first training step.
CHILD = """
import json, sys, time, torch
torch.set_num_threads(2)
torch.manual_seed(0)
model, algebra = sys.argv[1], sys.argv[2]
if model == "lgatr":
    from experiments.peers import LGATrNet
    net = LGATrNet(16, 32, 4, 8)
    dim = 16
else:
    from gatr import GATr
    net = GATr(algebra, 1, 1, 16, 1, 1, 32, 4, 8, compile=model == "ours")
    dim = net.algebra.dim
x, s = torch.randn(16, 64, 1, dim), torch.randn(16, 64, 1)
loss = lambda: sum(t.float().square().mean() for t in net(x, s))
step = torch.compile(loss, fullgraph=True) if model != "ours" else loss
start = time.perf_counter()
step().backward()
print(json.dumps({"seconds": time.perf_counter() - start}))
"""

MODELS = ("ours", "ours-whole", "lgatr")


def main(argv=None) -> int:
    """Time ``--runs`` fresh processes per model that compile the same network into that model's own cache.

    Parameters
    ----------
    argv : list of str, optional

    Returns
    -------
    int
        Exit code.
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algebra", default="projective", help="ours' algebra (lgatr is always Cl(1,3))")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error(f"--runs: expected a positive integer, got {args.runs}")
    results = {}
    for model in args.models:
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "PYTHONPATH": str(REPO)}
            for run in range(1, args.runs + 1):
                out = subprocess.run([sys.executable, "-c", CHILD, model, args.algebra], env=env,
                                     capture_output=True, text=True, check=False)
                if out.returncode != 0:
                    lines = out.stderr.strip().splitlines() or ["(no output)"]
                    print(f"# {model} run {run} failed: {lines[-1]}", file=sys.stderr)
                    break
                seconds = json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
                results.setdefault(model, []).append(seconds)
                label = model if model == "lgatr" else f"{model} ({args.algebra})"
                print(f"{label} run {run} ({'cold' if run == 1 else 'cached'}): {seconds:.1f} s to the first step",
                      flush=True)
    if "lgatr" in results:
        for model in ("ours", "ours-whole"):
            if model in results:
                print(f"cold {model} / cold lgatr: {results[model][0] / results['lgatr'][0]:.2f}x")
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
