"""Command line: ``python -m experiments.scaling {run,analyze,list} ...`` (installed as ``gatr-scaling``)

    python -m experiments.scaling list --preset quick
    python -m experiments.scaling run --preset quick --out runs/quick [--shard i/n] [--train-fn pkg.mod.fn]
    python -m experiments.scaling run --config my.yaml --out runs/mine
    python -m experiments.scaling run --preset paper --out runs/paper --launcher submitit --partition gpu
    python -m experiments.scaling analyze runs/quick
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

from experiments.cli import examples, prog

from .grid import ConfigError, available_presets, estimate_flops, load_config, parse_shard, run_id, shard_specs
from .execution import optimiser_steps
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


EXAMPLES = ("list --preset quick",
            "run --preset quick --out runs/quick --analyze",
            "run --preset paper --out runs/paper --shard 0/8          # one of 8 jobs of any scheduler",
            "run --preset paper --out runs/paper --launcher submitit --partition gpu --gpus-per-run 1 "
            "--timeout-min 240",
            "analyze runs/quick",
            "compare runs/quick-cosine runs/quick   # two schedules of one grid side by side")

#: ``run`` options of the submitit launcher (dest names), refused with ``--launcher local``.
SUBMITIT_OPTIONS = ("submitit_executor", "partition", "gpus_per_run", "cpus_per_run", "mem_gb", "timeout_min",
                    "array_parallelism", "slurm_folder", "slurm_param", "no_wait")


def _add_launcher_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--launcher", default="local",
                   help="local: train in processes on this machine (default); submitit: submit the runs as one "
                        "SLURM job array with submitit")
    g = p.add_argument_group("submitit launcher (--launcher submitit)")
    g.add_argument("--submitit-executor", default=None,
                   help="slurm (default): a SLURM job array; local: processes on this machine, all at once (tests)")
    g.add_argument("--partition", default=None, help="SLURM partition (default: the cluster's)")
    g.add_argument("--gpus-per-run", default=None, help="GPUs per run (default 1 on SLURM, 0 locally)")
    g.add_argument("--cpus-per-run", default=None, help="CPUs per run (default: the cluster's)")
    g.add_argument("--mem-gb", default=None, help="memory per run in GB (default: the cluster's)")
    g.add_argument("--timeout-min", default=None, help="time limit per run in minutes (default 60)")
    g.add_argument("--array-parallelism", default=None, help="runs of the array running at once (default 64)")
    g.add_argument("--slurm-folder", default=None,
                   help="submitit's job scripts and logs (default OUT/submitit/%%j; %%j is the job id)")
    g.add_argument("--slurm-param", action="append", default=None, metavar="KEY=VALUE",
                   help="any other sbatch setting by submitit's name, e.g. account=myproj, qos=high (repeatable)")
    g.add_argument("--no-wait", action="store_true",
                   help="return after submitting; `analyze OUT` collects the results when the jobs have ended")


def _submitit_options(args):
    """SubmititOptions from the ``run`` arguments; one-line errors for options of the other launcher."""
    given = [f"--{d.replace('_', '-')}" for d in SUBMITIT_OPTIONS if getattr(args, d) not in (None, False)]
    if args.launcher not in ("local", "submitit"):
        raise ConfigError(f"--launcher: expected local or submitit, got {args.launcher!r}")
    if args.launcher == "local":
        if given:
            raise ConfigError(f"{', '.join(given)} apply to --launcher submitit only")
        return None
    if args.jobs is not None:
        raise ConfigError("--jobs applies to --launcher local only (with submitit every run is one array task)")
    if args.no_wait and args.analyze:
        raise ConfigError("--analyze needs the runs finished: drop --no-wait, or run `analyze OUT` later")
    from .launchers import SubmititOptions

    kwargs = {k: getattr(args, k) for k in ("partition", "gpus_per_run", "cpus_per_run", "mem_gb", "timeout_min",
                                            "array_parallelism") if getattr(args, k) is not None}
    return SubmititOptions(executor=args.submitit_executor or "slurm", folder=args.slurm_folder,
                           slurm_params=SubmititOptions.parse_slurm_params(args.slurm_param), **kwargs)


def _parser() -> argparse.ArgumentParser:
    """The command line's parser: subcommands ``run``, ``analyze``, ``compare`` and ``list``."""
    program = prog("experiments.scaling", "gatr-scaling")
    ap = argparse.ArgumentParser(prog=program, description="Scaling-law studies: run grids, fit power laws, report.",
                                 epilog=examples(program, *EXAMPLES),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_run = sub.add_parser("run", help="run (a shard of) a study", epilog=examples(program, *EXAMPLES[1:4]),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
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
    _add_launcher_args(p_run)
    p_an = sub.add_parser("analyze", help="fit and plot a study directory (all shards)")
    p_an.add_argument("out", help="study output directory")
    p_an.add_argument("--n-boot", type=int, default=500, help="bootstrap resamples")
    p_cmp = sub.add_parser("compare", help="two studies of one grid side by side (e.g. two schedules): matched "
                                           "configs, test-loss ratios B / A with intervals")
    p_cmp.add_argument("a", help="study directory A")
    p_cmp.add_argument("b", help="study directory B")
    p_cmp.add_argument("--n-boot", type=int, default=500, help="bootstrap resamples")
    p_cmp.add_argument("--markdown", default=None, help="also write the table to this file")
    p_ls = sub.add_parser("list", help="print the grid: run ids and estimated FLOPs")
    _add_config_args(p_ls)
    return ap


def _list(args) -> int:
    """``list``: the grid's run ids with their estimated FLOPs, the pilot's first round and the step counts."""
    cfg = _config(args)
    specs = cfg.expand(collections.defaultdict(lambda: "pilot") if cfg.pilot is not None else None)
    mine = shard_specs(specs, parse_shard(args.shard))
    print(f"# study {cfg.name!r}: {len(specs)} runs" + (f", shard {args.shard}: {len(mine)}" if args.shard else ""))
    if cfg.pilot is not None:
        from .pilot import pilot_round

        first = pilot_round(cfg, "/nonexistent")
        print(f"# learning-rate pilot first: {len(first)} runs (more where an optimum sits at an edge), "
              f"{sum(estimate_flops(s) for s in first):.3g} FLOPs; the grid's lr is the pilot's choice")
    print(f"{'run_id':64s} {'est. FLOPs':>11s}")
    total = 0.0
    for s in mine:
        f = estimate_flops(s)
        total += f
        print(f"{run_id(s):64s} {f:11.3g}")
    print(f"# total nominal training FLOPs: {total:.3g} (the models' own counts; the training code "
          f"records each run's)")
    dedicated, trained = optimiser_steps(mine)
    print(f"# optimiser steps: {dedicated:,} as dedicated runs, {trained:,} trained (WSD runs of one "
          f"family, size and seed share their trunk)")
    return 0


def _run(args) -> int:
    """``run``: train (a shard of) a study locally or as a submitit job array; 1 if a run failed."""
    cfg = _config(args)
    options = _submitit_options(args)
    gen = None if str(args.generate_fn).lower() == "none" else args.generate_fn
    common = dict(shard=parse_shard(args.shard), train_fn=args.train_fn, generate_fn=gen,
                  progress=not args.no_progress, force=args.force)
    if options is None:
        recs = run_study(cfg, args.out, jobs=args.jobs if args.jobs is not None else min(os.cpu_count() or 1, 4),
                         **common)
    else:
        from .launchers import run_study_submitit

        recs = run_study_submitit(cfg, args.out, options, wait=not args.no_wait, **common)
    if args.analyze:
        from .report import analyze

        analyze(args.out)
    return 0 if all(r.get("status") in ("ok", "skipped", "submitted") for r in recs) else 1


def _compare(args) -> int:
    """``compare``: two studies of one grid side by side, printed (and written with ``--markdown``)."""
    from .compare import compare_studies, render_comparison

    if args.n_boot < 1:
        raise ConfigError(f"--n-boot: expected a positive integer, got {args.n_boot}")
    text = render_comparison(compare_studies(args.a, args.b, n_boot=args.n_boot))
    print(text, end="")
    if args.markdown:
        from .results import atomic_write_text

        atomic_write_text(args.markdown, text)
    return 0


def _analyze(args) -> int:
    """``analyze``: fit, plot and report a study directory."""
    from .report import analyze

    analyze(args.out, n_boot=args.n_boot)
    return 0


#: the subcommands' functions
COMMANDS = {"list": _list, "run": _run, "compare": _compare, "analyze": _analyze}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 some run failed, 2 bad input).

    Parameters
    ----------
    argv : list of str, optional
        Arguments after the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code.
    """
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.cmd](args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # stdout closed early (`list ... | head`): not an --out problem
        raise
    except OSError as e:  # --out is a file, under a file, not writable, ...
        print(f"error: {getattr(args, 'out', '')}: {e.strerror or e}", file=sys.stderr)
        return 2


def cli(argv: list[str] | None = None) -> int:
    """Entry point of ``gatr-scaling`` and ``python -m experiments.scaling``: :func:`main`, quiet on a
    closed pipe (e.g. ``list ... | head``)."""
    try:
        return main(argv)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 0


if __name__ == "__main__":
    sys.exit(cli())
