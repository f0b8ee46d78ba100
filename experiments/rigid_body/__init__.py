"""Rigid-body interaction data simulated with MuJoCo.

Modules
-------
simulate   : scene sampling and MuJoCo simulation (:class:`SimConfig`)
generate   : parallel, deterministic, resumable dataset generation (CLI + :func:`generate_dataset`)
storage    : ``.npz`` shard / manifest format
dataset    : :class:`RigidBodyDataset`, :class:`RigidBodyDataModule`, rollout helpers
transforms : batched E(3) transforms of samples (augmentation, E(3) test set)

Submodules are imported lazily so that ``import experiments.rigid_body`` stays cheap.
"""

__all__ = ["simulate", "generate", "storage", "dataset", "transforms"]
