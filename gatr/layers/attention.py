"""Geometric self- and cross-attention: q/k/v by EquiLinear, one fused SDPA call, output EquiLinear."""

from __future__ import annotations

import torch

from algebras import get_algebra

from ..flops import attention_flops
from ..kernels.plan import ExecutionPlan
from ..primitives.attention import build_attention_mask, geometric_sdpa
from ._checks import check_inputs, check_mask_shape
from .base import EquiModule
from .linear import EquiLinear


class _AttentionBase(EquiModule):
    def __init__(self, algebra, out_mv_channels, out_s_channels, num_heads, hidden_mv_channels, hidden_s_channels,
                 multi_query, dropout):
        super().__init__()
        if num_heads < 1 or hidden_mv_channels < 1 or hidden_s_channels < 0:
            raise ValueError(
                f"attention needs num_heads >= 1, hidden_mv_channels >= 1, hidden_s_channels >= 0; got "
                f"{num_heads}, {hidden_mv_channels}, {hidden_s_channels}"
            )
        self.algebra = get_algebra(algebra)
        self.num_heads, self.multi_query, self.dropout = num_heads, multi_query, dropout
        self.hidden_mv_channels, self.hidden_s_channels = hidden_mv_channels, hidden_s_channels
        self.kv_heads = 1 if multi_query else num_heads
        self.out_mv_channels, self.out_s_channels = out_mv_channels, out_s_channels
        self.output = EquiLinear(self.algebra, num_heads * hidden_mv_channels, out_mv_channels,
                                 num_heads * hidden_s_channels, out_s_channels)

    def _split(self, plan, mv, s, heads):
        """Multivector channels ``heads*hm`` (in the plan's layout) and scalars ``heads*hs`` -> one pair
        ``(mv (..., heads, items, ...), s (..., heads, items, hs))``."""
        s = s.unflatten(-1, (heads, self.hidden_s_channels)).transpose(-3, -2)
        return plan.split_heads(mv, heads, self.hidden_mv_channels), s

    def _attend(self, plan, features, q, k, v, attention_mask, key_padding_mask):
        """Attention of the split heads ``q, k, v``: queries and keys in the layout of plan ``features``,
        values (and the output) in that of ``plan``."""
        (q_mv, q_s), (k_mv, k_s), (v_mv, v_s) = q, k, v
        q_mv, k_mv = features.leave(q_mv), features.leave(k_mv)  # the features read blade-ordered multivectors
        if self.validate_inputs:
            logits = (*q_mv.shape[:-4], q_mv.shape[-4], q_mv.shape[-3], k_mv.shape[-3])  # (..., heads, q, k)
            check_mask_shape("attention_mask", attention_mask, logits)
            check_mask_shape("key_padding_mask", key_padding_mask, (*logits[:-3], logits[-1]))
        # validates the dtypes before the masks are used below
        mask = build_attention_mask(attention_mask, key_padding_mask, q_mv.dtype, q_mv.device)
        if key_padding_mask is not None:
            # padded keys get weight 0, but 0 * NaN is NaN: zero their keys and values so that
            # whatever padded items hold never reaches real ones
            real = key_padding_mask[..., None, :, None]  # (..., 1, k_items, 1)
            k_s, v_s = (torch.where(real, t, torch.zeros((), dtype=t.dtype, device=t.device)) for t in (k_s, v_s))
            k_mv, v_mv = (torch.where(real[..., None], t, torch.zeros((), dtype=t.dtype, device=t.device))
                          for t in (k_mv, v_mv))
        # values enter only as whole rows, so values in the plan's layout come back in it
        out_mv, out_s = geometric_sdpa(self.algebra, q_mv, k_mv, v_mv, q_s, k_s, v_s, mask,
                                       self.dropout if self.training else 0.0)
        out_s = out_s.transpose(-3, -2).flatten(-2)
        return self.output(plan.merge_heads(out_mv), out_s, plan=plan)

    def own_flops_per_token(self, num_items: int) -> int:
        """``Q K^T`` and ``A V`` over ``num_items`` keys, per query token (:mod:`gatr.flops`)."""
        qk = self.hidden_mv_channels * self.algebra.attention_feature_dim + self.hidden_s_channels
        v = self.hidden_mv_channels * self.algebra.dim + self.hidden_s_channels
        return attention_flops(num_items, qk, v, self.num_heads)


