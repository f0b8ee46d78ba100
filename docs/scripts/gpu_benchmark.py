"""GPU throughput of GATr on every backend against FLOP-matched transformers, in one lease-sized run.

    python docs/scripts/gpu_benchmark.py --out OUT_DIR                       # CUDA, bf16, 1k / 4k / 16k items
    python docs/scripts/gpu_benchmark.py --device cpu --dtype float32 --items 16 --blocks 1 --modes eager

The models, inputs and training step are ``experiments.benchmark``'s (``Entry``, ``_prepare``,
``matched_transformer``; the same GATr as ``python -m experiments.benchmark --device cuda --dtype bfloat16
--items N --batch 1``), organised so that compiling does not eat the timing budget:

* one worker process per item count builds ours eagerly on every algebra plus a transformer whose
  width matches the nominal FLOPs of each algebra (the target is per backend);
* one worker per (algebra, item count) builds ours compiled (``torch.compile(fullgraph=True)``,
  static shapes), so the cold compiles run side by side on the machine's cores;
* every worker builds and warms its models, then waits; once all are ready (or ``--ready-by``
  seconds have passed) the workers time one at a time, alone on the GPU: ``--rounds`` rounds of
  ``--steps`` forward+backward+SGD steps per model, alternating between the models of a worker.

``--check`` also runs ``docs/scripts/gpu_check.py`` (correctness of every kernel and of compile) per
algebra during the build phase. Writes ``results.json`` (every model, every round) and prints the
tables. Tokens/s = batch x items x steps / seconds, synchronised.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _worker(args) -> int:
    """Build this worker's models, signal ready, wait for go, time, write the result."""
    import torch

    torch._dynamo.config.automatic_dynamic_shapes = False  # one static graph per model (see the report)
    torch.set_num_threads(args.threads)
    from experiments.benchmark import Entry, _prepare, matched_transformer
    try:
        from experiments.benchmark_worker import mv_loss as _mv_loss
    except ImportError:  # releases before the --compare-to worker
        from experiments.benchmark import _mv_loss
    from gatr import GATr

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    b, n = args.batch, args.items
    result = {"worker": args.name, "items": n, "batch": b, "entries": [], "errors": []}
    todo, specs = [], {}
    for spec in args.models:  # "ours:ALGEBRA:MODE[:LINEAR/BILINEAR]" or "transformer:ALGEBRA"
        kind, algebra, *rest = spec.split(":")
        try:
            if kind == "ours":
                mode = rest[0]
                torch.manual_seed(0)
                net = GATr(algebra, 1, 1, args.mv_channels, 1, 1, args.s_channels, args.blocks, args.heads)
                label = f"ours {net.algebra.name}"
                if len(rest) > 1:
                    net.set_kernels(*rest[1].split("/"))
                    label += f" [{rest[1]}]"
                net = net.to(device)
                dim = net.algebra.dim
                inputs = (torch.randn(b, n, 1, dim, device=device), torch.randn(b, n, 1, device=device), None, None,
                          torch.randn(b, 1, 1, dim, device=device))
                entry = Entry(label + (" compiled" if mode == "compiled" else ""), net, inputs, _mv_loss,
                              net.nominal_flops_per_token(n))
                compiled = mode == "compiled"
            else:
                ref = GATr(algebra, 1, 1, args.mv_channels, 1, 1, args.s_channels, args.blocks, args.heads)
                torch.manual_seed(0)
                tf = matched_transformer(ref.nominal_flops_per_token(n), n, args.blocks, args.heads).to(device)
                entry = Entry(f"transformer d={tf.dims[2]} (FLOPs of {algebra})", tf,
                              (torch.randn(b, n, 16, device=device),), lambda out: out.float().square().mean(),
                              tf.nominal_flops_per_token(n))
                compiled = False
            print(f"# {args.name}: preparing {entry.label}", file=sys.stderr, flush=True)
            _prepare(entry, compiled, device, dtype)
            todo.append(entry)
            specs[entry.label] = {"kind": kind, "algebra": algebra, "mode": rest[0] if rest else "eager",
                                  "kernels": rest[1] if len(rest) > 1 else None}
        except Exception as err:  # noqa: BLE001 - a failed model is reported, the others still run
            msg = f"{spec}: {type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
            result["errors"].append(msg[:400])
            print(f"# {args.name}: FAILED {msg}", file=sys.stderr, flush=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    Path(args.ready).write_text("ready")
    while not Path(args.go).exists():
        time.sleep(0.1)
    peaks = {e.label: 0 for e in todo}
    for r in range(args.rounds):
        for e in todo:
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                e.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
                peaks[e.label] = max(peaks[e.label], torch.cuda.max_memory_allocated())
            e.rates.append(b * n * args.steps / (time.perf_counter() - t0))
    for e in todo:
        result["entries"].append({
            **specs[e.label], "label": e.label, "params": sum(p.numel() for p in e.model.parameters()), "flops_per_token": e.flops,
            "compile_s": e.compile_s, "rates": e.rates, "median": statistics.median(e.rates) if e.rates else None,
            "peak_mem_gib": peaks[e.label] / 2**30})
    Path(args.result).write_text(json.dumps(result, indent=1))
    return 0


def _fmt_rate(x):
    if x is None:
        return "-"
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.0f}k" if x >= 1e4 else f"{x:,.0f}"


