"""Training throughput of GATr on every algebra, eager and compiled, side by side with its peers.

    python -m experiments.benchmark                                    # CPU reference setting, all models
    python -m experiments.benchmark --reference-gatr ~/src/geometric-algebra-transformer
    python -m experiments.benchmark --device cuda --dtype bfloat16 --items 16384 --batch 1   # one size per run
    python -m experiments.benchmark --compare-to /tmp/prev --algebras projective conformal --modes eager

One invocation builds every model, then times them in alternating rounds (each round runs ``--steps``
forward+backward+SGD steps of every model in turn), so drifts of a shared machine hit all models alike.
Reported: tokens/s (median and range over rounds), the ratio to ours on the projective algebra (eager),
parameters, nominal FLOPs per token (the :mod:`gatr.flops` convention), compile time and, on CUDA,
peak memory. Models:

* ours on every registered algebra (or ``--algebras``), eager and ``torch.compile(fullgraph=True)``;
* a pre-norm ``torch.nn.TransformerEncoder`` whose width matches the FLOPs of ours on ``--match``;
* lgatr (Cl(1,3), eager and compiled) next to ours on ``--lorentz-algebra`` when lgatr is installed;
* the reference projective GATr when ``--reference-gatr`` gives its source tree;
* with ``--compare-to PATH``, each of ours built from another checkout of this project (an older
  release) in a worker process, timed right after ours in every round; the table adds new / old
  (:mod:`experiments.benchmark_compare`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from experiments.benchmark_compare import CompareError, OtherTree, add_old_twins, check_tree, describe_tree, ratio_cells
from experiments.benchmark_worker import build_gatr, make_step, mv_loss, time_steps
from experiments.cli import examples, prog
from experiments.models.baselines import transformer_flops
from gatr import GATr
from gatr import flops as F


class Transformer(nn.Module):
    """Pre-norm transformer encoder on ``(batch, items, in_features)`` tokens."""

    def __init__(self, in_features, out_features, d_model, num_layers, num_heads):
        super().__init__()
        self.inp = nn.Linear(in_features, d_model)
        layer = nn.TransformerEncoderLayer(d_model, num_heads, 4 * d_model, dropout=0.0, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.out = nn.Linear(d_model, out_features)
        self.dims = (in_features, out_features, d_model, num_layers)

    def forward(self, x):
        return self.out(self.encoder(self.inp(x)))

    def nominal_flops_per_token(self, num_items):
        i, o, d, n = self.dims
        return F.training_flops(transformer_flops(d, n, num_items, i, o))


def matched_transformer(target_flops, num_items, num_layers, num_heads, in_features=16, out_features=16):
    """Transformer whose d_model (a multiple of num_heads) best matches ``target_flops`` per token."""
    best = min(range(num_heads, 4096, num_heads), key=lambda d: abs(
        F.training_flops(transformer_flops(d, num_layers, num_items, in_features, out_features)) - target_flops))
    return Transformer(in_features, out_features, best, num_layers, num_heads)


@dataclass
class Entry:
    """One timed model: its step function and what the table shows."""

    label: str
    model: nn.Module
    inputs: tuple
    loss: Callable
    flops: float | None = None
    compile_s: float = 0.0
    rates: list = field(default_factory=list)
    step: Callable | None = None
    params: int = 0
    spec: str | None = None  # ours: the algebra it runs on (what --compare-to builds in the other tree)
    compiled: bool = False
    timer: Callable[[int], float] | None = None  # steps -> seconds
    twin: Entry | None = None  # ours: the same model from the --compare-to tree
    kwargs: dict = field(default_factory=dict)  # keyword inputs of the forward call


def _prepare(entry: Entry, compiled: bool, device, dtype) -> None:
    """Build the step (compiling first if asked) and run it twice: compile, then warm caches."""
    entry.step, entry.compile_s = make_step(entry.model, entry.inputs, entry.loss, compiled, device, dtype,
                                            entry.kwargs)
    entry.params = sum(p.numel() for p in entry.model.parameters())
    entry.timer = lambda steps: time_steps(entry.step, steps, device)


def _lorentz_algebra(args, with_lgatr: bool):
    """Ours on Cl(1,3) next to lgatr: ``(algebra or None, its registry spec)``."""
    from algebras import available_algebras, get_algebra

    spec = args.lorentz_algebra or ("spacetime" if "spacetime" in available_algebras()
                                    else "examples.spacetime.gatr_spacetime:spacetime")
    if not with_lgatr:
        return None, spec
    try:
        return get_algebra(spec), spec
    except ValueError as err:
        print(f"# ours on Cl(1,3) skipped: {err}", file=sys.stderr)
        return None, spec


def _peer_entries(args, device, target, match: str, with_lgatr: bool) -> list:
    """The transformer matched to ``target`` FLOPs, the reference GATr and lgatr, as ``(Entry, compiled)``."""
    from experiments.peers import LGATrNet

    b, n, mv, s, blocks, heads = args.batch, args.items, args.mv_channels, args.s_channels, args.blocks, args.heads
    todo = []
    if not args.no_transformer and target is not None:
        torch.manual_seed(0)
        tf = matched_transformer(target, n, blocks, heads).to(device)
        todo.append((Entry(f"transformer d={tf.dims[2]} (FLOPs of {match})", tf,
                           (torch.randn(b, n, 16, device=device),), lambda out: out.float().square().mean(),
                           tf.nominal_flops_per_token(n)), False))
    if args.reference_gatr:
        from experiments.peers import ReferenceGATr

        torch.manual_seed(0)
        ref = ReferenceGATr(args.reference_gatr, mv, s, blocks, heads).to(device)
        todo.append((Entry("reference GATr v1.4 (projective)", ref, (torch.randn(b, n, 1, 16, device=device),
                                                                       torch.randn(b, n, 1, device=device)), mv_loss),
                     False))
    for compiled in (args.modes if with_lgatr else ()):
        torch.manual_seed(0)
        net = LGATrNet(mv, s, blocks, heads).to(device)
        inputs = (torch.randn(b, n, 1, 16, device=device), torch.randn(b, n, 1, device=device))
        todo.append((Entry("lgatr 2.x (Cl(1,3), mlp_ratio=2)" + (" compiled" if compiled == "compiled" else ""),
                           net, inputs, mv_loss), compiled == "compiled"))
    return todo


def build_entries(args, device) -> list[Entry]:
    """Every model of the comparison with its inputs (see the module docstring)."""
    from algebras import available_algebras, canonical_name, get_algebra
    from experiments.peers import lgatr_available

    size = dict(batch=args.batch, items=args.items, mv=args.mv_channels, s=args.s_channels, blocks=args.blocks,
                heads=args.heads)

    def gatr_entry(label, algebra, compiled, spec):  # built as the --compare-to worker builds the old tree's
        net, inputs, kwargs = build_gatr(GATr, algebra, size, device)
        return Entry(label + (" compiled" if compiled else ""), net, inputs, mv_loss,
                     net.nominal_flops_per_token(args.items), spec=spec, compiled=compiled, kwargs=kwargs), compiled

    names = args.algebras or available_algebras()
    match = canonical_name(args.match or ("projective" if "projective" in names else names[0]))
    with_lgatr = not args.no_lgatr and lgatr_available()
    lorentz, lorentz_spec = _lorentz_algebra(args, with_lgatr)
    lorentz_label = f"ours Cl(1,3) [{lorentz.group.name}]" if lorentz is not None else None
    todo, target = [], None
    for name in names:
        algebra = get_algebra(name)
        label = lorentz_label if algebra is lorentz else f"ours {algebra.name}"  # timed once, named for lgatr
        for compiled in args.modes:
            todo.append(gatr_entry(label, name, compiled == "compiled", name))
            if canonical_name(name) == match and target is None:
                target = todo[-1][0].flops
    if lorentz is not None and not any(get_algebra(name) is lorentz for name in names):
        todo += [gatr_entry(lorentz_label, lorentz, mode == "compiled", lorentz_spec) for mode in args.modes]
    todo += _peer_entries(args, device, target, match, with_lgatr)
    entries = []
    for entry, compiled in todo:
        print(f"# preparing {entry.label} ...", file=sys.stderr, flush=True)
        _prepare(entry, compiled, device, getattr(torch, args.dtype))
        entries.append(entry)
    return entries


def time_rounds(entries: list[Entry], rounds: int, steps: int, tokens: int, device) -> None:
    """Alternating rounds: every model runs ``steps`` steps per round, in order; rates in tokens/s."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for r in range(rounds):
        for e in entries:
            e.rates.append(tokens * steps / e.timer(steps))
        print(f"# round {r + 1}/{rounds} done", file=sys.stderr, flush=True)


