"""GATr: input EquiLinear, N GATrBlocks, output EquiLinear - for any algebra object."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint as torch_checkpoint

from algebras import get_algebra

from .. import flops as F
from ..layers import EquiLinear, GATrBlock, reference_from_inputs
from ..layers._checks import check_mask_shape
from ..layers._checks import check_inputs


@dataclass
class GATrConfig:
    """Everything needed to build a :class:`GATr` (plain types, so YAML / jsonargparse can fill it).

    ``head_mv_channels`` / ``head_s_channels`` default to ``hidden // num_heads`` (at least 1 mv).
    """

    algebra: str = "projective"
    in_mv_channels: int = 1
    out_mv_channels: int = 1
    hidden_mv_channels: int = 16
    in_s_channels: int = 0
    out_s_channels: int = 0
    hidden_s_channels: int = 32
    num_blocks: int = 4
    num_heads: int = 8
    head_mv_channels: Optional[int] = None
    head_s_channels: Optional[int] = None
    dropout: float = 0.0
    checkpoint: bool = False
    multi_query: bool = False
    activation: str = "gelu"


class GATr(nn.Module):
    """Geometric Algebra Transformer over a pluggable Clifford algebra.

    Parameters
    ----------
    algebra : str or CliffordAlgebra
    in_mv_channels, out_mv_channels, hidden_mv_channels : int
    in_s_channels, out_s_channels, hidden_s_channels : int
    num_blocks, num_heads : int
    dropout : float
    checkpoint : bool
        Gradient checkpointing of every block (saves activation memory, costs one extra forward).
    multi_query : bool
    head_mv_channels, head_s_channels : int, optional
    activation : str

    Shapes
    ------
    forward(mv (..., items, in_mv, dim), scalars (..., items, in_s) or None, attention_mask=None,
    key_padding_mask=None, reference_mv=None) -> (mv (..., items, out_mv, dim), s (..., items, out_s)).
    ``attention_mask``: bool (True = attend) or additive float, broadcastable to
    ``(..., heads, items, items)``; ``key_padding_mask``: bool ``(..., items)``, True = real item.
    ``reference_mv`` (for reference-scaled bilinears such as the projective join) must broadcast
    against ``(..., items, 1, dim)``; default: mean of the input multivectors over (unpadded) items
    and channels. NOTE: for inputs without a pseudoscalar component (e.g. PGA points) that mean has
    none either and the join is zero - pass a reference (or an input channel) with one.
    """

    def __init__(self, algebra, in_mv_channels: int, out_mv_channels: int, hidden_mv_channels: int,
                 in_s_channels: int = 0, out_s_channels: int = 0, hidden_s_channels: int = 0, num_blocks: int = 4,
                 num_heads: int = 8, dropout: float = 0.0, checkpoint: bool = False, multi_query: bool = False,
                 head_mv_channels: int | None = None, head_s_channels: int | None = None, activation: str = "gelu"):
        super().__init__()
        for name, value, low in (("num_heads", num_heads, 1), ("num_blocks", num_blocks, 1),
                                 ("hidden_mv_channels", hidden_mv_channels, 1), ("in_mv_channels", in_mv_channels, 1),
                                 ("out_mv_channels", out_mv_channels, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"GATr: {name} must be an integer >= {low}, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"GATr: dropout must be in [0, 1), got {dropout!r}")
        self.algebra = alg = get_algebra(algebra)
        self.head_mv_channels = head_mv_channels or max(1, hidden_mv_channels // num_heads)
        self.head_s_channels = hidden_s_channels // num_heads if head_s_channels is None else head_s_channels
        self.config = GATrConfig(alg.name, in_mv_channels, out_mv_channels, hidden_mv_channels, in_s_channels,
                                 out_s_channels, hidden_s_channels, num_blocks, num_heads, head_mv_channels,
                                 head_s_channels, dropout, checkpoint, multi_query, activation)
        self.checkpoint = checkpoint
        self.linear_in = EquiLinear(alg, in_mv_channels, hidden_mv_channels, in_s_channels, hidden_s_channels)
        self.blocks = nn.ModuleList(
            GATrBlock(alg, hidden_mv_channels, hidden_s_channels, num_heads, self.head_mv_channels,
                      self.head_s_channels, multi_query, dropout, activation)
            for _ in range(num_blocks)
        )
        self.linear_out = EquiLinear(alg, hidden_mv_channels, out_mv_channels, hidden_s_channels, out_s_channels)

    @classmethod
    def from_config(cls, config: GATrConfig | dict) -> "GATr":
        if isinstance(config, dict):
            config = GATrConfig(**config)
        return cls(**dataclasses.asdict(config))

    def forward(self, mv: torch.Tensor, scalars: torch.Tensor | None = None, attention_mask=None,
                key_padding_mask=None, reference_mv: torch.Tensor | None = None):
        c = self.config
        scalars = check_inputs(self, mv, scalars, c.in_mv_channels, c.in_s_channels)
        if key_padding_mask is not None and key_padding_mask.shape[-1] != mv.shape[-3]:
            raise ValueError(f"GATr: expected key_padding_mask (..., {mv.shape[-3]}) (items), "
                             f"got {tuple(key_padding_mask.shape)}")
        check_mask_shape("key_padding_mask", key_padding_mask, tuple(mv.shape[:-2]))
        if reference_mv is None:
            reference_mv = reference_from_inputs(mv, key_padding_mask)
        h_mv, h_s = self.linear_in(mv, scalars)
        for block in self.blocks:
            args = (h_mv, h_s, attention_mask, key_padding_mask, reference_mv)
            if self.checkpoint and torch.is_grad_enabled():
                h_mv, h_s = torch_checkpoint(block, *args, use_reentrant=False)
            else:
                h_mv, h_s = block(*args)
        return self.linear_out(h_mv, h_s)

    def nominal_flops_per_token(self, num_items: int) -> int:
        """Forward + backward FLOPs per token (item) under the convention of :mod:`gatr.flops`."""
        c, alg = self.config, self.algebra
        forward = (F.equi_linear_flops(alg, c.in_mv_channels, c.hidden_mv_channels, c.in_s_channels,
                                       c.hidden_s_channels)
                   + c.num_blocks * F.gatr_block_flops(alg, c.hidden_mv_channels, c.hidden_s_channels, c.num_heads,
                                                       self.head_mv_channels, self.head_s_channels, num_items,
                                                       c.multi_query)
                   + F.equi_linear_flops(alg, c.hidden_mv_channels, c.out_mv_channels, c.hidden_s_channels,
                                         c.out_s_channels))
        return F.training_flops(forward)