def _coordinator(args) -> int:
    start = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for f in work.glob("*"):
        f.unlink()
    from algebras import available_algebras

    algebras = args.algebras or available_algebras()
    common = ["--device", args.device, "--dtype", args.dtype, "--batch", str(args.batch), "--blocks", str(args.blocks),
              "--mv-channels", str(args.mv_channels), "--s-channels", str(args.s_channels), "--heads", str(args.heads),
              "--rounds", str(args.rounds), "--steps", str(args.steps), "--threads", str(args.threads)]
    workers = []  # (name, models, items); timing order: this list's order
    for n in args.items:
        if "eager" in args.modes:
            workers.append((f"eager-{n}", [f"ours:{a}:eager" for a in algebras] + [f"transformer:{a}" for a in algebras], n))
        if "compiled" in args.modes and (args.compiled_items is None or n in args.compiled_items):
            workers += [(f"compiled-{a}-{n}", [f"ours:{a}:compiled"], n) for a in algebras]
        for v in args.variants:  # ALGEBRA:LINEAR/BILINEAR@ITEMS, compiled
            spec, at = v.split("@")
            if int(at) == n:
                a, kernels = spec.split(":")
                workers.append((f"variant-{a}-{kernels.replace('/', '-')}-{n}", [f"ours:{a}:compiled:{kernels}"], n))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("TORCHINDUCTOR_COMPILE_THREADS", str(args.compile_threads))
    procs, checks = {}, []
    log = open(out / "workers.log", "w")
    for name, models, n in workers:
        cmd = [sys.executable, __file__, "--role", "worker", "--name", name, "--items", str(n), *common,
               "--ready", str(work / f"{name}.ready"), "--go", str(work / f"{name}.go"),
               "--result", str(work / f"{name}.json"), "--models", *models]
        procs[name] = subprocess.Popen(cmd, stdout=log, stderr=log, env=env, cwd=ROOT)
    if args.check:
        check_log = open(out / "check.log", "w")
        for a in algebras:
            cmd = [sys.executable, str(ROOT / "docs/scripts/gpu_check.py"), "--device", args.device, "--algebras", a,
                   "--out", str(work / f"check-{a}"), "--compile-configs", *args.check_compile_configs]
            checks.append(subprocess.Popen(cmd, stdout=check_log, stderr=subprocess.STDOUT, env=env, cwd=ROOT))
    print(f"# {len(procs)} workers, {len(checks)} checks started", flush=True)

    def elapsed():
        return time.monotonic() - start

    # build phase: wait for every worker to be ready (or dead) and the checks to end, up to --ready-by
    while elapsed() < args.ready_by:
        ready = [w for w in procs if (work / f"{w}.ready").exists() or procs[w].poll() is not None]
        if len(ready) == len(procs) and all(c.poll() is not None for c in checks):
            break
        time.sleep(0.5)
    print(f"# build phase over at {elapsed():.0f} s: "
          f"{sum((work / f'{w}.ready').exists() for w in procs)}/{len(procs)} workers ready, "
          f"{sum(c.poll() is not None for c in checks)}/{len(checks)} checks done", flush=True)
    for c in checks:  # the timing runs alone: a check still running now is reported as unfinished
        if c.poll() is None:
            c.kill()
    results = {"args": vars(args), "workers": {}, "build_phase_s": elapsed()}
    # timing phase: one worker at a time, in order; a late worker is timed once ready, until --deadline
    pending = list(procs)
    while pending and elapsed() < args.deadline:
        progressed = False
        for w in list(pending):
            p = procs[w]
            if p.poll() is not None and not (work / f"{w}.json").exists():
                results["workers"][w] = {"error": f"worker exited with {p.returncode} before timing"}
                pending.remove(w)
                continue
            if not (work / f"{w}.ready").exists():
                continue
            (work / f"{w}.go").write_text("go")
            t0 = elapsed()
            try:
                p.wait(timeout=max(1.0, args.deadline - elapsed()))
            except subprocess.TimeoutExpired:
                p.kill()
                results["workers"][w] = {"error": "timing ran past the deadline"}
                pending.remove(w)
                break
            res = work / f"{w}.json"
            results["workers"][w] = json.loads(res.read_text()) if res.exists() else {"error": f"exit {p.returncode}"}
            results["workers"][w]["timing_s"] = elapsed() - t0
            print(f"# timed {w} in {elapsed() - t0:.0f} s (at {elapsed():.0f} s)", flush=True)
            pending.remove(w)
            progressed = True
            (out / "results.json").write_text(json.dumps(results, indent=1))
            break  # back to the head of the order
        if not progressed:
            time.sleep(0.2)
    for w in pending:
        procs[w].kill()
        results["workers"].setdefault(w, {"error": "not ready or not timed before the deadline"})
    results["total_s"] = elapsed()
    if args.check:  # merge the per-algebra correctness files into one
        merged = {}
        for a in algebras:
            f = work / f"check-{a}" / "gpu_check.json"
            merged[a] = json.loads(f.read_text()) if f.exists() else {"error": "no result"}
        (out / "gpu_check.json").write_text(json.dumps(merged, indent=1))
    (out / "results.json").write_text(json.dumps(results, indent=1))
    _summary(results, algebras, args)
    return 0