class GeometricAttention(_AttentionBase):
    """Multi-head geometric self-attention.

    Logits per head: ``sum_c algebra.query_features(q_c) . algebra.key_features(k_c) + q_s . k_s``,
    scaled by ``1/sqrt(feature length)``; values are whole multivectors and scalars. One
    ``scaled_dot_product_attention`` call per forward.

    Parameters
    ----------
    algebra : str or CliffordAlgebra
    in_mv_channels, out_mv_channels, in_s_channels, out_s_channels : int
    num_heads : int
    hidden_mv_channels, hidden_s_channels : int
        Channels per head (queries, keys and values).
    multi_query : bool
        One key/value head shared by all query heads.
    dropout : float
        Attention-weight dropout (training only).
    """

    def __init__(self, algebra, in_mv_channels: int, out_mv_channels: int, in_s_channels: int = 0,
                 out_s_channels: int = 0, num_heads: int = 8, hidden_mv_channels: int = 2,
                 hidden_s_channels: int = 4, multi_query: bool = False, dropout: float = 0.0):
        super().__init__(algebra, out_mv_channels, out_s_channels, num_heads, hidden_mv_channels, hidden_s_channels,
                         multi_query, dropout)
        self.in_mv_channels, self.in_s_channels = in_mv_channels, in_s_channels
        heads = num_heads + 2 * self.kv_heads
        self.qkv = EquiLinear(self.algebra, in_mv_channels, heads * hidden_mv_channels, in_s_channels,
                              heads * hidden_s_channels)
        self.nest_children()

    def forward(self, mv, scalars=None, attention_mask=None, key_padding_mask=None, plan: ExecutionPlan | None = None):
        """Self-attention over the items.

        Parameters
        ----------
        mv : Tensor, shape (..., items, in_mv_channels, dim)
            Multivector inputs (in the plan's layout when a ``plan`` is given).
        scalars : Tensor, shape (..., items, in_s_channels), optional
            Scalar inputs; None only when ``in_s_channels == 0``.
        attention_mask : Tensor, optional
            Bool or integer (nonzero = attend) or additive float, broadcastable to
            ``(..., heads, items, items)`` without growing it.
        key_padding_mask : Tensor of bool, shape (..., items), optional
            True for real items, False for padding; padded keys and values are zeroed, so whatever
            they hold (even nan) never reaches real items.
        plan : ExecutionPlan, optional
            The plan of the enclosing network (:mod:`gatr.kernels.plan`); None: this layer's own.

        Returns
        -------
        mv : Tensor, shape (..., items, out_mv_channels, dim)
            In the plan's layout when a ``plan`` is given.
        scalars : Tensor, shape (..., items, out_s_channels)
            Always a tensor (0 channels wide when ``out_s_channels == 0``).
        """
        if plan is None:
            if self.validate_inputs:
                scalars = check_inputs(self, mv, scalars, self.in_mv_channels, self.in_s_channels)
            plan = self.own_plan(mv)  # no bilinears: blade order
        y_mv, y_s = self.qkv(mv, scalars, plan=plan)
        h, kvh, hm, hs = self.num_heads, self.kv_heads, self.hidden_mv_channels, self.hidden_s_channels
        q_mv, k_mv, v_mv = y_mv.split([h * hm, kvh * hm, kvh * hm], plan.channel_axis)
        q_s, k_s, v_s = y_s.split([h * hs, kvh * hs, kvh * hs], -1)
        # the features read blade-ordered queries and keys (values enter only as whole rows: they stay in the
        # plan's layout). Eagerly they leave it before the heads are split, a copy of whole rows of channels
        # rather than a gather of a few channels per row; compiled, either fuses into the features.
        leave_first = plan.labels is not None and not torch.compiler.is_compiling()
        features = plan.in_blade_order() if leave_first else plan
        if leave_first:
            q_mv, k_mv = plan.leave(q_mv), plan.leave(k_mv)
        q = self._split(features, q_mv, q_s, h)
        k = self._split(features, k_mv, k_s, kvh)
        v = self._split(plan, v_mv, v_s, kvh)
        return self._attend(plan, features, q, k, v, attention_mask, key_padding_mask)