def report(entries: list[Entry], args) -> None:
    """The table, ratios to ours on the projective algebra (eager), and the peers' ratios."""
    by_label = {e.label: e for e in entries}
    base = next((e for e in entries if e.label.startswith("ours projective") and "compiled" not in e.label), entries[0])
    median = {e.label: statistics.median(e.rates) for e in entries}
    print(f"device={args.device} dtype={args.dtype} threads={torch.get_num_threads()} batch={args.batch} "
          f"items={args.items} blocks={args.blocks} mv={args.mv_channels} s={args.s_channels} heads={args.heads}; "
          f"{args.rounds} alternating rounds x {args.steps} steps")
    extra = ["new/old (median)", "new/old (min)"] if args.compare_to else []
    if args.compare_to:
        print(f"old = {describe_tree(args.compare_to)}; new/old: per-round ratios of tokens/s, ours vs the old "
              f"tree's same model timed right after it")
    print("| " + " | ".join(["model", "params", "GFLOP/token", "tokens/s (median)", "range", f"x {base.label}",
                             "compile s", *extra]) + " |")
    print("|---" * (7 + len(extra)) + "|")
    for e in entries:
        flops = f"{e.flops / 1e9:.4f}" if e.flops else "-"
        cells = [e.label, f"{e.params:,}", flops, f"{median[e.label]:,.0f}", f"{min(e.rates):,.0f}-{max(e.rates):,.0f}",
                 f"{median[e.label] / median[base.label]:.2f}", f"{e.compile_s:.0f}"]
        print("| " + " | ".join(cells + (ratio_cells(e) if args.compare_to else [])) + " |")
    ratios = []
    ref = by_label.get("reference GATr v1.4 (projective)")
    ours_pga = [e for e in entries if e.label.startswith("ours projective") and "distance" not in e.label]
    if ref and ours_pga:
        best = max(ours_pga, key=lambda e: median[e.label])
        ratios.append(f"{best.label} / reference GATr: {median[best.label] / median[ref.label]:.2f}x")
    lg = [e for e in entries if e.label.startswith("lgatr")]
    ours_l = [e for e in entries if e.label.startswith("ours Cl(1,3)")]
    if lg and ours_l:
        best, peer = max(ours_l, key=lambda e: median[e.label]), max(lg, key=lambda e: median[e.label])
        ratios.append(f"{best.label} / {peer.label}: {median[best.label] / median[peer.label]:.2f}x")
    for e in entries:
        if e.label.endswith(" compiled") and e.label[: -len(" compiled")] in by_label and e.label.startswith("ours"):
            ratios.append(f"{e.label} / eager: {median[e.label] / median[e.label[: -len(' compiled')]]:.2f}x")
    for line in ratios:
        print(f"- {line}")
    if args.device.startswith("cuda"):
        print(f"- peak CUDA memory over all models: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


def _check_args(args) -> str | None:
    """The first problem with the command line, before any model is built (None when there is none)."""
    for name in ("items", "batch", "blocks", "mv_channels", "s_channels", "heads", "threads", "steps", "rounds"):
        if getattr(args, name) < 1:
            return f"--{name.replace('_', '-')}: expected a positive integer, got {getattr(args, name)}"
    try:
        device = torch.device(args.device)
    except (RuntimeError, ValueError) as err:
        return f"--device {args.device!r}: {err}"
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            return (f"--device {args.device}: this torch sees {count} CUDA device(s)"
                    + ("" if torch.version.cuda else " (a CPU-only build)"))
    elif device.type == "mps" and not torch.backends.mps.is_available():
        return f"--device {args.device}: MPS is not available here"
    return check_tree(args.compare_to) if args.compare_to else None


def main(argv=None) -> int:
    program = prog("experiments.benchmark", "gatr-benchmark")
    p = argparse.ArgumentParser(prog=program, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=examples(program, "--algebras projective conformal --modes eager",
                                                "--reference-gatr ../geometric-algebra-transformer",
                                                "--compare-to ../gatr-previous --modes eager", "--equivariance"))
    p.add_argument("--algebras", nargs="+", default=None,
                   help="algebras to time (default: every registered one, plug-ins included)")
    p.add_argument("--modes", nargs="+", default=["eager", "compiled"], choices=["eager", "compiled"])
    p.add_argument("--match", default=None, help="algebra whose FLOPs the transformer matches (default projective)")
    p.add_argument("--reference-gatr", default=None, help="source tree of the reference GATr to time as a peer")
    p.add_argument("--lorentz-algebra", default=None, help="ours on Cl(1,3) next to lgatr (default: the example)")
    p.add_argument("--no-lgatr", action="store_true", help="leave lgatr out even when it is installed")
    p.add_argument("--no-transformer", action="store_true")
    p.add_argument("--items", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--mv-channels", type=int, default=16)
    p.add_argument("--s-channels", type=int, default=32)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=3, help="steps per model per round")
    p.add_argument("--rounds", type=int, default=5, help="alternating timing rounds")
    p.add_argument("--compare-to", default=None, metavar="PATH",
                   help="another checkout of this project (e.g. an older release): time its GATr models in the same "
                        "rounds and add new/old columns")
    p.add_argument("--equivariance", action="store_true", help="print equivariance error vs depth instead")
    args = p.parse_args(argv)
    problem = _check_args(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    if args.equivariance:
        from gatr.diagnostics import print_equivariance_vs_depth

        print_equivariance_vs_depth(args.algebras)
        return 0
    device, other, timing = torch.device(args.device), None, False
    try:
        other = OtherTree(args.compare_to, args) if args.compare_to else None  # a bad tree fails before compiling
        entries = build_entries(args, device)
        entries = add_old_twins(entries, other, Entry) if other else entries
        timing = True
        time_rounds(entries, args.rounds, args.steps, args.batch * args.items, device)
    except (ValueError, RuntimeError) as err:  # while timing, only the other tree's failures are one line
        if timing and not isinstance(err, CompareError):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if other is not None:
            other.close()
    report(entries, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
