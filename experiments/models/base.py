"""Common interface of the rigid-body predictors, and the flat features of the baselines."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BodyModel", "FLAT_FEATURES", "FeatureStandardizer", "flat_body_features"]

#: per-body features of the non-equivariant baselines, in this order (38 numbers)
FLAT_FEATURES = (("positions", 3), ("axes", 9), ("velocity", 3), ("angular_velocity", 3), ("sizes", 3),
                 ("mass", 1), ("shape_one_hot", 4), ("ballistic_keypoints", 12))


def flat_body_features(batch: dict, centre: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, N, 38)``: positions, axes (row-major), velocity, angular velocity, sizes, mass, one-hot
    shape and the free-flight keypoints, in world coordinates (these baselines are not built to be
    E(3)-equivariant). ``centre`` ``(B, 1, 3)``, if given, is subtracted from the positions and the
    free-flight keypoints (a translation-centred view)."""
    from .embedding import free_flight_keypoints

    p = batch["positions"]
    dtype = p.dtype
    ballistic = free_flight_keypoints(batch)
    if centre is not None:
        p = p - centre
        ballistic = ballistic - centre.unsqueeze(-2)
    shape = torch.nn.functional.one_hot(batch["shape"].long(), 4).to(dtype)
    return torch.cat([
        p, batch["axes"].to(dtype).flatten(-2), batch["velocity"].to(dtype),
        batch["angular_velocity"].to(dtype), batch["sizes"].to(dtype), batch["mass"].to(dtype).unsqueeze(-1), shape,
        ballistic.flatten(-2),
    ], -1)


class FeatureStandardizer(nn.Module):
    """``(x - mean) / std`` per feature, with statistics of the training set (buffers, so they are
    saved in checkpoints). Until :meth:`fit` is called it is the identity.

    Parameters
    ----------
    num_features : F
    """

    def __init__(self, num_features: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("std", torch.ones(num_features))
        self.register_buffer("fitted", torch.tensor(False))

    @torch.no_grad()
    def fit(self, x: torch.Tensor, min_std: float = 1e-6) -> None:
        """Set the statistics from features ``x`` ``(..., F)`` (all leading axes are samples); features
        with ``std < min_std`` (constants) are only centred."""
        x = x.reshape(-1, x.shape[-1]).to(torch.float64)
        self.mean.copy_(x.mean(0))
        std = x.std(0, unbiased=False)
        self.std.copy_(torch.where(std < min_std, torch.ones_like(std), std))
        self.fitted.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class BodyModel(nn.Module):
    """``forward(batch) -> keypoints (B, N, 4, 3)``; nominal FLOPs and parameter counts.

    Subclasses set ``family`` and implement ``forward`` and ``nominal_flops_per_sample``; those
    with data-dependent normalisation implement ``fit_normalization``.
    """

    family: str = "?"
    algebra_name: str | None = None

    def forward(self, batch: dict) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit_normalization(self, batch: dict) -> None:
        """Set input/output statistics from training samples (a batch dict of many samples).
        The default does nothing."""

    def nominal_flops_per_sample(self, num_bodies: int) -> float:
        """Forward + backward FLOPs of one sample with ``num_bodies`` bodies."""
        raise NotImplementedError

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def extra_repr(self) -> str:
        return f"family={self.family!r}, algebra={self.algebra_name!r}, params={self.num_parameters()}"
