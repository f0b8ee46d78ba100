"""Lightning training of all model families on the rigid-body data.

module : :class:`BodyDynamicsModule` (loss, metrics, optimiser / schedule)
data   : :class:`TrainingDataModule` (exact resume, in-process cache, optional auto-generation)

Their settings, defaults and validation: :mod:`experiments.settings`.
run    : :func:`train_run`, the scaling sweep's ``train_fn(spec, data_dir, run_dir) -> dict``
evaluation : :func:`window_errors` / :func:`score`, whole-split scoring (contact vs contact-free)

Command line: ``python -m experiments.train fit --config experiments/configs/gatr_conformal.yaml``.
"""

from .data import TrainingDataModule
from .module import BodyDynamicsModule, keypoint_mse, valid_algebras, valid_families, validate_family_algebra
from .evaluation import score, window_errors
from .run import train_branches, train_run

__all__ = ["BodyDynamicsModule", "TrainingDataModule", "train_run", "train_branches", "window_errors", "score", "keypoint_mse",
           "valid_algebras", "valid_families", "validate_family_algebra"]
