"""Command line: ``python -m experiments.scaling {run,analyze,list} ...``

    python -m experiments.scaling list --preset quick
    python -m experiments.scaling run --preset quick --out runs/quick [--shard i/n] [--train-fn pkg.mod.fn]
    python -m experiments.scaling run --config my.yaml --out runs/mine
    python -m experiments.scaling analyze runs/quick
"""

from __future__ import annotations

import argparse
import os
import sys

from .grid import ConfigError, available_presets, estimate_flops, load_config, parse_shard, run_id, shard_specs
from .runner import DEFAULT_GENERATE_FN, DEFAULT_TRAIN_FN, run_study


def _config(args) -> object:
    if args.config is not None and args.preset is not None:
        raise ConfigError("give either --preset or --config, not both")
    if args.config is None and args.preset is None:
        args.preset = "quick"
    return load_config(preset=args.preset, config=args.config)


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None, help=f"preset name (one of: {', '.join(available_presets())}; "
                                                  "default quick)")
    p.add_argument("--config", default=None, help="study config YAML file (instead of --preset)")
    p.add_argument("--shard", default=None, help="run only shard i/n of the grid (0 <= i < n)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.scaling",
                                 description="Scaling-law studies: run grids, fit power laws, report.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_run = sub.add_parser("run", help="run (a shard of) a study")
    _add_config_args(p_run)
    p_run.add_argument("--out", required=True, help="study output directory")
    p_run.add_argument("--train-fn", default=DEFAULT_TRAIN_FN, help="dotted path of the train function")
    p_run.add_argument("--generate-fn", default=DEFAULT_GENERATE_FN,
                       help="dotted path of the data generator, or 'none' to skip data generation")
    p_run.add_argument("--force", action="store_true", help="redo runs that already finished")
    p_run.add_argument("--no-progress", action="store_true")
    p_run.add_argument("--analyze", action="store_true", help="analyze the study directory afterwards")
    p_run.add_argument("--jobs", type=int, default=None,
                       help="runs trained at once in worker processes (default: the CPU count, at most 4; "
                            "each run uses one thread unless its spec sets num_threads)")
    p_an = sub.add_parser("analyze", help="fit and plot a study directory (all shards)")
    p_an.add_argument("out", help="study output directory")
    p_an.add_argument("--n-boot", type=int, default=500, help="bootstrap resamples")
    p_ls = sub.add_parser("list", help="print the grid: run ids and estimated FLOPs")
    _add_config_args(p_ls)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "list":
            cfg = _config(args)
            specs = cfg.expand()
            mine = shard_specs(specs, parse_shard(args.shard))
            print(f"# study {cfg.name!r}: {len(specs)} runs" + (f", shard {args.shard}: {len(mine)}" if args.shard else ""))
            print(f"{'run_id':64s} {'est. FLOPs':>11s}")
            total = 0.0
            for s in mine:
                f = estimate_flops(s)
                total += f
                print(f"{run_id(s):64s} {f:11.3g}")
            print(f"# total nominal training FLOPs: {total:.3g} (the models' own counts; the training code "
                  f"records each run's)")
            return 0
        if args.cmd == "run":
            cfg = _config(args)
            gen = None if str(args.generate_fn).lower() == "none" else args.generate_fn
            recs = run_study(cfg, args.out, shard=parse_shard(args.shard), train_fn=args.train_fn,
                             generate_fn=gen, progress=not args.no_progress, force=args.force,
                             jobs=args.jobs if args.jobs is not None else min(os.cpu_count() or 1, 4))
            if args.analyze:
                from .report import analyze

                analyze(args.out)
            return 0 if all(r.get("status") in ("ok", "skipped") for r in recs) else 1
        if args.cmd == "analyze":
            from .report import analyze

            analyze(args.out, n_boot=args.n_boot)
            return 0
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # --out is a file, under a file, not writable, ...
        print(f"error: {getattr(args, 'out', '')}: {e.strerror or e}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # e.g. `list ... | head`
        sys.stderr.close()
        sys.exit(0)