def _summary(results, algebras, args) -> None:
    """Per item count: ours eager / compiled against the transformer matched to each algebra's FLOPs."""
    rows = []
    for w, r in results["workers"].items():
        rows += [dict(e, items=r["items"]) for e in r.get("entries", [])]
        if r.get("error") or r.get("errors"):
            print(f"- {w}: {r.get('error') or ''} {'; '.join(r.get('errors', []))}")

    def find(n, kind, a, mode="eager", kernels=None):
        return next((e for e in rows if e["items"] == n and e["kind"] == kind and e["algebra"] == a
                     and e["mode"] == mode and e["kernels"] == kernels), None)

    print(f"\ndevice={args.device} dtype={args.dtype} batch={args.batch} blocks={args.blocks} mv={args.mv_channels} "
          f"s={args.s_channels} heads={args.heads}; {args.rounds} rounds x {args.steps} steps; median tokens/s "
          f"(forward+backward+SGD), ratio to the transformer with the same nominal FLOPs per token")
    print("| items | algebra | GFLOP/token | eager | compiled | transformer (d) | eager / tf | compiled / tf "
          "| compile s | peak GiB eager/compiled/tf |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in args.items:
        for a in algebras:
            eager, comp, tf = find(n, "ours", a), find(n, "ours", a, "compiled"), find(n, "transformer", a)
            flops = (eager or comp or {}).get("flops_per_token")

            def ratio(e):
                return f"{e['median'] / tf['median']:.2f}" if e and tf and e["median"] and tf["median"] else "-"

            d = tf["label"].split()[1] if tf else "-"
            peak = "/".join(f"{e['peak_mem_gib']:.1f}" if e else "-" for e in (eager, comp, tf))
            compile_s = f"{comp['compile_s']:.0f}" if comp else "-"
            print(f"| {n:,} | {a} | {flops / 1e9 if flops else 0:.3f} | {_fmt_rate(eager and eager['median'])} "
                  f"| {_fmt_rate(comp and comp['median'])} | {_fmt_rate(tf and tf['median'])} ({d}) | {ratio(eager)} "
                  f"| {ratio(comp)} | {compile_s} | {peak} |")
    variants = [e for e in rows if e["kernels"]]
    if variants:
        print("\n| items | variant (compiled) | tokens/s | x default compiled | compile s |\n|---|---|---|---|---|")
        for e in variants:
            base = find(e["items"], "ours", e["algebra"], "compiled")
            x = f"{e['median'] / base['median']:.2f}" if base and e["median"] and base["median"] else "-"
            print(f"| {e['items']:,} | {e['label']} | {_fmt_rate(e['median'])} | {x} | {e['compile_s']:.0f} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--role", default="coordinator", choices=["coordinator", "worker"])
    p.add_argument("--algebras", nargs="+", default=None)
    p.add_argument("--modes", nargs="+", default=["eager", "compiled"], choices=["eager", "compiled"])
    p.add_argument("--variants", nargs="*", default=[],
                   help="extra compiled models ALGEBRA:LINEAR/BILINEAR@ITEMS, e.g. projective:sparse/xor@16384")
    p.add_argument("--items", nargs="+", type=int, default=[1024, 4096, 16384])
    p.add_argument("--compiled-items", nargs="+", type=int, default=None,
                   help="item counts at which to time compiled models (default: all of --items)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--mv-channels", type=int, default=16)
    p.add_argument("--s-channels", type=int, default=32)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--check", action="store_true", help="also run gpu_check.py per algebra in the build phase")
    p.add_argument("--check-compile-configs", nargs="*", default=["auto/auto", "sparse/xor"],
                   help="gpu_check.py's --compile-configs")
    p.add_argument("--compile-threads", type=int, default=2, help="TORCHINDUCTOR_COMPILE_THREADS per worker")
    p.add_argument("--ready-by", type=float, default=300, help="seconds: end of the build phase")
    p.add_argument("--deadline", type=float, default=450, help="seconds: no timing after this")
    p.add_argument("--out", default="gpu_benchmark_out")
    p.add_argument("--work", default="/tmp/gpu_benchmark_work")
    # worker only
    p.add_argument("--name")
    p.add_argument("--models", nargs="+")
    p.add_argument("--ready")
    p.add_argument("--go")
    p.add_argument("--result")
    args = p.parse_args(argv)
    if args.role == "worker":
        args.items = args.items[0]
        return _worker(args)
    return _coordinator(args)


if __name__ == "__main__":
    sys.exit(main())
