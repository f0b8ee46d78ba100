"""The sparse linear kernel's custom operators: opaque to the compiler, with hand-written gradients.

* :func:`permute_columns`: a column permutation whose gradient is the inverse permutation (a gather, not
  the scatter-add of a general gather).
* :func:`sector_matmul`: one batched GEMM per group of equally sized sectors on sector-major token rows
  (:mod:`gatr.kernels.sparse_linear`), with :func:`sector_matmul_backward` as its gradient.

* :func:`custom_operator`: how every custom operator of the kernels is defined, once per process (executing
  a module again must not free the registration the rest of the process holds).

Both run the same ``torch`` operations on every device (``gather``, ``bmm``): they are device-generic.
Callers use :func:`run_permute_columns` and :func:`run_sector_matmul`: the operators under ``torch.compile``,
and eagerly the same functions and gradients as plain autograd functions (:func:`use_operator`).
"""

from __future__ import annotations

from typing import List, Optional  # the operators' schemas: torch 2.5 reads typing's forms, not list[...] / X | None

import torch


def custom_operator(name: str, mutates_args: tuple = ()):
    """``torch.library.custom_op(name, mutates_args=...)``, registered once per process.

    torch redefines an operator by destroying its first registration, and every reference to it held elsewhere
    in the process then reads freed memory (crashes, ``std::bad_alloc``, garbage schema names). Executing a
    kernel module again (``importlib.reload``, IPython's autoreload, a second copy of the package on
    ``sys.path``) would do exactly that. So a second definition keeps the registered operator and points its
    implementation at the new function; the module then re-registers its fake and autograd functions on it.

    Parameters
    ----------
    name : str
        ``"gatr::<operator>"``.
    mutates_args : tuple of str

    Returns
    -------
    callable
        A decorator taking the implementation and returning the operator (a ``CustomOpDef``).
    """
    def define(fn):
        try:  # torch keeps its definitions by name (private, present since torch 2.4)
            from torch._library.custom_ops import _maybe_get_opdef
            registered = _maybe_get_opdef(name)
        except (ImportError, AttributeError):
            registered = None
        if registered is None:
            return torch.library.custom_op(name, mutates_args=mutates_args)(fn)
        registered.register_kernel(None, fn)
        return registered

    return define


def use_operator() -> bool:
    """Whether to call a custom operator of the kernels: under ``torch.compile``, where it stays opaque.

    Eagerly each runs its twin instead, a plain ``torch.autograd.Function`` with the same forward and
    gradient: the operator's dispatch costs about 20 us per call eagerly (50 with its gradient, measured on
    this project's 2-core CPU), and a small network makes a hundred such calls a step.
    """
    return torch.compiler.is_compiling()


