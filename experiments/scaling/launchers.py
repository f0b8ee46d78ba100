"""Run a study's runs as a SLURM job array through submitit (or submitit's local executor).

    python -m experiments.scaling run --preset paper --out runs/paper --launcher submitit \\
        --partition gpu --gpus-per-run 1 --timeout-min 240 --array-parallelism 32

The plan is the local launcher's (:func:`~experiments.scaling.runner.plan_study`: the config check,
the data generated once in this process, finished runs skipped unless ``--force``), and every array
task executes one run with :func:`~experiments.scaling.execution.run_one`, under the same per-run lock,
writing the same ``result.json``; the tables are written as the local launcher writes them. The study
directory must therefore be on a file system that the compute nodes share, and the train function a
dotted path (or a picklable function) that the jobs can import.

``--submitit-executor local`` runs the array as processes on this machine (submitit's
``LocalExecutor``, all tasks at once: meant for tests and small sweeps).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from experiments.cli import prog

from .execution import _log, run_one
from .grid import ConfigError, StudyConfig, run_id
from .results import write_json
from .runner import DEFAULT_GENERATE_FN, DEFAULT_TRAIN_FN, StudyPlan, plan_study, record_runs, study_config

__all__ = ["EXECUTORS", "LauncherError", "SubmititOptions", "make_executor", "run_study_submitit"]

#: Values of ``--submitit-executor``: submitit's cluster names.
EXECUTORS = ("slurm", "local")


class LauncherError(ConfigError):
    """A launcher option that cannot work (the CLI prints one line and exits with code 2)."""


def _positive(value, flag: str, kind=int, allow_zero: bool = False):
    """``value`` as a positive (or non-negative) ``kind``, or None; a one-line error otherwise."""
    if value is None:
        return None
    try:
        number = kind(value)
        if kind is int and float(value) != number:
            raise ValueError
    except (TypeError, ValueError):
        raise LauncherError(f"{flag}: expected a {'non-negative' if allow_zero else 'positive'} "
                            f"{'integer' if kind is int else 'number'}, got {value!r}") from None
    if number < 0 or (number == 0 and not allow_zero) or not math.isfinite(number):
        raise LauncherError(f"{flag}: expected a {'non-negative' if allow_zero else 'positive'} "
                            f"{'integer' if kind is int else 'number'}, got {value!r}")
    return number


@dataclass(frozen=True)
class SubmititOptions:
    """Where and how the array runs; validated on construction (a :class:`LauncherError` names the flag).

    Parameters
    ----------
    executor : {"slurm", "local"}
        submitit's cluster: a SLURM job array (``sbatch`` must be on PATH), or processes on this machine.
    partition : str, optional
        SLURM partition (``--partition``); the cluster's default if None.
    gpus_per_run : int, optional
        GPUs per array task (``--gpus-per-run``); default 1 on SLURM, 0 locally.
    cpus_per_run : int, optional
        CPUs per array task (``--cpus-per-run``); the cluster's default if None.
    mem_gb : float, optional
        Memory per array task in GB (``--mem-gb``).
    timeout_min : int
        Time limit of each task in minutes (``--timeout-min``).
    array_parallelism : int
        Tasks of the array running at once (``--array-parallelism``; SLURM's ``%K``).
    folder : str or Path, optional
        submitit's folder for job scripts, pickles and logs (``--slurm-folder``; default
        ``OUT/submitit``); ``%j`` is replaced by the job id.
    slurm_params : dict
        More sbatch settings by submitit's names (``--slurm-param account=abc --slurm-param qos=high``).
    poll_s : float, optional
        Seconds between status checks while waiting (default 10 on SLURM, 1 locally).
    """

    executor: str = "slurm"
    partition: str | None = None
    gpus_per_run: int | None = None
    cpus_per_run: int | None = None
    mem_gb: float | None = None
    timeout_min: int = 60
    array_parallelism: int = 64
    folder: str | Path | None = None
    slurm_params: dict = field(default_factory=dict)
    poll_s: float | None = None

    def __post_init__(self):
        if self.executor not in EXECUTORS:
            raise LauncherError(f"--submitit-executor: expected one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        fix = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 - frozen dataclass
        fix("gpus_per_run", _positive(self.gpus_per_run, "--gpus-per-run", allow_zero=True))
        fix("cpus_per_run", _positive(self.cpus_per_run, "--cpus-per-run"))
        fix("mem_gb", _positive(self.mem_gb, "--mem-gb", kind=float))
        fix("timeout_min", _positive(self.timeout_min, "--timeout-min"))
        fix("array_parallelism", _positive(self.array_parallelism, "--array-parallelism"))
        fix("poll_s", _positive(self.poll_s, "poll_s", kind=float))
        if self.executor == "local" and (self.partition or self.slurm_params):
            raise LauncherError("--partition and --slurm-param apply to --submitit-executor slurm only")

    @staticmethod
    def parse_slurm_params(items: list[str] | None) -> dict:
        """``["account=abc", "qos=high"]`` -> ``{"account": "abc", "qos": "high"}`` (one-line errors)."""
        out = {}
        for item in items or ():
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise LauncherError(f"--slurm-param: expected KEY=VALUE (e.g. account=myproj), got {item!r}")
            out[key.strip().replace("-", "_")] = value
        return out


def make_executor(options: SubmititOptions, out_dir: str | Path, name: str = "scaling"):
    """A configured ``submitit.AutoExecutor`` for ``options`` (its folder defaults to ``out_dir/submitit``).

    Raises
    ------
    LauncherError
        submitit is not installed, ``sbatch`` is missing for the SLURM executor, or submitit refuses a
        setting (e.g. an unknown ``--slurm-param``).
    """
    try:
        import submitit
    except ImportError:
        raise LauncherError("--launcher submitit needs the submitit package: pip install submitit "
                            "(or pip install -e \".[cluster]\")") from None
    if options.executor == "slurm" and shutil.which("sbatch") is None:
        raise LauncherError("--submitit-executor slurm needs SLURM's sbatch on PATH (not found here); use "
                            "--submitit-executor local on this machine, or --shard i/n under another scheduler")
    folder = Path(options.folder) if options.folder is not None else Path(out_dir) / "submitit" / "%j"
    gpus = options.gpus_per_run if options.gpus_per_run is not None else int(options.executor == "slurm")
    params = {"name": name, "timeout_min": options.timeout_min, "nodes": 1, "tasks_per_node": 1,
              "gpus_per_node": gpus, "cpus_per_task": options.cpus_per_run, "mem_gb": options.mem_gb}
    if options.executor == "slurm":
        params.update({"slurm_partition": options.partition, "slurm_array_parallelism": options.array_parallelism})
        params.update({f"slurm_{k}": v for k, v in options.slurm_params.items()})
    try:
        executor = submitit.AutoExecutor(folder=folder.resolve(), cluster=options.executor)
        executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    except (NameError, ValueError, TypeError, AssertionError) as e:
        raise LauncherError(f"submitit refused the settings: {' '.join(str(e).split())[:300]}") from None
    finally:
        _drop_unreplaced_folder(folder)
    return executor


def _drop_unreplaced_folder(folder: Path) -> None:
    """submitit also creates its folder as named, ``%j`` unreplaced, though every job writes into its
    own; an empty one is removed so that OUT/submitit holds only the jobs' folders."""
    literal = Path(folder).resolve()
    if "%j" in literal.name and literal.is_dir() and not any(literal.iterdir()):
        literal.rmdir()


