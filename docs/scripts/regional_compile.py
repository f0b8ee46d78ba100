"""Throughput of the two ways to compile GATr, in one process: ``GATr(..., compile=True)`` (one block compiled
and shared by every block) against ``torch.compile(net, fullgraph=True)`` (the whole network as one graph).

    python docs/scripts/regional_compile.py --algebra projective --rounds 15

The reference setting of ``python -m experiments.benchmark`` (4 blocks, 16 / 32 channels, 8 heads, batch 16 x 64,
2 threads, forward + backward + SGD with a reference multivector). Both models are built from seed 0 and
timed in alternating rounds of ``--steps`` steps; the order within a round alternates too, because on a
shared CPU the model timed first in a round ran up to 10% faster in either role. Prints tokens/s (median)
of both and the median over rounds of their ratio. Compile time is ``docs/scripts/compile_cache.py``'s.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time

import torch


def main(argv=None) -> int:
    """Build both, compile, time alternating rounds, print the ratio.

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
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args(argv)
    if args.rounds < 1 or args.steps < 1:
        p.error(f"--rounds and --steps: expected positive integers, got {args.rounds} and {args.steps}")
    from experiments.benchmark_worker import build_gatr, make_step, mv_loss, time_steps
    from gatr import GATr

    torch.set_num_threads(2)
    cpu, cfg = torch.device("cpu"), dict(batch=16, items=64, mv=16, s=32, blocks=4, heads=8)
    steps = {}
    for name, by_block in (("by block", True), ("whole", False)):  # "whole": the benchmark's torch.compile wrap
        net, inputs, kwargs = build_gatr(functools.partial(GATr, compile=by_block), args.algebra, cfg, cpu)
        t0 = time.perf_counter()
        steps[name] = make_step(net, inputs, mv_loss, not by_block, cpu, torch.float32, kwargs)[0]
        print(f"# {name}: first two steps (compiling) {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    tokens = args.steps * cfg["batch"] * cfg["items"]
    rates = {name: [] for name in steps}
    for r in range(args.rounds):
        for name in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
            rates[name].append(tokens / time_steps(steps[name], args.steps, cpu))
    ratio = statistics.median(a / b for a, b in zip(rates["by block"], rates["whole"]))
    print(f"{args.algebra}: by block {statistics.median(rates['by block']):,.0f} tokens/s, whole "
          f"{statistics.median(rates['whole']):,.0f} tokens/s, by block / whole {ratio:.2f} "
          f"(min {min(a / b for a, b in zip(rates['by block'], rates['whole'])):.2f}, {args.rounds} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
