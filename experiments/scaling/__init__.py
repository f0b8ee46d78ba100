"""Scaling-law studies: grids of runs (grid), running them (runner), fits (fit), plots and reports.

    python -m experiments.scaling list --preset quick
    python -m experiments.scaling run --preset quick --out runs/quick [--shard i/n]
    python -m experiments.scaling analyze runs/quick

Training of one run is delegated to a ``train_fn(spec, data_dir, run_dir) -> dict`` (see runner).
Heavy modules (scipy, matplotlib) are imported only by ``fit``/``plots``/``report``.
"""

from .grid import (SPEC_KEYS, ConfigError, StudyConfig, available_presets, load_config,
                   parse_shard, run_id, shard_specs)
from .results import collect_results
from .runner import DEFAULT_TRAIN_FN, run_study

__all__ = ["SPEC_KEYS", "ConfigError", "StudyConfig", "available_presets", "load_config",
           "parse_shard", "run_id", "shard_specs", "DEFAULT_TRAIN_FN", "collect_results", "run_study", "analyze"]


def analyze(out_dir, **kwargs):
    """Analyse a study directory (see :func:`experiments.scaling.report.analyze`)."""
    from .report import analyze as _analyze

    return _analyze(out_dir, **kwargs)
