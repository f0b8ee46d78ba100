"""Common interface of the rigid-body predictors."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BodyModel", "FLAT_FEATURES", "flat_body_features"]

#: per-body features of the non-equivariant baselines, in this order (26 numbers)
FLAT_FEATURES = (("positions", 3), ("axes", 9), ("velocity", 3), ("angular_velocity", 3), ("sizes", 3),
                 ("mass", 1), ("shape_one_hot", 4))


def flat_body_features(batch: dict) -> torch.Tensor:
    """``(B, N, 26)``: positions, axes (row-major), velocity, angular velocity, sizes, mass, one-hot shape,
    in world coordinates (no centring: these baselines are not built to be E(3)-equivariant)."""
    p = batch["positions"]
    dtype = p.dtype
    shape = torch.nn.functional.one_hot(batch["shape"].long(), 4).to(dtype)
    return torch.cat([
        p, batch["axes"].to(dtype).flatten(-2), batch["velocity"].to(dtype),
        batch["angular_velocity"].to(dtype), batch["sizes"].to(dtype), batch["mass"].to(dtype).unsqueeze(-1), shape,
    ], -1)


class BodyModel(nn.Module):
    """``forward(batch) -> keypoints (B, N, 4, 3)``; nominal FLOPs and parameter counts.

    Subclasses set ``family`` and implement ``forward`` and ``nominal_flops_per_sample``.
    """

    family: str = "?"
    algebra_name: str | None = None

    def forward(self, batch: dict) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def nominal_flops_per_sample(self, num_bodies: int) -> float:
        """Forward + backward FLOPs of one sample with ``num_bodies`` bodies."""
        raise NotImplementedError

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def extra_repr(self) -> str:
        return f"family={self.family!r}, algebra={self.algebra_name!r}, params={self.num_parameters()}"
