"""Scalar-gated nonlinearity: ``act(<x>_0) * x`` on multivectors, ``act(s)`` on scalars.

The scalar component ``<x>_0`` is invariant (``rho_u(1) = 1`` and ``rho_u`` preserves grades), so
scaling ``x`` by any function of it commutes with the group action.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_exact": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
    "sigmoid": torch.sigmoid,
}


def get_activation(name: str):
    """The activation function called ``name`` in :data:`ACTIVATIONS`.

    ``"gelu"`` is the tanh approximation, ``"gelu_exact"`` the erf form.

    Parameters
    ----------
    name : {"gelu", "gelu_exact", "relu", "silu", "sigmoid"}

    Returns
    -------
    callable
        ``Tensor -> Tensor``, element-wise.

    Raises
    ------
    ValueError
        For an unknown name.
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def gated_nonlinearity(mv: torch.Tensor, scalars: torch.Tensor, activation: str = "gelu",
                       gates: torch.Tensor | None = None):
    """Scalar-gated nonlinearity: ``act(<x>_0) * x`` per multivector, ``act(s)`` on scalars.

    Equivariant because the scalar component ``<x>_0`` is invariant.

    Parameters
    ----------
    mv : Tensor ``(..., channels, dim)``
    scalars : Tensor ``(..., s_channels)``
    activation : str
        A name of :data:`ACTIVATIONS`.
    gates : Tensor, optional
        The scalar components ``<x>_0``, broadcastable to ``mv``; default ``mv[..., :1]`` (pass them when
        ``mv`` is in another layout, e.g. :meth:`gatr.kernels.plan.ExecutionPlan.scalar_part`).

    Returns
    -------
    mv : Tensor, shaped like the input
    scalars : Tensor ``(..., s_channels)``
    """
    act = get_activation(activation)
    return act(mv[..., :1] if gates is None else gates) * mv, act(scalars)
