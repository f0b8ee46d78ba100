"""Selecting components by a constant index, with gathers (never scatter-adds) as gradients.

``x.index_select(axis, index)`` differentiates to ``index_add``, which ``torch.compile`` lowers to atomic
adds into a zeroed buffer: on CPUs the slowest loops of a compiled backward. When ``index`` has no
repeated entry the adjoint is a gather too: pad the gradient with one zero slot and read, for every
component, its position in ``index`` or the zero slot (:attr:`ComponentIndex.spread`). :func:`select`
and :func:`spread` are that adjoint pair; each is the other's gradient, so gradients of gradients stay
gathers as well.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class ComponentIndex(NamedTuple):
    """A selection of distinct components of an axis of length ``size``, built by :func:`component_index`.

    Parameters
    ----------
    index : Tensor of long, shape (k,)
        The selected components, no repeats.
    spread : Tensor of long, shape (size,)
        Per component of the full axis, its position in ``index``, or ``k`` (a zero slot) if not selected.
    identity : bool
        ``index`` is ``0, 1, ..., size - 1``: selecting is the identity.
    """

    index: torch.Tensor
    spread: torch.Tensor
    identity: bool


def component_index(index: torch.Tensor, size: int) -> ComponentIndex:
    """:class:`ComponentIndex` of ``index`` on an axis of length ``size`` (host work: build once, cache).

    Parameters
    ----------
    index : Tensor of long, shape (k,)
    size : int

    Returns
    -------
    ComponentIndex

    Raises
    ------
    ValueError
        If ``index`` repeats a component or leaves ``[0, size)``.
    """
    index = index.to(torch.long).flatten()
    values = index.tolist()
    if len(set(values)) != len(values) or any(not 0 <= v < size for v in values):
        raise ValueError(f"component index must hold distinct entries in [0, {size}), got {values}")
    spread = torch.full((size,), len(values), dtype=torch.long, device=index.device)
    spread[index] = torch.arange(len(values), device=index.device)
    return ComponentIndex(index, spread, values == list(range(size)))


def _pad_one(x: torch.Tensor, axis: int) -> torch.Tensor:
    shape = list(x.shape)
    shape[axis] = 1
    return torch.cat([x, x.new_zeros(shape)], axis)


class _Select(torch.autograd.Function):
    @staticmethod
    def forward(x, ci, axis):
        return x.index_select(axis, ci.index)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.ci, ctx.axis = inputs[1], inputs[2]

    @staticmethod
    def backward(ctx, grad):
        return _Spread.apply(grad, ctx.ci, ctx.axis), None, None


class _Spread(torch.autograd.Function):
    @staticmethod
    def forward(y, ci, axis):
        return _pad_one(y, axis).index_select(axis, ci.spread)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.ci, ctx.axis = inputs[1], inputs[2]

    @staticmethod
    def backward(ctx, grad):
        return _Select.apply(grad, ctx.ci, ctx.axis), None, None


def select(x: torch.Tensor, ci: ComponentIndex, axis: int = -1) -> torch.Tensor:
    """``x.index_select(axis, ci.index)`` whose gradient is :func:`spread` (a gather, no atomics).

    Parameters
    ----------
    x : Tensor, shape (..., size, ...)
        ``size`` along ``axis``.
    ci : ComponentIndex
    axis : int

    Returns
    -------
    Tensor, shape (..., k, ...)
    """
    if ci.identity:
        return x
    return _Select.apply(x, ci, axis % x.dim())


def spread(y: torch.Tensor, ci: ComponentIndex, axis: int = -1) -> torch.Tensor:
    """The adjoint of :func:`select`: ``y``'s entries at ``ci.index`` along ``axis``, zeros elsewhere.

    Parameters
    ----------
    y : Tensor, shape (..., k, ...)
    ci : ComponentIndex
    axis : int

    Returns
    -------
    Tensor, shape (..., size, ...)
    """
    if ci.identity:
        return y
    return _Spread.apply(y, ci, axis % y.dim())
