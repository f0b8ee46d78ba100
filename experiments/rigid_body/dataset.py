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
``ballistic_keypoints``   (N,4,3)      free-flight keypoints at frame t+k from the state at t
                                       (:mod:`experiments.rigid_body.ballistic`)
``contact``               () bool      a body-body contact inside the window (frames t+1..t+k)
``trajectory``            () int64     trajectory index within the whole dataset
``frame``                 () int64     t
========================  ===========  ==================================================

Splits are made BY TRAJECTORY with a seeded permutation (never by frame).

Windows. Every start frame ``t`` (every ``frame_step``-th) with ``t + k`` inside the trajectory is
a window; ``min_contact_fraction`` keeps all contact windows and a subset of the contact-free ones
(drawn with ``window_seed``, the same for the same arguments) so that contact windows are at least
that fraction of the split. Contact windows are where free flight is wrong; a benchmark made of
contact-free windows is solved by :func:`~experiments.rigid_body.ballistic.ballistic_keypoints`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler

from experiments.settings import DATA_DEFAULTS as D

from .ballistic import ballistic_keypoints, keypoints
from .simulate import quat_to_matrix
from .storage import load_arrays
from .transforms import TRANSFORM_KINDS, random_e3, transform_sample

__all__ = [
    "SPLITS",
    "split_indices",
    "keypoints",
    "contact_windows",
    "select_windows",
    "RigidBodyDataset",
    "RigidBodyDataModule",
    "collate_batch",
    "EVAL_SETS",
    "build_datasets",
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


def contact_windows(contacts: torch.Tensor, starts: torch.Tensor, horizon: int) -> torch.Tensor:
    """Whether a body-body contact happens inside each window.

    Parameters
    ----------
    contacts : (M, T) int, contacts per frame (``contacts[t]``: the simulator steps since frame t-1)
    starts : (S,) start frames
    horizon : k

    Returns
    -------
    Tensor, shape (M, S) bool: any contact in frames ``t+1 .. t+k``
    """
    c = torch.as_tensor(contacts) > 0
    return _contact_in(c, torch.arange(c.shape[0]).unsqueeze(-1), torch.as_tensor(starts).unsqueeze(0), horizon)


def _contact_in(contact: torch.Tensor, m, t, horizon: int) -> torch.Tensor:
    """``contact[m, t+1 .. t+k].any()`` for broadcastable trajectory / start-frame indices."""
    frames = torch.as_tensor(t).unsqueeze(-1) + torch.arange(1, horizon + 1)
    return contact[torch.as_tensor(m).unsqueeze(-1), frames].any(-1)


def select_windows(contact: torch.Tensor, min_contact_fraction: float | None, seed: int = 0) -> torch.Tensor:
    """Indices of the kept windows: all contact windows, and contact-free ones up to the fraction.

    Parameters
    ----------
    contact : (W,) bool, per window
    min_contact_fraction : in [0, 1], or None to keep everything. When contact windows are fewer
        than this fraction, ``floor(n_contact (1 - f) / f)`` contact-free windows are drawn
        uniformly without replacement (a permutation seeded by ``seed``)
    seed : seed of that draw

    Returns
    -------
    Tensor, shape (W',) int64, sorted
    """
    contact = torch.as_tensor(contact, dtype=torch.bool)
    everything = torch.arange(len(contact))
    if min_contact_fraction is None:
        return everything
    f = float(min_contact_fraction)
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"min_contact_fraction must be in [0, 1], got {min_contact_fraction}")
    n_contact = int(contact.sum())
    if len(contact) == 0 or n_contact >= f * len(contact):
        return everything
    free = everything[~contact]
    keep_free = len(free) if f == 0 else min(len(free), int(math.floor(n_contact * (1.0 - f) / f + 1e-9)))
    perm = torch.as_tensor(np.random.default_rng([int(seed), 7127]).permutation(len(free))[:keep_free])
    return torch.sort(torch.cat([everything[contact], free[perm]])).values


