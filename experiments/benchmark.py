"""Forward+backward throughput of GATr on each algebra vs a FLOP-matched plain transformer.

    python -m experiments.benchmark                       # reference setting, CPU, float32
    python -m experiments.benchmark --items 64 256 --device cuda --dtype bfloat16
    python -m experiments.benchmark --equivariance        # equivariance error vs depth (float32)

Prints tokens/s (best of ``--repeats`` timed runs, each ``--steps`` steps), peak memory (CUDA:
``torch.cuda.max_memory_allocated``; CPU: tracemalloc peak of Python-side allocations is useless for
torch, so the peak RSS growth from ``resource`` is reported) and nominal FLOP/s under the
:mod:`gatr.flops` convention. The transformer is a pre-norm ``torch.nn.TransformerEncoder`` whose
width is chosen so its nominal FLOPs per token match those of the GATr on ``--match`` (default: the
first algebra timed).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from torch import nn

from experiments.cli import examples, prog
from gatr import GATr
from gatr import flops as F
from experiments.models.baselines import transformer_flops



class Transformer(nn.Module):
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
    best = min(range(num_heads, 2048, num_heads), key=lambda d: abs(
        F.training_flops(transformer_flops(d, num_layers, num_items, in_features, out_features)) - target_flops))
    return Transformer(in_features, out_features, best, num_layers, num_heads)


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_model(model, make_inputs, loss_fn, steps, repeats, device, dtype):
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)
    autocast = torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype != torch.float32)
    inputs = make_inputs()

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast:
            out = model(*inputs)
        loss_fn(out).backward()
        opt.step()

    step()  # warm-up (constants, allocator)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss0 = _peak_rss_mb()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) / steps)
    mem = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else _peak_rss_mb()
    return best, mem, rss0


def main(argv=None):
    program = prog("experiments.benchmark", "gatr-benchmark")
    p = argparse.ArgumentParser(prog=program, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=examples(program, "--algebras projective conformal --items 64 256", "--equivariance"))
    p.add_argument("--algebras", nargs="+", default=None,
                   help="algebras to time (default: every registered one, plug-ins included)")
    p.add_argument("--match", default=None, help="algebra whose GATr FLOPs the transformer matches")
    p.add_argument("--items", nargs="+", type=int, default=[64])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--mv-channels", type=int, default=16)
    p.add_argument("--s-channels", type=int, default=32)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-transformer", action="store_true")
    p.add_argument("--equivariance", action="store_true", help="print equivariance error vs depth instead")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from algebras import available_algebras, canonical_name

    args.algebras = args.algebras or available_algebras()
    match = canonical_name(args.match or args.algebras[0])
    if args.equivariance:
        from gatr.diagnostics import print_equivariance_vs_depth
        print_equivariance_vs_depth(args.algebras)
        return 0
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    print(f"device={device} dtype={args.dtype} threads={torch.get_num_threads()} batch={args.batch} "
          f"blocks={args.blocks} mv={args.mv_channels} s={args.s_channels} heads={args.heads}; "
          f"best of {args.repeats} x {args.steps} steps")
    print(f"{'model':<24}{'items':>6}{'tokens/s':>11}{'ms/step':>9}{'GFLOP/tok':>11}{'GFLOP/s':>9}{'mem MB':>9}")
    for items in args.items:
        tokens = args.batch * items
        target = None
        for name in args.algebras:
            torch.manual_seed(0)
            net = GATr(name, 1, 1, args.mv_channels, 1, 1, args.s_channels, args.blocks, args.heads).to(device)
            dim = net.algebra.dim

            def make():
                ref = torch.randn(args.batch, 1, 1, dim, device=device)
                return (torch.randn(args.batch, items, 1, dim, device=device),
                        torch.randn(args.batch, items, 1, device=device), None, None, ref)

            sec, mem, _ = time_model(net, make, lambda out: out[0].float().square().mean() + out[1].float().mean(),
                                     args.steps, args.repeats, device, dtype)
            fl = net.nominal_flops_per_token(items)
            if canonical_name(name) == match or target is None:
                target = fl
            print(f"{'gatr-' + name:<24}{items:>6}{tokens / sec:>11.0f}{1e3 * sec:>9.1f}{fl / 1e9:>11.4f}"
                  f"{fl * tokens / sec / 1e9:>9.1f}{mem:>9.0f}")
        if not args.no_transformer:
            torch.manual_seed(0)
            tf = matched_transformer(target, items, args.blocks, args.heads).to(device)
            sec, mem, _ = time_model(tf, lambda: (torch.randn(args.batch, items, 16, device=device),),
                                     lambda out: out.float().square().mean(), args.steps, args.repeats, device, dtype)
            fl = tf.nominal_flops_per_token(items)
            print(f"{'transformer d=' + str(tf.dims[2]):<24}{items:>6}{tokens / sec:>11.0f}{1e3 * sec:>9.1f}"
                  f"{fl / 1e9:>11.4f}{fl * tokens / sec / 1e9:>9.1f}{mem:>9.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
