"""Selecting components by a constant index, with gathers (never scatter-adds) as gradients.

``x.index_select(axis, index)`` differentiates to ``index_add``, which ``torch.compile`` lowers to atomic
adds into a zeroed buffer: on CPUs the slowest loops of a compiled backward. When ``index`` has no
repeated entry the adjoint is a gather too: pad the gradient with one zero slot and read, for every
component, its position in ``index`` or the zero slot (:attr:`ComponentIndex.spread`). :func:`select`
and :func:`spread` are that adjoint pair; each is the other's gradient, so gradients of gradients stay
gathers as well. Run eagerly, a gather along a short inner axis is slow (one index per element), so there
they take the index's runs of consecutive components instead: a slice, and a zero tensor with the runs
copied in. Eagerly, :func:`select` of a proper subset is torch's own ``narrow`` / ``index_select``: atomics do
not arise outside the compiler, and their C++ autograd nodes cost a fraction of a Python Function's.
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
    runs : tuple of (int, int, int)
        ``index`` as runs of consecutive components ``(start in the axis, start in the selection, length)``:
        eagerly, selecting one run is a slice and spreading is a zero tensor with the runs copied in.
    """

    index: torch.Tensor
    spread: torch.Tensor
    identity: bool
    runs: tuple = ()


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
    runs = []
    for position, value in enumerate(values):
        if runs and runs[-1][0] + runs[-1][2] == value:
            runs[-1][2] += 1
        else:
            runs.append([value, position, 1])
    return ComponentIndex(index, spread, values == list(range(size)), tuple(map(tuple, runs)))


def _pad_one(x: torch.Tensor, axis: int) -> torch.Tensor:
    shape = list(x.shape)
    shape[axis] = 1
    return torch.cat([x, x.new_zeros(shape)], axis)


def _eager(ci: ComponentIndex) -> bool:
    """Run the slice-and-copy forms: outside torch.compile (which fuses the gathers into their consumers)."""
    return len(ci.runs) > 0 and not torch.compiler.is_compiling()


class _Select(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, ci, axis):
        ctx.ci, ctx.axis = ci, axis
        if _eager(ci) and len(ci.runs) == 1:  # a slice (copied: the output owns its memory)
            start, _, length = ci.runs[0]
            return x.narrow(axis, start, length).clone()
        return x.index_select(axis, ci.index)

    @staticmethod
    def backward(ctx, grad):
        return _Spread.apply(grad, ctx.ci, ctx.axis), None, None


class _Spread(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, ci, axis):
        ctx.ci, ctx.axis = ci, axis
        if _eager(ci) and ci.index.numel() == ci.spread.numel():  # a permutation: its inverse, one gather
            return y.index_select(axis, ci.spread)
        if _eager(ci):  # eagerly, a gather along a short inner axis is slow: zeros with the runs copied in
            shape = list(y.shape)
            shape[axis] = ci.spread.numel()
            out = y.new_zeros(shape)
            for start, position, length in ci.runs:
                out.narrow(axis, start, length).copy_(y.narrow(axis, position, length))
            return out
        return _pad_one(y, axis).index_select(axis, ci.spread)

    @staticmethod
    def backward(ctx, grad):
        return _Select.apply(grad, ctx.ci, ctx.axis), None, None


def select(x: torch.Tensor, ci: ComponentIndex, axis: int = -1) -> torch.Tensor:
    """``x.index_select(axis, ci.index)`` whose gradient is :func:`spread` (a gather, no atomics).

    Eagerly, a proper subset is torch's own ``narrow`` (one run: a view) or ``index_select``, with torch's
    gradients; permutations, and everything under ``torch.compile``, take the gathers-only pair.

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
    axis = axis % x.dim()
    if _eager(ci) and ci.index.numel() < ci.spread.numel():
        # a proper subset, eagerly: torch's own autograd nodes (C++) cost a fraction of a Python Function's,
        # and a small network makes dozens of these calls a step (a permutation keeps its gather adjoint:
        # index_add was slower on large inputs)
        if len(ci.runs) == 1:
            start, _, length = ci.runs[0]
            return x.narrow(axis, start, length)
        return x.index_select(axis, ci.index)
    return _Select.apply(x, ci, axis)


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