def _split_trajectories(num: int, split: str, fractions, seed: int, max_trajectories: int | None) -> np.ndarray:
    """Indices of the trajectories of ``split`` ("all" or one of :data:`SPLITS`, by :func:`split_indices`),
    the first ``max_trajectories`` of them when given."""
    if split == "all":
        traj = np.arange(num)
    elif split in SPLITS:
        traj = split_indices(num, fractions, seed)[split]
    else:
        raise ValueError(f"split must be one of {SPLITS + ('all',)}, got {split!r}")
    if max_trajectories is not None:
        if max_trajectories < 1:
            raise ValueError("max_trajectories must be positive")
        traj = traj[:max_trajectories]
    return traj


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
    transform : which part of E(3) ``e3_seed`` draws: "e3" (rotation, reflection with probability
        1/2, translation), "rotation" (rotations and reflections, no translation) or "translation"
    frame_step : use every ``frame_step``-th start frame
    frame_dt : seconds between frames (for the ballistic keypoints); read from the manifest when
        ``source`` is a path, required for a dict source
    min_contact_fraction, window_seed : window selection, see :func:`select_windows`
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
        transform: str = "e3",
        frame_dt: float | None = None,
        min_contact_fraction: float | None = None,
        window_seed: int = 0,
    ):
        if isinstance(source, (str, os.PathLike)):
            arrays, manifest = load_arrays(source)
            frame_dt = manifest["frame_dt"] if frame_dt is None else frame_dt
        else:
            arrays = source
        if frame_dt is None or not float(frame_dt) > 0:
            raise ValueError(f"frame_dt (seconds between frames, > 0) is needed for the ballistic reference; "
                             f"got {frame_dt!r} (pass the manifest's 'frame_dt')")
        if transform not in TRANSFORM_KINDS:
            raise ValueError(f"transform must be one of {TRANSFORM_KINDS}, got {transform!r}")
        num, frames = arrays["positions"].shape[:2]
        if not 1 <= horizon < frames:
            raise ValueError(f"horizon must be in [1, {frames - 1}] for {frames} frames, got {horizon}")
        traj = _split_trajectories(num, split, split_fractions, split_seed, max_trajectories)
        self.split, self.horizon, self.frames = split, int(horizon), int(frames)
        self.frame_dt = float(frame_dt)
        self._take(arrays, traj)

        starts = torch.arange(0, frames - horizon, frame_step)
        index = torch.stack(torch.meshgrid(torch.arange(len(traj)), starts, indexing="ij"), -1).reshape(-1, 2)
        contact = contact_windows(self._contacts, starts, self.horizon).reshape(-1)
        keep = select_windows(contact, min_contact_fraction, window_seed)
        self._index, self.contact = index[keep], contact[keep]
        # free flight from every window's input state, once (float64 RK4, stored like the data)
        m, t = self._index.unbind(-1)
        self.ballistic = ballistic_keypoints(self.state(m, t, with_ballistic=False), self.horizon * self.frame_dt)
        self.e3 = None
        if e3_seed is not None:
            self.e3 = random_e3(len(self._index), generator=int(e3_seed), reflections=reflections,
                                translation_scale=translation_scale, kind=transform)

    def _take(self, arrays: dict, traj: np.ndarray) -> None:
        """Keep trajectories ``traj`` (M,) of ``arrays`` as tensors: float32 states, the body axes as rows of
        the rotation matrices, and whether each frame had a contact."""
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
        self._contacts = torch.as_tensor(np.asarray(arrays["contacts"])[traj] > 0)  # (M, T)

    @property
    def contact_fraction(self) -> float:
        """Fraction of this split's windows with a body-body contact inside the horizon."""
        return float(self.contact.float().mean()) if len(self.contact) else float("nan")

    @property
    def num_trajectories(self) -> int:
        return len(self.trajectory_ids)

    def __len__(self) -> int:
        return len(self._index)

    def state(self, m, t, with_ballistic: bool = True) -> dict:
        """Untransformed sample for local trajectory ``m`` and start frame ``t``.

        ``m`` and ``t`` are ints (one sample) or int64 tensors of shape (B,)
        (a batch: every entry gets a leading dim B). ``ballistic_keypoints`` and ``contact`` are
        included when ``with_ballistic`` (computed for any ``(m, t)``, also outside the windows).
        """
        k = t + self.horizon
        sample = {
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
        if with_ballistic:
            sample["ballistic_keypoints"] = ballistic_keypoints(sample, self.horizon * self.frame_dt)
            sample["contact"] = _contact_in(self._contacts, m, t, self.horizon)
        return sample

    def __getitem__(self, i) -> dict:
        """Sample ``i`` (int), or a whole batch for a sequence/tensor of indices (B,).

        Batched indexing is vectorised and much faster than stacking single samples; the data loaders
        use it through :meth:`__getitems__`.
        """
        if isinstance(i, (int, np.integer)):
            m, t = (int(v) for v in self._index[i])
        else:
            i = torch.as_tensor(i, dtype=torch.int64)
            m, t = self._index[i].unbind(-1)
        sample = self.state(m, t, with_ballistic=False)
        sample["ballistic_keypoints"] = self.ballistic[i]
        sample["contact"] = self.contact[i]
        if self.e3 is not None:
            sample = transform_sample(sample, self.e3[0][i], self.e3[1][i])
        return sample

    def __getitems__(self, indices) -> dict:
        """A whole batch of samples ``indices`` (B,) in one vectorised call: what a ``DataLoader`` calls
        (with :func:`collate_batch`) instead of gathering sample by sample. Equal to collating
        ``[self[i] for i in indices]`` (tested)."""
        return self[torch.as_tensor(indices, dtype=torch.int64)]


def collate_batch(batch):
    """The data loaders' collate function: a batch from :meth:`RigidBodyDataset.__getitems__` is complete
    already (a dict of tensors with leading dim B); anything else is collated as usual."""
    if isinstance(batch, dict):
        return batch
    return torch.utils.data.default_collate(batch)


#: the evaluation sets of a data module: name -> ``transform`` of the test split (None: plain)
EVAL_SETS = {"test": None, "test_e3": "e3", "test_rotation": "rotation", "test_translation": "translation"}


def build_datasets(arrays: dict, frame_dt: float, horizon: int = 5, split_fractions=(0.8, 0.1, 0.1),
                   split_seed: int = 0, max_train_trajectories: int | None = None,
                   translation_scale: float = 1.0, min_contact_fraction: float | None = 0.5,
                   window_seed: int = 0) -> dict:
    """The train / val splits and the test split with its transformed copies (:data:`EVAL_SETS`).

    The test sets share their windows; each transformed one draws its elements with seed
    ``split_seed + 1`` (so ``test_e3`` is the same set whatever else is built). Returns a dict
    ``{"train", "val", "test", "test_e3", "test_rotation", "test_translation"}`` of
    :class:`RigidBodyDataset`.
    """
    kw = dict(horizon=horizon, split_fractions=split_fractions, split_seed=split_seed, frame_dt=frame_dt,
              min_contact_fraction=min_contact_fraction, window_seed=window_seed)
    out = {"train": RigidBodyDataset(arrays, "train", max_trajectories=max_train_trajectories, **kw),
           "val": RigidBodyDataset(arrays, "val", **kw)}
    for name, kind in EVAL_SETS.items():
        extra = {} if kind is None else dict(e3_seed=split_seed + 1, transform=kind,
                                             translation_scale=translation_scale)
        out[name] = RigidBodyDataset(arrays, "test", **extra, **kw)
    return out


class RigidBodyDataModule(L.LightningDataModule):
    """Lightning data module: train / val / test / E(3)-transformed test loaders.

    ``test_dataloader()`` returns the loaders of :data:`EVAL_SETS` in order (Lightning reports
    metrics per ``dataloader_idx``: 0 = plain test, 1 = E(3)-transformed, 2 = rotations and
    reflections only, 3 = translations only). Every loader batches one way (:meth:`_loader`). Defaults:
    :class:`experiments.settings.DataSettings`.

    Parameters
    ----------
    data_dir : generated dataset directory
    horizon : prediction horizon in frames
    batch_size, num_workers : DataLoader settings
    max_train_trajectories : cap on training trajectories (nested subsets)
    seed : split seed, shuffling seed; the E(3) test set uses ``seed + 1``
    split_fractions : (train, val, test)
    translation_scale : std of translations of the E(3) test set [m]
    min_contact_fraction : keep contact-free windows only up to this share (see
        :func:`select_windows`; None keeps every window)
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        horizon: int = D.horizon,
        batch_size: int = D.batch_size,
        num_workers: int = D.num_workers,
        max_train_trajectories: int | None = D.max_train_trajectories,
        seed: int = D.seed,
        split_fractions=D.split_fractions,
        translation_scale: float = D.translation_scale,
        min_contact_fraction: float | None = D.min_contact_fraction,
    ):
        super().__init__()
        self.data_dir = Path(data_dir)
        self.horizon, self.batch_size, self.num_workers = horizon, batch_size, num_workers
        self.max_train_trajectories, self.seed = max_train_trajectories, seed
        self.split_fractions, self.translation_scale = tuple(split_fractions), translation_scale
        self.min_contact_fraction = min_contact_fraction
        self.train = self.val = self.test = self.test_e3 = self.test_rotation = self.test_translation = None

    def _build(self, arrays: dict, manifest: dict) -> dict:
        return build_datasets(arrays, manifest["frame_dt"], horizon=self.horizon, split_fractions=self.split_fractions,
                              split_seed=self.seed, max_train_trajectories=self.max_train_trajectories,
                              translation_scale=self.translation_scale,
                              min_contact_fraction=self.min_contact_fraction)

    def _assign(self, datasets: dict) -> None:
        for name, ds in datasets.items():
            setattr(self, name, ds)

    def setup(self, stage: str | None = None) -> None:
        if self.train is not None:
            return
        arrays, self.manifest = load_arrays(self.data_dir)
        self._assign(self._build(arrays, self.manifest))

    def _loader(self, ds: RigidBodyDataset, sampler: Sampler | None = None, drop_last: bool = False,
                loader: type[DataLoader] = DataLoader) -> DataLoader:
        """The one batching path of every loader: ``batch_size`` indices at a time from ``sampler`` (default:
        in order), each batch gathered by one vectorised :meth:`RigidBodyDataset.__getitems__` call.

        Parameters
        ----------
        ds : RigidBodyDataset
        sampler : Sampler, optional
            Order of the samples (a ``DistributedSampler`` stays as it is under DDP).
        drop_last : bool
            Drop the last incomplete batch.
        loader : type
            ``DataLoader`` or a subclass of it.

        Returns
        -------
        DataLoader
            Yielding dicts of tensors with leading dim B.
        """
        return loader(ds, batch_size=self.batch_size, sampler=sampler, drop_last=drop_last, collate_fn=collate_batch,
                      num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self):
        return self._loader(self.train, RandomSampler(self.train, generator=torch.Generator().manual_seed(self.seed)))

    def val_dataloader(self):
        return self._loader(self.val)

    def test_dataloader(self):
        return [self._loader(getattr(self, name)) for name in EVAL_SETS]