def _wait(jobs: list, specs: list[dict], poll_s: float) -> Iterator[tuple[dict, dict]]:
    """Yield ``(spec, record)`` as the array's tasks end. A task that died without a record (time limit,
    node failure, cancelled) is reported as failed; it wrote no result.json, so the next invocation
    redoes it."""
    from submitit.helpers import as_completed

    spec_of = {id(job): spec for job, spec in zip(jobs, specs)}
    for job in as_completed(jobs, poll_frequency=poll_s):
        spec = spec_of[id(job)]
        try:
            record = job.result()
        except Exception as e:  # noqa: BLE001 - submitit's UncompletedJobError, FailedJobError, ...
            first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
            record = {"run_id": run_id(spec), "status": "failed", "spec": spec, "error_type": type(e).__name__,
                      "error_message": f"job {job.job_id} ended without a result ({first}); logs: {job.paths.stderr}",
                      "wall_time_s": None}
        yield spec, record


def run_study_submitit(config: StudyConfig | dict | str | Path, out_dir: str | Path, options: SubmititOptions,
                       shard: str | tuple | None = None, train_fn: str | Callable = DEFAULT_TRAIN_FN,
                       generate_fn: str | Callable | None = DEFAULT_GENERATE_FN, progress: bool = True,
                       force: bool = False, wait: bool = True) -> list[dict]:
    """Run (this shard of) a study as one submitit job array; the counterpart of ``run_study``.

    Parameters
    ----------
    config, out_dir, shard, train_fn, generate_fn, progress, force
        As in :func:`experiments.scaling.runner.run_study`. ``train_fn`` runs in the jobs: give a
        dotted path (or a module-level function the jobs can import).
    options : SubmititOptions
        Executor, resources and array settings.
    wait : bool
        Wait for the array and write the tables (default), or return right after submitting.

    Returns
    -------
    list of dict
        Result records of this shard's runs: the finished ones kept, then one per task. Without
        ``wait``, the submitted runs have status "submitted" and a ``job_id``.
    """
    cfg = study_config(config)
    executor = make_executor(options, out_dir, name=f"scaling-{cfg.name}")  # bad settings fail before the data
    plan: StudyPlan = plan_study(cfg, out_dir, shard, train_fn, generate_fn, progress=progress, force=force)
    if not plan.todo:
        return record_runs(plan, iter(()), progress=progress)
    job_fn = train_fn if isinstance(train_fn, str) else plan.train_fn
    n = len(plan.todo)
    out, data = str(plan.out_dir.resolve()), str(plan.data_dir.resolve())
    jobs = executor.map_array(run_one, plan.todo, [data] * n, [out] * n, [job_fn] * n, [force] * n)
    submitted = [{"run_id": run_id(s), "job_id": j.job_id} for s, j in zip(plan.todo, jobs)]
    write_json(plan.out_dir / "submitit" / "submitted.json", submitted)
    _drop_unreplaced_folder(executor.folder)
    array = str(jobs[0].job_id).split("_")[0]
    if progress:
        _log(f"[scaling] submitted {n} runs as a {options.executor} job array ({array}); "
             f"logs in {executor.folder}")
    if not wait:
        if progress:
            _log(f"[scaling] not waiting: when the jobs have ended, `{prog('experiments.scaling', 'gatr-scaling')} "
                 f"analyze {plan.out_dir}` collects "
                 f"the results (rerunning this command skips finished runs and redoes failed ones)")
        return record_runs(plan, iter(()), progress=False) + [
            {**s, "status": "submitted", "spec": spec} for s, spec in zip(submitted, plan.todo)]
    poll = options.poll_s if options.poll_s is not None else (10.0 if options.executor == "slurm" else 1.0)
    try:
        return record_runs(plan, _wait(jobs, plan.todo, poll), progress=progress)
    except KeyboardInterrupt:
        _log(f"[scaling] stopped waiting; the jobs keep running (scancel {array} stops them). Rerunning this "
             f"command, or `analyze {plan.out_dir}`, picks up their results")
        raise
    finally:
        _drop_unreplaced_folder(executor.folder)