def _columns(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[:, index]`` for 2-d ``x`` (a gather: faster than ``index_select`` along columns)."""
    return torch.gather(x, 1, index.expand(x.shape[0], -1))


def _group_view(rows: torch.Tensor, offset: int, sectors: int, width: int) -> torch.Tensor:
    """The ``(sectors, T, width)`` strided view of one group's sectors in sector-major ``(T, ...)`` rows."""
    return rows[:, offset : offset + sectors * width].unflatten(1, (sectors, width)).transpose(0, 1)


def _sector_products(xb: torch.Tensor, weights: list[torch.Tensor], transpose: bool = False,
                    in_place: bool = True) -> torch.Tensor:
    """``(T, sectors * p * a)`` sector-major rows times each group's ``(k, p * a, p * b)`` sector weights (or
    their transposes) -> ``(T, sectors * p * b)`` sector-major rows.

    Every group is one ``bmm`` that reads its sectors in place (strided). With ``in_place`` it also writes
    them in place (``out=`` a strided view: no transpose copy, but not differentiable); without, it
    copies, so autograd can differentiate it (gradients of gradients).
    """
    cols = sum(w.shape[0] * w.shape[1 if transpose else 2] for w in weights)
    out = xb.new_empty(xb.shape[0], cols) if in_place else None
    parts, offset_in, offset_out = [], 0, 0
    for w in weights:
        k, rows, width = (w.shape[0], w.shape[2], w.shape[1]) if transpose else w.shape
        xg = _group_view(xb, offset_in, k, rows)  # (k, T, rows)
        wg = w.transpose(1, 2) if transpose else w
        if in_place:
            torch.bmm(xg, wg, out=_group_view(out, offset_out, k, width))
        else:
            parts.append(torch.bmm(xg, wg).transpose(0, 1).reshape(xb.shape[0], k * width))
        offset_in, offset_out = offset_in + k * rows, offset_out + k * width
    return out if in_place else torch.cat(parts, 1)


@custom_operator("gatr::permute_columns")
def permute_columns(x: torch.Tensor, index: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """``x[:, index]`` for a permutation ``index`` of the columns, as one opaque operator whose gradient is
    the inverse permutation (a gather again, not the scatter-add of a general gather).

    Parameters
    ----------
    x : Tensor, shape (T, n)
    index, inverse : Tensor of long, shape (n,)
        A permutation and its inverse.

    Returns
    -------
    Tensor, shape (T, n), contiguous
    """
    return _columns(x, index)


@permute_columns.register_fake
def _(x, index, inverse):
    return x.new_empty(x.shape)


def _permute_columns_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[1], inputs[2])


def _permute_columns_backward(ctx, grad):
    index, inverse = ctx.saved_tensors
    return run_permute_columns(grad, inverse, index), None, None


permute_columns.register_autograd(_permute_columns_backward, setup_context=_permute_columns_setup)


class _PermuteColumns(torch.autograd.Function):
    """:func:`permute_columns`'s eager twin. Its ``forward`` takes ``ctx`` (no ``setup_context``): for a Function
    with ``setup_context``, ``apply`` binds the arguments through ``inspect.signature`` on every call (~60 us)."""

    @staticmethod
    def forward(ctx, x, index, inverse):
        _permute_columns_setup(ctx, (x, index, inverse), None)
        return _columns(x, index)

    backward = staticmethod(_permute_columns_backward)


def run_permute_columns(x: torch.Tensor, index: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """:func:`permute_columns`, or eagerly its twin (:func:`use_operator`).

    Parameters
    ----------
    x : Tensor, shape (T, n)
    index, inverse : Tensor of long, shape (n,)
        A permutation and its inverse.

    Returns
    -------
    Tensor, shape (T, n), contiguous
    """
    return permute_columns(x, index, inverse) if use_operator() else _PermuteColumns.apply(x, index, inverse)


@custom_operator("gatr::sector_matmul")
def sector_matmul(xb: torch.Tensor, weights: List[torch.Tensor], from_sectors_out: Optional[torch.Tensor],
                  to_sectors_out: Optional[torch.Tensor]) -> torch.Tensor:
    """The multivector part of the sparse kernel as one opaque operator: one batched GEMM per group of
    equal sectors on sector-major rows, then (unless ``from_sectors_out`` is None) the output permuted back
    to ``(channel, component)`` rows.

    Parameters
    ----------
    xb : Tensor, shape (T, in * dim)
        Sector-major token rows ``(component in sector order, channel)`` (:func:`permute_columns`).
    weights : list of Tensor, shape (k, p * in, p * out)
        Per group of sectors, the sectors' weights ``[k, (p, i), (q, o)]``.
    from_sectors_out : Tensor of long, or None
        The second permutation of :func:`_sector_major` for the output channels; None keeps the output
        sector-major (the label layout of :mod:`gatr.kernels.label_layout`).
    to_sectors_out : Tensor of long, or None
        Its inverse (the first permutation of :func:`_sector_major`), for the gradient; None with
        ``from_sectors_out``.

    Returns
    -------
    Tensor, shape (T, out * dim), contiguous
    """
    return _sector_matmul_forward(xb, weights, from_sectors_out)


def _sector_matmul_forward(xb, weights, from_sectors_out):
    out = _sector_products(xb, weights)
    return out if from_sectors_out is None else _columns(out, from_sectors_out)


@sector_matmul.register_fake
def _(xb, weights, from_sectors_out, to_sectors_out):
    return xb.new_empty(xb.shape[0], sum(w.shape[0] * w.shape[2] for w in weights))


def _sector_matmul_grads(grad, xb, weights, to_sectors_out, in_place: bool = True) -> list[torch.Tensor]:
    """``[dxb, *dweights]`` of :func:`sector_matmul`; ``in_place=False`` keeps every step differentiable."""
    gb = grad.to(xb.dtype).contiguous() if to_sectors_out is None else _columns(grad.to(xb.dtype), to_sectors_out)
    grads, offset_x, offset_g = [_sector_products(gb, weights, transpose=True, in_place=in_place)], 0, 0
    for w in weights:
        k, rows, cols = w.shape
        xg, gg = _group_view(xb, offset_x, k, rows), _group_view(gb, offset_g, k, cols)
        grads.append(torch.bmm(xg.transpose(1, 2), gg).to(w.dtype))
        offset_x, offset_g = offset_x + k * rows, offset_g + k * cols
    return grads


@custom_operator("gatr::sector_matmul_backward")
def sector_matmul_backward(grad: torch.Tensor, xb: torch.Tensor, weights: List[torch.Tensor],
                          to_sectors_out: Optional[torch.Tensor]) -> List[torch.Tensor]:
    """Gradients of :func:`sector_matmul` (one opaque operator): ``[dxb, *dweights]``.

    Parameters
    ----------
    grad : Tensor, shape (T, out * dim)
    xb, weights
        The inputs of :func:`sector_matmul`.
    to_sectors_out : Tensor of long, or None
        The inverse of the forward's ``from_sectors_out`` (None: the output was sector-major).

    Returns
    -------
    list of Tensor
        ``dxb (T, in * dim)`` (sector-major, like ``xb``), then ``dweights`` shaped like ``weights``.
    """
    return _sector_matmul_grads(grad, xb, weights, to_sectors_out)


@sector_matmul_backward.register_fake
def _(grad, xb, weights, to_sectors_out):
    return [xb.new_empty(xb.shape), *(w.new_empty(w.shape) for w in weights)]


def _save_sector_inputs(ctx, xb, weights, to_sectors_out):
    ctx.permuted = to_sectors_out is not None
    ctx.save_for_backward(xb, *weights, *((to_sectors_out,) if ctx.permuted else ()))


def _saved_sector_grads(ctx, grad, operator: bool) -> list[torch.Tensor]:
    """``[dxb, *dweights]`` from what :func:`_save_sector_inputs` saved; ``operator``: as the opaque
    :func:`sector_matmul_backward` (the operator's gradient, which a tracer must not look into), else inline
    (the eager twin's)."""
    xb, *weights = ctx.saved_tensors
    to_sectors_out = weights.pop() if ctx.permuted else None
    if torch.is_grad_enabled():  # create_graph=True (e.g. forces from an energy): differentiable ops
        return _sector_matmul_grads(grad, xb, weights, to_sectors_out, in_place=False)
    if operator:
        return sector_matmul_backward(grad, xb, weights, to_sectors_out)
    return _sector_matmul_grads(grad, xb, weights, to_sectors_out)


def _sector_matmul_setup(ctx, inputs, output):
    xb, weights, _, to_sectors_out = inputs
    _save_sector_inputs(ctx, xb, weights, to_sectors_out)


def _sector_matmul_backward(ctx, grad):
    grads = _saved_sector_grads(ctx, grad, operator=True)
    return grads[0], grads[1:], None, None


sector_matmul.register_autograd(_sector_matmul_backward, setup_context=_sector_matmul_setup)


class _SectorMatmul(torch.autograd.Function):
    """:func:`sector_matmul`'s eager twin (the weights as trailing arguments: autograd sees no tensor in a list)."""

    @staticmethod
    def forward(ctx, xb, from_sectors_out, to_sectors_out, *weights):
        _save_sector_inputs(ctx, xb, weights, to_sectors_out)
        return _sector_matmul_forward(xb, list(weights), from_sectors_out)

    @staticmethod
    def backward(ctx, grad):
        grads = _saved_sector_grads(ctx, grad, operator=False)
        return grads[0], None, None, *grads[1:]


def run_sector_matmul(xb: torch.Tensor, weights: list[torch.Tensor], from_sectors_out: torch.Tensor | None,
                      to_sectors_out: torch.Tensor | None) -> torch.Tensor:
    """:func:`sector_matmul`, or eagerly its twin (:func:`use_operator`).

    Parameters
    ----------
    xb : Tensor, shape (T, in * dim)
        Sector-major token rows.
    weights : list of Tensor, shape (k, p * in, p * out)
    from_sectors_out, to_sectors_out : Tensor of long, or None
        The output permutation back to ``(channel, component)`` rows and its inverse (None: stay sector-major).

    Returns
    -------
    Tensor, shape (T, out * dim), contiguous
    """
    if use_operator():
        return sector_matmul(xb, weights, from_sectors_out, to_sectors_out)
    return _SectorMatmul.apply(xb, from_sectors_out, to_sectors_out, *weights)


