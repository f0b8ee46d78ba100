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
    from gatr import GATr

    torch.set_num_threads(2)
    nets = {}
    for name, by_block in (("by block", True), ("whole", False)):
        torch.manual_seed(0)
        nets[name] = GATr(args.algebra, 1, 1, 16, 1, 1, 32, 4, 8, compile=by_block)
    dim = nets["whole"].algebra.dim
    x, s, ref = torch.randn(16, 64, 1, dim), torch.randn(16, 64, 1), torch.randn(16, 1, 1, dim)
    runs = {"by block": nets["by block"], "whole": torch.compile(nets["whole"], fullgraph=True)}

    def make_step(name):
        net, run = nets[name], runs[name]
        opt = torch.optim.SGD(net.parameters(), lr=1e-9)

        def step():
            opt.zero_grad(set_to_none=True)
            mv, scalars = run(x, s, reference_mv=ref)
            (mv.square().mean() + scalars.mean()).backward()
            opt.step()
        return step

    steps = {name: make_step(name) for name in nets}
    for name, step in steps.items():
        t0 = time.perf_counter()
        step()
        print(f"# {name}: first step (compiling) {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        step()
    rates = {name: [] for name in steps}
    for r in range(args.rounds):
        for name in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
            t0 = time.perf_counter()
            for _ in range(args.steps):
                steps[name]()
            rates[name].append(args.steps * x.shape[0] * x.shape[1] / (time.perf_counter() - t0))
    ratio = statistics.median(a / b for a, b in zip(rates["by block"], rates["whole"]))
    print(f"{args.algebra}: by block {statistics.median(rates['by block']):,.0f} tokens/s, whole "
          f"{statistics.median(rates['whole']):,.0f} tokens/s, by block / whole {ratio:.2f} "
          f"(min {min(a / b for a, b in zip(rates['by block'], rates['whole'])):.2f}, {args.rounds} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
