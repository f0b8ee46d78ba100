"""Helpers used only by the experiment tests (a uniquely named module: tests/ has no packages)."""

from __future__ import annotations

from typing import Callable

import torch

from experiments.rigid_body.dataset import RigidBodyDataset, keypoints


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