class GeometricCrossAttention(_AttentionBase):
    """Geometric cross-attention: queries from ``(mv, scalars)``, keys/values from ``(kv_mv, kv_scalars)``.

    Parameters
    ----------
    algebra : str or CliffordAlgebra
    in_mv_channels, in_s_channels : int
        Channels of the query inputs.
    kv_mv_channels, kv_s_channels : int
        Channels of the key/value inputs.
    out_mv_channels, out_s_channels : int
    num_heads : int
    hidden_mv_channels, hidden_s_channels : int
        Channels per head (queries, keys and values).
    multi_query : bool
        One key/value head shared by all query heads.
    dropout : float
        Attention-weight dropout (training only).
    """

    def __init__(self, algebra, in_mv_channels: int, kv_mv_channels: int, out_mv_channels: int,
                 in_s_channels: int = 0, kv_s_channels: int = 0, out_s_channels: int = 0, num_heads: int = 8,
                 hidden_mv_channels: int = 2, hidden_s_channels: int = 4, multi_query: bool = False,
                 dropout: float = 0.0):
        super().__init__(algebra, out_mv_channels, out_s_channels, num_heads, hidden_mv_channels, hidden_s_channels,
                         multi_query, dropout)
        self.in_mv_channels, self.in_s_channels = in_mv_channels, in_s_channels
        self.kv_mv_channels, self.kv_s_channels = kv_mv_channels, kv_s_channels
        self.q = EquiLinear(self.algebra, in_mv_channels, num_heads * hidden_mv_channels, in_s_channels,
                            num_heads * hidden_s_channels)
        self.kv = EquiLinear(self.algebra, kv_mv_channels, 2 * self.kv_heads * hidden_mv_channels, kv_s_channels,
                             2 * self.kv_heads * hidden_s_channels)
        self.nest_children()

    def forward(self, mv, scalars, kv_mv, kv_scalars=None, attention_mask=None, key_padding_mask=None):
        """Attention of the query items to the key/value items.

        Parameters
        ----------
        mv : Tensor, shape (..., q_items, in_mv_channels, dim)
            Multivectors the queries are computed from.
        scalars : Tensor, shape (..., q_items, in_s_channels) or None
            Scalars of the queries; None only when ``in_s_channels == 0``.
        kv_mv : Tensor, shape (..., k_items, kv_mv_channels, dim)
            Multivectors the keys and values are computed from.
        kv_scalars : Tensor, shape (..., k_items, kv_s_channels), optional
            None only when ``kv_s_channels == 0``.
        attention_mask : Tensor, optional
            Bool or integer (nonzero = attend) or additive float, broadcastable to
            ``(..., heads, q_items, k_items)`` without growing it.
        key_padding_mask : Tensor of bool, shape (..., k_items), optional
            True for real items, False for padding; padded keys and values are zeroed, so whatever
            they hold (even nan) never reaches real items.

        Returns
        -------
        mv : Tensor, shape (..., q_items, out_mv_channels, dim)
        scalars : Tensor, shape (..., q_items, out_s_channels)
            Always a tensor (0 channels wide when ``out_s_channels == 0``).
        """
        if self.validate_inputs:
            scalars = check_inputs(self, mv, scalars, self.in_mv_channels, self.in_s_channels, "query")
            kv_scalars = check_inputs(self, kv_mv, kv_scalars, self.kv_mv_channels, self.kv_s_channels, "key/value")
        plan = self.own_plan(mv)  # no bilinears: blade order
        k_mv_channels, k_s_channels = self.kv_heads * self.hidden_mv_channels, self.kv_heads * self.hidden_s_channels
        q = self._split(plan, *self.q(mv, scalars, plan=plan), self.num_heads)
        kv_mv, kv_s = self.kv(kv_mv, kv_scalars, plan=plan)  # keys' channels, then values'
        k = self._split(plan, kv_mv.narrow(plan.channel_axis, 0, k_mv_channels), kv_s[..., :k_s_channels],
                        self.kv_heads)
        v = self._split(plan, kv_mv.narrow(plan.channel_axis, k_mv_channels, k_mv_channels),
                        kv_s[..., k_s_channels:], self.kv_heads)
        return self._attend(plan, plan, q, k, v, attention_mask, key_padding_mask)
