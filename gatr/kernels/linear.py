"""Execution kernels of the equivariant linear map (:mod:`gatr.primitives.linear`), chosen by name.

* ``"dense"``: one ``F.linear`` with the assembled block matrix (one GEMM; best for few tokens and
  where a large GEMM is cheap, e.g. on GPUs).
* ``"sparse"``: the same sums without the zeros of the ``B_m``. No map connects components of
  different blocks (the connected components of the maps' support: 8 blocks of ``dim / 8`` components
  in every shipped algebra), so the map is block diagonal after one permutation of the components
  and runs as ONE batched GEMM over blocks, ``(blocks, T, p * in) @ (blocks, p * in, p * out)``
  (``dim / p`` times fewer multiply-adds than dense); scalars enter (and leave) only through the few
  components the invariant basis (functionals) touch.
* ``"auto"``: sparse on CPUs from :data:`SPARSE_MIN_TOKENS` tokens when blocks have 2 or more
  components or under ``torch.compile``, dense otherwise (measured; see :func:`select_linear_kernel`).

Every kernel returns ``(mv (..., out_mv, dim), scalars (..., out_s))``; the results agree to rounding.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from algebras.components import ComponentIndex, component_index, select, spread

from ..primitives.linear import equi_bias, equi_matrix
from .block_layout import block_layout, connected_blocks, from_blocks, to_blocks

#: Token count (product of the leading axes) from which ``"auto"`` runs the sparse kernel on CPUs.
SPARSE_MIN_TOKENS = 64


def dense_linear(alg, mv, scalars, w_mv, w_s2mv, w_mv2s, w_s, b_mv, b_s):
    """``F.linear`` on ``[mv.flatten(-2), scalars]`` with :func:`equi_matrix` and :func:`equi_bias`.

    Parameters
    ----------
    alg : NetworkAlgebra
    mv : Tensor, shape (..., in_mv, dim)
    scalars : Tensor, shape (..., in_s), or None
    w_mv, w_s2mv, w_mv2s, w_s, b_mv, b_s : Tensor or None
        The weights of :func:`gatr.primitives.linear.equi_matrix` and the biases of
        :func:`gatr.primitives.linear.equi_bias`.

    Returns
    -------
    mv : Tensor, shape (..., out_mv, dim)
    scalars : Tensor, shape (..., out_s)
    """
    out_mv, dim = w_mv.shape[0], alg.dim
    x = mv.flatten(-2)
    if scalars is not None and scalars.shape[-1] > 0:
        x = torch.cat([x, scalars.to(x.dtype)], -1)
    y = F.linear(x, equi_matrix(alg, w_mv, w_s2mv, w_mv2s, w_s), equi_bias(alg, b_mv, b_s))
    split = out_mv * dim
    return y[..., :split].unflatten(-1, (out_mv, dim)), y[..., split:]


class SparseStructure(NamedTuple):
    """The block-diagonal form of the equivariant maps on one (device, dtype), built by :func:`sparse_structure`.

    Components fall into blocks that no map connects (the connected components of the maps' joint
    support): ``B_m[a, b] = 0`` unless ``a`` and ``b`` share a block. Every shipped algebra has 8 blocks
    of ``dim / 8`` components (G(3,0,1): ``{e_A, e_0 e_A}``; G(4,1,0): 4 components each).

    Parameters
    ----------
    order : Tensor of long, shape (dim,)
        The components in block order: blocks of equal size side by side, groups of sizes one after the other.
    position : Tensor of long, shape (dim,)
        The inverse permutation: ``order[position[a]] == a``.
    groups : tuple of (int, int)
        ``(blocks, block_size)`` per group of equally sized blocks, in the order of ``order``.
    block_bases : tuple of Tensor, shape (n_maps, blocks, block_size, block_size)
        Per group, ``B_m`` restricted to each block: ``[m, k, q, p] = B_m[block_k[q], block_k[p]]``.
    inv, fun : ComponentIndex
        The components the invariant multivectors / functionals touch (:mod:`algebras.components`).
    inv_blocks, fun_blocks : ComponentIndex
        The same components by their positions in ``order``.
    inv_basis : Tensor, shape (k, n_inv)
        The invariant multivectors on those components.
    fun_basis : Tensor, shape (k', n_fun)
        The invariant functionals on those components.
    """

    order: torch.Tensor
    position: torch.Tensor
    groups: tuple
    block_bases: tuple
    inv: ComponentIndex
    fun: ComponentIndex
    inv_blocks: ComponentIndex
    fun_blocks: ComponentIndex
    inv_basis: torch.Tensor
    fun_basis: torch.Tensor


def sparse_structure(t) -> SparseStructure:
    """:class:`SparseStructure` from the algebra's tensors (cached through ``t.derived``).

    Parameters
    ----------
    t : AlgebraTensors
        The algebra's constants on one (device, dtype).

    Returns
    -------
    SparseStructure
    """
    basis = t.linear_basis  # (m, a, b)
    layout = t.derived(block_layout)
    if layout is not None:  # the label order: blocks are aligned ranges of labels, bilinears xor shifts
        blocks = layout.order.view(-1, 1 << layout.block_bits).tolist()
    else:
        blocks = connected_blocks((basis != 0).any(0).cpu())
    groups, block_bases, order = [], [], []
    for size in sorted({len(b) for b in blocks}):
        members = torch.tensor([b for b in blocks if len(b) == size], device=t.device)  # (k, p)
        groups.append(tuple(members.shape))
        block_bases.append(basis[:, members[:, :, None], members[:, None, :]].contiguous())
        order.append(members.reshape(-1))
    order = torch.cat(order)
    position = torch.empty_like(order)
    position[order] = torch.arange(order.numel(), device=t.device)
    inv = torch.nonzero(t.invariant_basis.abs().sum(0) > 0).flatten()
    fun = torch.nonzero(t.invariant_functionals.abs().sum(0) > 0).flatten()
    dim = order.numel()
    return SparseStructure(order, position, tuple(groups), tuple(block_bases), component_index(inv, dim),
                           component_index(fun, dim), component_index(position[inv], dim),
                           component_index(position[fun], dim), t.invariant_basis[:, inv],
                           t.invariant_functionals[:, fun])


def _block_major(st: SparseStructure, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Column permutations between token rows ``(channel, component)`` and block-major rows
    ``(component in block order, channel)``, and back."""
    c = torch.arange(channels, device=st.order.device)
    dim = st.order.numel()
    to_blocks = (c[None, :] * dim + st.order[:, None]).reshape(-1)  # (q, i) reads (i, order[q])
    from_blocks = (st.position[None, :] * channels + c[:, None]).reshape(-1)  # (i, a) reads (position[a], i)
    return to_blocks, from_blocks


def _columns(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[:, index]`` for 2-d ``x`` (a gather: faster than ``index_select`` along columns)."""
    return torch.gather(x, 1, index.expand(x.shape[0], -1))


def _group_view(rows: torch.Tensor, offset: int, blocks: int, width: int) -> torch.Tensor:
    """The ``(blocks, T, width)`` strided view of one group's blocks in block-major ``(T, ...)`` rows."""
    return rows[:, offset : offset + blocks * width].unflatten(1, (blocks, width)).transpose(0, 1)


def _block_products(xb: torch.Tensor, weights: list[torch.Tensor], transpose: bool = False,
                    in_place: bool = True) -> torch.Tensor:
    """``(T, blocks * p * a)`` block-major rows times each group's ``(k, p * a, p * b)`` block weights (or
    their transposes) -> ``(T, blocks * p * b)`` block-major rows.

    Every group is one ``bmm`` that reads its blocks in place (strided). With ``in_place`` it also writes
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


@torch.library.custom_op("gatr::permute_columns", mutates_args=())
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
    return permute_columns(grad, inverse, index), None, None


permute_columns.register_autograd(_permute_columns_backward, setup_context=_permute_columns_setup)


@torch.library.custom_op("gatr::block_matmul", mutates_args=())
def block_matmul(xb: torch.Tensor, weights: list[torch.Tensor], from_blocks_out: torch.Tensor | None) -> torch.Tensor:
    """The multivector part of the sparse kernel as one opaque operator: one batched GEMM per group of
    equal blocks on block-major rows, then (unless ``from_blocks_out`` is None) the output permuted back
    to ``(channel, component)`` rows.

    Parameters
    ----------
    xb : Tensor, shape (T, in * dim)
        Block-major token rows ``(component in block order, channel)`` (:func:`permute_columns`).
    weights : list of Tensor, shape (k, p * in, p * out)
        Per group of blocks, the blocks' weights ``[k, (p, i), (q, o)]``.
    from_blocks_out : Tensor of long, or None
        The second permutation of :func:`_block_major` for the output channels; None keeps the output
        block-major (the block layout of :mod:`gatr.kernels.block_layout`).

    Returns
    -------
    Tensor, shape (T, out * dim), contiguous
    """
    out = _block_products(xb, weights)
    return out if from_blocks_out is None else _columns(out, from_blocks_out)


@block_matmul.register_fake
def _(xb, weights, from_blocks_out):
    return xb.new_empty(xb.shape[0], sum(w.shape[0] * w.shape[2] for w in weights))


def _block_matmul_grads(grad, xb, weights, to_blocks_out, in_place: bool = True) -> list[torch.Tensor]:
    """``[dxb, *dweights]`` of :func:`block_matmul`; ``in_place=False`` keeps every step differentiable."""
    gb = grad.to(xb.dtype).contiguous() if to_blocks_out is None else _columns(grad.to(xb.dtype), to_blocks_out)
    grads, offset_x, offset_g = [_block_products(gb, weights, transpose=True, in_place=in_place)], 0, 0
    for w in weights:
        k, rows, cols = w.shape
        xg, gg = _group_view(xb, offset_x, k, rows), _group_view(gb, offset_g, k, cols)
        grads.append(torch.bmm(xg.transpose(1, 2), gg).to(w.dtype))
        offset_x, offset_g = offset_x + k * rows, offset_g + k * cols
    return grads


@torch.library.custom_op("gatr::block_matmul_backward", mutates_args=())
def block_matmul_backward(grad: torch.Tensor, xb: torch.Tensor, weights: list[torch.Tensor],
                          to_blocks_out: torch.Tensor | None) -> list[torch.Tensor]:
    """Gradients of :func:`block_matmul` (one opaque operator): ``[dxb, *dweights]``.

    Parameters
    ----------
    grad : Tensor, shape (T, out * dim)
    xb, weights
        The inputs of :func:`block_matmul`.
    to_blocks_out : Tensor of long, or None
        The inverse of the forward's ``from_blocks_out`` (None: the output was block-major).

    Returns
    -------
    list of Tensor
        ``dxb (T, in * dim)`` (block-major, like ``xb``), then ``dweights`` shaped like ``weights``.
    """
    return _block_matmul_grads(grad, xb, weights, to_blocks_out)


@block_matmul_backward.register_fake
def _(grad, xb, weights, to_blocks_out):
    return [xb.new_empty(xb.shape), *(w.new_empty(w.shape) for w in weights)]


def _block_matmul_setup(ctx, inputs, output):
    xb, weights, from_blocks_out = inputs
    ctx.permuted = from_blocks_out is not None
    ctx.save_for_backward(xb, *weights, *((from_blocks_out,) if ctx.permuted else ()))


def _block_matmul_backward(ctx, grad):
    xb, *weights = ctx.saved_tensors
    # the inverse permutation: argsort of a permutation (a few hundred entries)
    to_blocks_out = torch.argsort(weights.pop()) if ctx.permuted else None
    if torch.is_grad_enabled():  # create_graph=True (e.g. forces from an energy): differentiable ops
        grads = _block_matmul_grads(grad, xb, weights, to_blocks_out, in_place=False)
    else:
        grads = block_matmul_backward(grad, xb, weights, to_blocks_out)
    return grads[0], grads[1:], None


block_matmul.register_autograd(_block_matmul_backward, setup_context=_block_matmul_setup)


def sparse_linear(alg, mv, scalars, w_mv, w_s2mv, w_mv2s, w_s, b_mv, b_s, blocks_in: bool = False,
                  blocks_out: bool = False):
    """The map of :func:`dense_linear` as one batched GEMM over the blocks of :class:`SparseStructure`.

    Tokens are permuted to block-major order (one gather), every block runs its own dense
    ``(T, p * in) @ (p * in, p * out)`` map (``dim * p * in * out`` multiply-adds per token instead of the
    dense ``dim^2 * in * out``: 1/8 in every shipped algebra), and one gather restores the blade order.
    Scalars enter (and leave) through the few components the invariant basis (functionals) touch.
    In the block layout (:mod:`gatr.kernels.block_layout`) inputs and outputs are already block-major,
    and the gathers are skipped.

    Parameters
    ----------
    alg : NetworkAlgebra
    mv : Tensor, shape (..., in_mv, dim), or (..., dim, in_mv) in block order with ``blocks_in``
    scalars : Tensor, shape (..., in_s), or None
    w_mv, w_s2mv, w_mv2s, w_s, b_mv, b_s : Tensor or None
        The weights of :func:`gatr.primitives.linear.equi_matrix` and the biases of
        :func:`gatr.primitives.linear.equi_bias`.
    blocks_in, blocks_out : bool
        Multivector inputs / outputs in the block layout: ``(..., dim, channels)`` with the components in
        the order ``SparseStructure.order``.

    Returns
    -------
    mv : Tensor, shape (..., out_mv, dim), or (..., dim, out_mv) with ``blocks_out``
    scalars : Tensor, shape (..., out_s)
    """
    dim = alg.dim
    out_mv, in_mv, _ = w_mv.shape
    lead = mv.shape[:-2]
    x = mv.reshape(-1, in_mv * dim)
    n = x.shape[0]
    st = alg.tensors(w_mv.device, w_mv.dtype).derived(sparse_structure)
    # block weights [k, (p, i), (q, o)] = sum_m W[o, i, m] B_m[block_k[q], block_k[p]]
    weights = [torch.einsum("oim,mkqp->kpiqo", w_mv, basis).reshape(k, p * in_mv, p * out_mv)
               for (k, p), basis in zip(st.groups, st.block_bases)]
    # under autocast the einsum ran in the autocast dtype: the GEMMs run there, as F.linear's would
    x = x.to(weights[0].dtype)
    xb = x.contiguous() if blocks_in else permute_columns(x, *_block_major(st, in_mv))  # (T, (block order, in))
    out = block_matmul(xb, weights, None if blocks_out else _block_major(st, out_mv)[1])
    out = out.view(n, dim, out_mv) if blocks_out else out.view(n, out_mv, dim)
    # scalars and biases enter the multivector outputs along the invariant components only
    s = scalars.reshape(-1, scalars.shape[-1]).to(x.dtype) if scalars is not None and scalars.shape[-1] else None
    ys = None
    if w_s2mv is not None or b_mv is not None:
        bias = (b_mv @ st.inv_basis).t().reshape(-1) if b_mv is not None else None  # (n_inv * out)
        if w_s2mv is not None and s is not None:
            v = torch.einsum("osk,kc->sco", w_s2mv, st.inv_basis).reshape(w_s2mv.shape[1], -1)
            ys = s @ v if bias is None else torch.addmm(bias, s, v)
        elif bias is not None:
            ys = bias.expand(n, -1)
    if ys is not None and torch.compiler.is_compiling():
        # compiled, an in-place index_add becomes atomic adds; spread is a gather fused into one add
        ys = ys.view(n, -1, out_mv)
        out = out + (spread(ys, st.inv_blocks, 1) if blocks_out else spread(ys.transpose(1, 2), st.inv, 2))
    elif ys is not None and blocks_out:  # rows (component in block order, channel)
        out.index_add_(1, st.inv_blocks.index, ys.view(n, -1, out_mv))
    elif ys is not None:
        out.index_add_(2, st.inv.index, ys.view(n, -1, out_mv).transpose(1, 2))
    out = out.view(*lead, *out.shape[1:])
    if w_mv2s is None:
        return out, out.new_zeros(*lead, 0)
    if blocks_in:  # features ordered (functional component, channel)
        u = torch.einsum("pik,kc->pci", w_mv2s, st.fun_basis).reshape(w_mv2s.shape[0], -1)
        feats = select(mv.reshape(n, dim, in_mv), st.fun_blocks, 1).reshape(n, -1)
    else:
        u = torch.einsum("pik,kc->pic", w_mv2s, st.fun_basis).reshape(w_mv2s.shape[0], -1)
        feats = select(mv.reshape(n, in_mv, dim), st.fun, 2).reshape(n, -1)
    if w_s is not None and s is not None:
        feats = torch.cat([feats, s], -1)
        u = torch.cat([u, w_s], 1)
    return out, F.linear(feats, u, b_s).reshape(*lead, -1)


#: The kernels by name (``"auto"`` is resolved by :func:`select_linear_kernel`).
LINEAR_KERNELS = {"dense": dense_linear, "sparse": sparse_linear}


def select_linear_kernel(name: str, tokens: int, device: torch.device, block_size: int = 2):
    """The kernel function for ``name`` at this size and device.

    Parameters
    ----------
    name : {"auto", "dense", "sparse"}
    tokens : int
        Product of the leading axes of the input.
    device : torch.device
    block_size : int
        Largest block of :class:`SparseStructure` (components per block).

    Returns
    -------
    callable
        A function of :data:`LINEAR_KERNELS`.

    Raises
    ------
    ValueError
        For an unknown name, listing the valid ones.
    """
    if name == "auto":
        # measured on 2 CPU cores (python -m experiments.benchmark): eagerly, with blocks of one component
        # (G(3,0,0)) the per-block GEMMs are too thin to beat one dense GEMM; from 2 (G(3,0,1)) sparse wins
        # from ~64 tokens, with 4 (G(4,1,0)) by 2x. Compiled, sparse wins for G(3,0,0) too (whole network
        # 1.7x, with the bilinear layers in the block layout). On GPUs the one dense GEMM was faster.
        sparse_blocks = block_size >= 2 or torch.compiler.is_compiling()
        name = "sparse" if device.type == "cpu" and tokens >= SPARSE_MIN_TOKENS and sparse_blocks else "dense"
    try:
        return LINEAR_KERNELS[name]
    except KeyError:
        raise ValueError(f"unknown linear kernel {name!r}; valid: {['auto', *LINEAR_KERNELS]}") from None


def equi_linear(alg, mv, scalars, w_mv, w_s2mv=None, w_mv2s=None, w_s=None, b_mv=None, b_s=None,
                kernel: str = "auto", blocks_in: bool = False, blocks_out: bool = False):
    """Apply the equivariant linear map with the named kernel.

    Parameters
    ----------
    alg : NetworkAlgebra
    mv : Tensor ``(..., in_mv, dim)``, or ``(..., dim, in_mv)`` in the block layout with ``blocks_in``
    scalars : Tensor ``(..., in_s)`` or None
    w_mv, w_s2mv, w_mv2s, w_s, b_mv, b_s : weights, see :func:`gatr.primitives.linear.equi_matrix`
    kernel : {"auto", "dense", "sparse"}
    blocks_in, blocks_out : bool
        Multivector inputs / outputs in the block layout (:mod:`gatr.kernels.block_layout`; the algebra
        must have one). The sparse kernel reads and writes it directly; the dense one permutes.

    Returns
    -------
    ``(mv (..., out_mv, dim), scalars (..., out_s))``; ``mv`` is ``(..., dim, out_mv)`` with ``blocks_out``.
    """
    channels = mv.shape[-1] if blocks_in else mv.shape[-2]
    tokens = mv.numel() // max(1, alg.dim * channels)
    fn = resolve_linear_kernel(alg, kernel, tokens, mv.device, w_mv.dtype)
    if fn is sparse_linear:
        return fn(alg, mv, scalars, w_mv, w_s2mv, w_mv2s, w_s, b_mv, b_s, blocks_in=blocks_in, blocks_out=blocks_out)
    layout = alg.tensors(mv.device, w_mv.dtype).derived(block_layout) if blocks_in or blocks_out else None
    out, s = fn(alg, from_blocks(layout, mv) if blocks_in else mv, scalars, w_mv, w_s2mv, w_mv2s, w_s, b_mv, b_s)
    return (to_blocks(layout, out) if blocks_out else out), s


def resolve_linear_kernel(alg, kernel: str, tokens: int, device: torch.device, dtype: torch.dtype):
    """:func:`select_linear_kernel` with the algebra's largest block (read only for ``"auto"``).

    Parameters
    ----------
    alg : NetworkAlgebra
    kernel : {"auto", "dense", "sparse"}
    tokens : int
        Product of the leading axes of the input.
    device : torch.device
    dtype : torch.dtype
        Dtype of the weights (whose cached constants are read).

    Returns
    -------
    callable
        A function of :data:`LINEAR_KERNELS`.
    """
    block_size = 2
    if kernel == "auto":
        groups = alg.tensors(device, dtype).derived(sparse_structure).groups
        block_size = max(p for _, p in groups)
    return select_linear_kernel(kernel, tokens, device, block_size)


def uses_block_layout(alg, bilinear_kernel: str, linear_kernel: str, mv: torch.Tensor) -> bool:
    """Whether bilinears with ``bilinear_kernel`` run in the block layout (:mod:`gatr.kernels.block_layout`) on ``mv``.

    Kernel ``"xor"`` always does where the algebra has a block layout; ``"auto"`` does under
    ``torch.compile`` on CPUs where ``linear_kernel`` resolves to the sparse map (the compiler fuses the
    shifts into one loop and the block-major rows need no permutation; run eagerly, the shifts are many
    small operations and the table GEMM is faster).

    Parameters
    ----------
    alg : NetworkAlgebra
    bilinear_kernel, linear_kernel : str
    mv : Tensor, shape (..., channels, dim)
        Blade-ordered multivectors the layer is called on (their tokens, device and dtype decide).

    Returns
    -------
    bool
    """
    if bilinear_kernel not in ("auto", "xor") or alg.tensors(mv.device, mv.dtype).derived(block_layout) is None:
        return False
    if bilinear_kernel == "xor":
        return True
    tokens = mv.numel() // max(1, mv.shape[-1] * mv.shape[-2])
    return (torch.compiler.is_compiling() and mv.device.type == "cpu"
            and resolve_linear_kernel(alg, linear_kernel, tokens, mv.device, mv.dtype) is sparse_linear)
