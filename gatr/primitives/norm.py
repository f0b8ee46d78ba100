"""Equivariant layer norm: ``x / sqrt(mean_c ||x_c||^2 + eps)`` with the algebra's invariant norm."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def equi_layer_norm(alg, mv: torch.Tensor, eps: float = 1e-6, blades: torch.Tensor | None = None) -> torch.Tensor:
    """Normalise ``mv (..., channels, dim)`` by the root mean over channels of
    ``alg.squared_norm`` (invariant and non-negative, so the result is equivariant).

    Computed in float32 (or float64 if the input is float64), also under autocast; the result has
    the input's dtype.

    Parameters
    ----------
    alg : NetworkAlgebra
    mv : Tensor ``(..., channels, dim)``
    eps : float
        Added to the mean squared norm.
    blades : Tensor, shape (..., channels, dim), optional
        The same multivectors in blade order, when ``mv`` holds them in another layout (the label layout
        ``(..., dim, channels)`` of an execution plan); default ``mv``. The norms are taken of these; ``mv`` is
        scaled.

    Returns
    -------
    Tensor, shaped like ``mv``
        ``mv / sqrt(mean_c alg.squared_norm(mv_c) + eps)``.
    """
    dtype = torch.float64 if mv.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=mv.device.type, enabled=False):
        x = mv.to(dtype)
        sq = alg.squared_norm(x if blades is None else blades.to(dtype)).mean(-1)  # (...)
        out = x * torch.rsqrt(sq + eps)[..., None, None]
    return out.to(mv.dtype)


def scalar_layer_norm(scalars: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Standard layer norm without affine parameters over the last axis (empty axis passes through).

    Computed in float32 (or float64), also under autocast; the result has the input's dtype.

    Parameters
    ----------
    scalars : Tensor ``(..., s_channels)``
    eps : float

    Returns
    -------
    Tensor ``(..., s_channels)``
    """
    if scalars.shape[-1] == 0:
        return scalars
    dtype = torch.float64 if scalars.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=scalars.device.type, enabled=False):
        out = F.layer_norm(scalars.to(dtype), scalars.shape[-1:], eps=eps)
    return out.to(scalars.dtype)
