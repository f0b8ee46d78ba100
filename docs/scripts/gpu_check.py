"""Correctness of every backend and kernel on a device (made for CUDA; runs on the CPU with tiny sizes too).

    python docs/scripts/gpu_check.py --device cuda --out OUT_DIR
    python docs/scripts/gpu_check.py --device cpu --items 8 --compile-configs auto/auto   # a quick dry run

For each registered algebra, a small GATr in float32 on ``--device``:

* eager, every linear kernel (dense, sparse, auto) x every bilinear kernel (dense, sparse, xor, auto):
  forward + backward runs, and outputs and gradients match a float64 CPU reference of the same weights
  (relative error ||a - b|| / ||b|| over outputs and over all gradients);
* eager under bfloat16 autocast (the benchmark's setting), kernels auto/auto, against float32;
* ``GATrConfig(compile=True)`` (inductor, ``fullgraph=True``) for each of ``--compile-configs``: outputs
  and gradients against the same network run eagerly, the dynamo counters (graph breaks, graphs) and
  the compile time.

Every case is caught on its own (an error is a row, not the end of the run). Prints a table per part
and writes ``gpu_check.json`` under ``--out``. Exit status 1 if any case failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from algebras import available_algebras  # noqa: E402
from gatr import GATr  # noqa: E402

LINEAR = ("dense", "sparse", "auto")
BILINEAR = ("dense", "sparse", "xor", "auto")
TOL_F32 = 1e-4  # relative norm error, float32 against float64 (and compiled against eager)
TOL_BF16 = 3e-2


def build(alg, args, **kw):
    torch.manual_seed(0)
    return GATr(alg, 2, 1, args.channels, 2, 1, args.channels, num_blocks=args.blocks, num_heads=2, **kw)


def inputs(alg_dim, args):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(args.batch, args.items, 2, alg_dim, generator=g, dtype=torch.float64),
            torch.randn(args.batch, args.items, 2, generator=g, dtype=torch.float64))


def run_once(net, x, s, device, dtype, autocast=None):
    """Outputs and gradients (inputs, then parameters), as float64 CPU tensors."""
    x = x.detach().to(device, dtype).clone().requires_grad_()
    s = s.detach().to(device, dtype).clone().requires_grad_()
    net.zero_grad(set_to_none=True)
    if autocast is not None:
        with torch.autocast(device_type=torch.device(device).type, dtype=autocast):
            mv, out = net(x, s)
    else:
        mv, out = net(x, s)
    (mv.float().square().sum() + out.float().square().sum()).backward()
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    outs = [mv.detach().double().cpu(), out.detach().double().cpu()]
    grads = [x.grad.double().cpu(), s.grad.double().cpu()] + [
        (p.grad if p.grad is not None else torch.zeros_like(p)).double().cpu() for p in net.parameters()]
    return outs, grads


def rel(a: list, b: list) -> float:
    num = sum(float((x - y).square().sum()) for x, y in zip(a, b))
    den = sum(float(y.square().sum()) for y in b)
    return (num / max(den, 1e-300)) ** 0.5


def finite(ts: list) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in ts)


def short(err: BaseException) -> str:
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}"[:300]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--algebras", nargs="+", default=None)
    p.add_argument("--items", type=int, default=64)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--compile-configs", nargs="*", default=["auto/auto", "sparse/xor", "dense/sparse"],
                   help="linear/bilinear kernel pairs to compile (none: skip the compiled part)")
    p.add_argument("--out", default=None, help="folder for gpu_check.json")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(device)}",
              flush=True)
    else:
        print(f"torch {torch.__version__}, device {device}", flush=True)
    names = args.algebras or available_algebras()
    rows = {"kernels": [], "bf16": [], "compiled": []}
    failed = 0
    refs = {}

    for name in names:
        ref_net = build(name, args).double()
        x, s = inputs(ref_net.algebra.dim, args)
        ref = run_once(ref_net, x, s, "cpu", torch.float64)
        refs[name] = (x, s, ref)
        # eager: every kernel pair against the float64 CPU reference
        for lin in LINEAR:
            for bil in BILINEAR:
                row = {"algebra": name, "linear": lin, "bilinear": bil}
                try:
                    net = build(name, args, linear_kernel=lin, bilinear_kernel=bil).to(device)
                    outs, grads = run_once(net, x, s, device, torch.float32)
                    row.update(out_err=rel(outs, ref[0]), grad_err=rel(grads, ref[1]), finite=finite(outs + grads))
                    row["ok"] = row["finite"] and row["out_err"] < TOL_F32 and row["grad_err"] < TOL_F32
                except Exception as err:  # noqa: BLE001 - every case is a row
                    row.update(ok=False, error=short(err), trace=traceback.format_exc())
                failed += not row["ok"]
                rows["kernels"].append(row)
        # eager under bf16 autocast (what the benchmark runs)
        row = {"algebra": name}
        try:
            net = build(name, args).to(device)
            outs, grads = run_once(net, x, s, device, torch.float32, autocast=torch.bfloat16)
            row.update(out_err=rel(outs, ref[0]), grad_err=rel(grads, ref[1]), finite=finite(outs + grads))
            row["ok"] = row["finite"] and row["out_err"] < TOL_BF16 and row["grad_err"] < TOL_BF16
        except Exception as err:  # noqa: BLE001
            row.update(ok=False, error=short(err), trace=traceback.format_exc())
        failed += not row["ok"]
        rows["bf16"].append(row)
        print(f"# {name} done", flush=True)

    def fmt(v):
        return f"{v:.1e}" if isinstance(v, float) else str(v)

    print(f"\n## eager, float32, every kernel pair vs float64 CPU reference (tolerance {TOL_F32:g}); "
          f"batch {args.batch} x {args.items} items, {args.blocks} blocks, {args.channels} channels")
    print("| algebra | linear | bilinear | out err | grad err | ok |\n|---|---|---|---|---|---|")
    for r in rows["kernels"]:
        print(f"| {r['algebra']} | {r['linear']} | {r['bilinear']} | {fmt(r.get('out_err', '-'))} | "
              f"{fmt(r.get('grad_err', '-'))} | {'ok' if r['ok'] else 'FAIL ' + r.get('error', '')} |")
    print(f"\n## eager, bfloat16 autocast, auto/auto vs float64 (tolerance {TOL_BF16:g})")
    print("| algebra | out err | grad err | ok |\n|---|---|---|---|")
    for r in rows["bf16"]:
        print(f"| {r['algebra']} | {fmt(r.get('out_err', '-'))} | {fmt(r.get('grad_err', '-'))} | "
              f"{'ok' if r['ok'] else 'FAIL ' + r.get('error', '')} |")
    sys.stdout.flush()
    for name in names:
        x, s, ref = refs[name]
        # compiled (GATrConfig.compile, inductor, fullgraph) against the same network eagerly
        for pair in args.compile_configs:
            lin, bil = pair.split("/")
            row = {"algebra": name, "linear": lin, "bilinear": bil}
            try:
                torch._dynamo.reset()
                torch._dynamo.utils.counters.clear()
                net = build(name, args, linear_kernel=lin, bilinear_kernel=bil, compile=True).to(device)
                t0 = time.perf_counter()
                comp = run_once(net, x, s, device, torch.float32)
                row["compile_s"] = time.perf_counter() - t0
                comp2 = run_once(net, x, s, device, torch.float32)  # second call: no recompile expected
                c = torch._dynamo.utils.counters
                row["graph_breaks"] = sum(c["graph_break"].values())
                row["graphs"] = c["stats"]["unique_graphs"]
                net.config.compile = False
                eager = run_once(net, x, s, device, torch.float32)
                row.update(out_err=rel(comp[0], eager[0]), grad_err=rel(comp[1], eager[1]),
                           rerun_err=rel(comp2[0] + comp2[1], comp[0] + comp[1]),
                           ref_err=rel(comp[0], ref[0]), finite=finite(comp[0] + comp[1]))
                row["ok"] = (row["finite"] and row["graph_breaks"] == 0 and row["graphs"] == 1
                             and max(row["out_err"], row["grad_err"]) < TOL_F32)
            except Exception as err:  # noqa: BLE001
                row.update(ok=False, error=short(err), trace=traceback.format_exc())
            failed += not row["ok"]
            rows["compiled"].append(row)
            print(f"# {name} compiled {pair}: {'ok' if row['ok'] else 'FAIL'} "
                  f"({row.get('compile_s', 0):.1f} s)", flush=True)
    print(f"\n## GATrConfig(compile=True) vs eager, float32 (tolerance {TOL_F32:g})")
    print("| algebra | linear/bilinear | compile s | graph breaks | graphs | out err | grad err | vs float64 | ok |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows["compiled"]:
        print(f"| {r['algebra']} | {r['linear']}/{r['bilinear']} | {r.get('compile_s', float('nan')):.1f} | "
              f"{r.get('graph_breaks', '-')} | {r.get('graphs', '-')} | {fmt(r.get('out_err', '-'))} | "
              f"{fmt(r.get('grad_err', '-'))} | {fmt(r.get('ref_err', '-'))} | "
              f"{'ok' if r['ok'] else 'FAIL ' + r.get('error', '')} |")
    print(f"\n{failed} failed case(s)")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_check.json").write_text(json.dumps(
            {"torch": torch.__version__, "device": str(device), "args": vars(args), **rows}, indent=1, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
