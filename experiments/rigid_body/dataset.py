"""PyTorch dataset and Lightning data module for rigid-body interaction data.

A sample is the state of all ``N`` bodies at frame ``t`` and the bodies'
keypoints at frame ``t + horizon``.  Sample dict (float32 unless noted):

========================  ===========  ==================================================
key                       shape        meaning
========================  ===========  ==================================================
``positions``             (N,3)        centre of mass at frame t, world [m]
``axes``                  (N,3,3)      ``axes[i, j]`` = body i's j-th principal axis (unit
                                       vector, world frame) = column j of the body-to-world
                                       rotation, i.e. ``axes[i] = R_i^T`` (rows are axes)
``velocity``              (N,3)        linear velocity, world [m/s]
``angular_velocity``      (N,3)        angular velocity, world [rad/s] (pseudovector)
``sizes``                 (N,3)        semi-axis extents along the axes [m]
``mass``                  (N,)         [kg]
``shape``                 (N,) int64   0 box, 1 sphere, 2 capsule, 3 ellipsoid
``target_keypoints``      (N,4,3)      frame t+k: centre, then ``centre + axes[i,j]*sizes[i,j]``
``target_positions``      (N,3)        frame t+k centre
``target_axes``           (N,3,3)      frame t+k axes (same convention)
``trajectory``            () int64     trajectory index within the whole dataset
``frame``                 () int64     t
========================  ===========  ==================================================

Splits are made BY TRAJECTORY with a seeded permutation (never by frame).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import lightning as L
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from .simulate import quat_to_matrix
from .storage import load_arrays
from .transforms import random_e3, transform_sample

__all__ = [
    "SPLITS",
    "split_indices",
    "keypoints",
    "RigidBodyDataset",
    "RigidBodyDataModule",
    "rollout_targets",
    "teacher_forced_rollout_error",
]

SPLITS = ("train", "val", "test")


def split_indices(num_trajectories: int, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> dict:
    """Deterministic split of trajectory indices.

    Parameters
    ----------
    num_trajectories : M
    fractions : (train, val, test) fractions; val and test sizes are rounded,
        train gets the rest
    seed : permutation seed

    Returns
    -------
    dict ``{"train": ndarray, "val": ndarray, "test": ndarray}`` of disjoint
    trajectory indices covering ``range(M)``; the train array is in permuted order
    so that ``train[:m]`` is a nested family of subsets as ``m`` grows.
    """
    f = np.asarray(fractions, dtype=float)
    if f.shape != (3,) or np.any(f < 0) or f.sum() <= 0:
        raise ValueError(f"invalid split fractions {fractions}")
    f = f / f.sum()
    perm = np.random.default_rng(seed).permutation(num_trajectories)
    n_val = int(round(f[1] * num_trajectories))
    n_test = int(round(f[2] * num_trajectories))
    n_train = num_trajectories - n_val - n_test
    return {
        "train": perm[:n_train],
        "val": np.sort(perm[n_train:n_train + n_val]),
        "test": np.sort(perm[n_train + n_val:]),
    }


def keypoints(positions: torch.Tensor, axes: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """Centre and three axis tips.

    Parameters
    ----------
    positions : (..., N, 3)
    axes : (..., N, 3, 3), rows are axes
    sizes : (..., N, 3)

    Returns
    -------
    Tensor, shape (..., N, 4, 3)
    """
    tips = positions.unsqueeze(-2) + axes * sizes.unsqueeze(-1)
    return torch.cat([positions.unsqueeze(-2), tips], dim=-2)


class RigidBodyDataset(Dataset):
    """(state at frame t, keypoints at frame t + horizon) samples of one split.

    Parameters
    ----------
    source : path of a generated dataset directory, or a dict of arrays as
        returned by :func:`storage.load_arrays` (leading dim = trajectories)
    split : "train", "val", "test" or "all"
    horizon : k, prediction horizon in frames (>= 1)
    max_trajectories : keep only the first this many trajectories of the split
        (for train: nested subsets, for data-scaling sweeps)
    split_fractions, split_seed : see :func:`split_indices`
    e3_seed : if given, every sample ``i`` is transformed by a fixed random E(3)
        element drawn with this seed (an E(3)-transformed test set)
    reflections, translation_scale : passed to :func:`transforms.random_e3`
    frame_step : use every ``frame_step``-th start frame
    """

    def __init__(
        self,
        source: str | os.PathLike | dict,
        split: str = "train",
        horizon: int = 5,
        max_trajectories: int | None = None,
        split_fractions=(0.8, 0.1, 0.1),
        split_seed: int = 0,
        e3_seed: int | None = None,
        reflections: bool = True,
        translation_scale: float = 1.0,
        frame_step: int = 1,
    ):
        arrays = load_arrays(source)[0] if isinstance(source, (str, os.PathLike)) else source
        num, frames = arrays["positions"].shape[:2]
        if not 1 <= horizon < frames:
            raise ValueError(f"horizon must be in [1, {frames - 1}] for {frames} frames, got {horizon}")
        if split == "all":
            traj = np.arange(num)
        elif split in SPLITS:
            traj = split_indices(num, split_fractions, split_seed)[split]
        else:
            raise ValueError(f"split must be one of {SPLITS + ('all',)}, got {split!r}")
        if max_trajectories is not None:
            if max_trajectories < 1:
                raise ValueError("max_trajectories must be positive")
            traj = traj[:max_trajectories]
        self.split, self.horizon, self.frames = split, int(horizon), int(frames)
        self.trajectory_ids = torch.as_tensor(np.asarray(arrays["index"])[traj], dtype=torch.int64)

        def f32(key):
            return torch.as_tensor(np.asarray(arrays[key])[traj], dtype=torch.float32)

        self.positions = f32("positions")  # (M,T,N,3)
        rot = quat_to_matrix(np.asarray(arrays["orientations"])[traj])  # (M,T,N,3,3) body->world
        self.axes = torch.as_tensor(np.swapaxes(rot, -1, -2), dtype=torch.float32)  # rows = axes
        self.velocity = f32("velocity")
        self.angular_velocity = f32("angular_velocity")
        self.sizes = f32("sizes")
        self.mass = f32("mass")
        self.shape = torch.as_tensor(np.asarray(arrays["shape"])[traj], dtype=torch.int64)

        starts = torch.arange(0, frames - horizon, frame_step)
        self._index = torch.stack(torch.meshgrid(torch.arange(len(traj)), starts, indexing="ij"), -1).reshape(-1, 2)
        self.e3 = None
        if e3_seed is not None:
            self.e3 = random_e3(len(self._index), generator=int(e3_seed), reflections=reflections,
                                translation_scale=translation_scale)

    @property
    def num_trajectories(self) -> int:
        return len(self.trajectory_ids)

    def __len__(self) -> int:
        return len(self._index)

    def state(self, m, t) -> dict:
        """Untransformed sample for local trajectory ``m`` and start frame ``t``.

        ``m`` and ``t`` are ints (one sample) or int64 tensors of shape (B,)
        (a batch: every entry gets a leading dim B).
        """
        k = t + self.horizon
        return {
            "positions": self.positions[m, t],
            "axes": self.axes[m, t],
            "velocity": self.velocity[m, t],
            "angular_velocity": self.angular_velocity[m, t],
            "sizes": self.sizes[m],
            "mass": self.mass[m],
            "shape": self.shape[m],
            "target_keypoints": keypoints(self.positions[m, k], self.axes[m, k], self.sizes[m]),
            "target_positions": self.positions[m, k],
            "target_axes": self.axes[m, k],
            "trajectory": self.trajectory_ids[m],
            "frame": torch.as_tensor(t, dtype=torch.int64),
        }

    def __getitem__(self, i) -> dict:
        """Sample ``i`` (int), or a whole batch for a sequence/tensor of indices (B,).

        Batched indexing is vectorised and much faster than stacking single
        samples; :class:`RigidBodyDataModule` uses it via a ``BatchSampler``.
        """
        if isinstance(i, (int, np.integer)):
            m, t = (int(v) for v in self._index[i])
        else:
            i = torch.as_tensor(i, dtype=torch.int64)
            m, t = self._index[i].unbind(-1)
        sample = self.state(m, t)
        if self.e3 is not None:
            sample = transform_sample(sample, self.e3[0][i], self.e3[1][i])
        return sample


def rollout_targets(dataset: RigidBodyDataset, trajectory: int, t0: int, steps: int) -> torch.Tensor:
    """True keypoints at frames ``t0 + k, t0 + 2k, ..., t0 + steps*k`` (k = horizon).

    Parameters
    ----------
    dataset : RigidBodyDataset (untransformed frames are used)
    trajectory : local trajectory index in ``range(dataset.num_trajectories)``
    t0 : start frame
    steps : number of horizon steps; requires ``t0 + steps*k < frames``

    Returns
    -------
    Tensor, shape (steps, N, 4, 3)
    """
    k = dataset.horizon
    frames = t0 + k * torch.arange(1, steps + 1)
    if t0 < 0 or frames[-1] >= dataset.frames:
        raise ValueError(f"rollout t0={t0}, steps={steps}, horizon={k} exceeds {dataset.frames} frames")
    m = trajectory
    return keypoints(dataset.positions[m, frames], dataset.axes[m, frames], dataset.sizes[m].expand(steps, -1, -1))


@torch.no_grad()
def teacher_forced_rollout_error(
    model: Callable[[dict], torch.Tensor],
    dataset: RigidBodyDataset,
    trajectory: int,
    t0: int = 0,
    steps: int | None = None,
) -> torch.Tensor:
    """Multi-step error of a one-step model fed ground-truth states (teacher forcing).

    Keypoints do not determine velocities, so a free-running rollout is not
    possible; instead, for ``s = 0 .. steps-1`` the model receives the TRUE state
    at frame ``t0 + s*k`` and predicts keypoints at ``t0 + (s+1)*k``.  The
    result shows how the one-step error varies along the trajectory (e.g. around
    collisions).

    Parameters
    ----------
    model : callable mapping a batched sample dict (batch = steps) to keypoints (steps, N, 4, 3)
    dataset, trajectory, t0 : as in :func:`rollout_targets`
    steps : default: as many as fit

    Returns
    -------
    Tensor, shape (steps,): mean squared keypoint distance [m^2] per step
    """
    k = dataset.horizon
    if steps is None:
        steps = (dataset.frames - 1 - t0) // k
    targets = rollout_targets(dataset, trajectory, t0, steps)
    states = [dataset.state(trajectory, t0 + s * k) for s in range(steps)]
    batch = {key: torch.stack([st[key] for st in states]) for key in states[0]}
    pred = model(batch)
    return ((pred - targets) ** 2).sum(-1).mean(dim=(-1, -2))


class RigidBodyDataModule(L.LightningDataModule):
    """Lightning data module: train / val / test / E(3)-transformed test loaders.

    ``test_dataloader()`` returns ``[test, test_e3]`` (Lightning reports metrics
    per ``dataloader_idx``: 0 = plain test, 1 = E(3)-transformed test);
    ``test_e3_dataloader()`` returns the transformed one alone.

    Parameters
    ----------
    data_dir : generated dataset directory
    horizon : prediction horizon in frames
    batch_size, num_workers : DataLoader settings
    max_train_trajectories : cap on training trajectories (nested subsets)
    seed : split seed, shuffling seed; the E(3) test set uses ``seed + 1``
    split_fractions : (train, val, test)
    translation_scale : std of translations of the E(3) test set [m]
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        horizon: int = 5,
        batch_size: int = 64,
        num_workers: int = 0,
        max_train_trajectories: int | None = None,
        seed: int = 0,
        split_fractions=(0.8, 0.1, 0.1),
        translation_scale: float = 1.0,
    ):
        super().__init__()
        self.data_dir = Path(data_dir)
        self.horizon, self.batch_size, self.num_workers = horizon, batch_size, num_workers
        self.max_train_trajectories, self.seed = max_train_trajectories, seed
        self.split_fractions, self.translation_scale = tuple(split_fractions), translation_scale
        self.train = self.val = self.test = self.test_e3 = None

    def setup(self, stage: str | None = None) -> None:
        if self.train is not None:
            return
        arrays, self.manifest = load_arrays(self.data_dir)
        kw = dict(horizon=self.horizon, split_fractions=self.split_fractions, split_seed=self.seed)
        self.train = RigidBodyDataset(arrays, "train", max_trajectories=self.max_train_trajectories, **kw)
        self.val = RigidBodyDataset(arrays, "val", **kw)
        self.test = RigidBodyDataset(arrays, "test", **kw)
        self.test_e3 = RigidBodyDataset(arrays, "test", e3_seed=self.seed + 1,
                                        translation_scale=self.translation_scale, **kw)

    def _loader(self, ds, shuffle=False):
        # Batches are fetched with one vectorised ``ds[indices]`` call (BatchSampler,
        # batch_size=None); the yielded batches are dicts of tensors with leading dim B.
        if shuffle:
            sampler = RandomSampler(ds, generator=torch.Generator().manual_seed(self.seed))
        else:
            sampler = SequentialSampler(ds)
        batches = BatchSampler(sampler, self.batch_size, drop_last=False)
        return DataLoader(ds, sampler=batches, batch_size=None, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self):
        return self._loader(self.train, shuffle=True)

    def val_dataloader(self):
        return self._loader(self.val)

    def test_dataloader(self):
        return [self._loader(self.test), self._loader(self.test_e3)]

    def test_e3_dataloader(self):
        return self._loader(self.test_e3)
