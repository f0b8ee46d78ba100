"""ONE nominal-FLOP convention for every model family (GATr, transformer, MLP baselines).

Convention
----------
* Forward FLOPs = 2 x the multiply-accumulates (MACs) of every dense matrix product *as executed*:
  - a linear layer ``in -> out`` costs ``2 * in * out`` per token; a GATr ``EquiLinear`` counts as
    its dense ``(out_mv*dim + out_s) x (in_mv*dim + in_s)`` matrix (which is what runs);
  - a bilinear product (geometric product, join, ...) costs ``2 * nnz(table)`` per product;
  - attention costs ``2 * num_items * (qk_features + v_features)`` per query token and head
    (``Q K^T`` and ``A V`` over the full sequence, no causal discount).
* Element-wise work (norms, activations, softmax, biases, residuals, gathers) is NOT counted.
* Backward = 2 x forward, so training FLOPs per token = 3 x forward (:data:`TRAINING_MULTIPLIER`).

All functions return FLOPs **per token (item)**; multiply by tokens (batch * items) and steps for
totals. Baselines in ``experiments/`` import these helpers so all scaling plots share the convention.
"""

from __future__ import annotations

import numpy as np

TRAINING_MULTIPLIER = 3  # forward + backward (backward = 2 x forward)


def linear_flops(in_features: int, out_features: int) -> int:
    """Forward FLOPs per token of a dense ``in -> out`` linear layer."""
    return 2 * int(in_features) * int(out_features)


def mlp_flops(in_features: int, hidden_features: int, out_features: int | None = None, layers: int = 2) -> int:
    """Forward FLOPs per token of an MLP ``in -> hidden (x layers-1) -> out``."""
    out_features = in_features if out_features is None else out_features
    if layers < 1:
        raise ValueError(f"layers must be >= 1, got {layers}")
    if layers == 1:
        return linear_flops(in_features, out_features)
    return (linear_flops(in_features, hidden_features) + (layers - 2) * linear_flops(hidden_features, hidden_features)
            + linear_flops(hidden_features, out_features))


def attention_flops(num_items: int, qk_features: int, v_features: int, num_heads: int = 1) -> int:
    """Forward FLOPs per query token of ``softmax(Q K^T) V`` over ``num_items`` keys (all heads)."""
    return 2 * int(num_items) * (int(qk_features) + int(v_features)) * int(num_heads)


def transformer_block_flops(d_model: int, num_items: int, ffn_hidden: int | None = None) -> int:
    """Forward FLOPs per token of a standard pre-norm transformer block (qkv, attention, out, FFN)."""
    ffn_hidden = 4 * d_model if ffn_hidden is None else ffn_hidden
    return (linear_flops(d_model, 3 * d_model) + attention_flops(num_items, d_model, d_model)
            + linear_flops(d_model, d_model) + mlp_flops(d_model, ffn_hidden, d_model))


def transformer_flops(d_model: int, num_layers: int, num_items: int, in_features: int, out_features: int,
                      ffn_hidden: int | None = None) -> int:
    """Forward FLOPs per token of embedding + ``num_layers`` blocks + output head."""
    return (linear_flops(in_features, d_model) + num_layers * transformer_block_flops(d_model, num_items, ffn_hidden)
            + linear_flops(d_model, out_features))


# ---------------------------------------------------------------------- GATr pieces
def equi_linear_flops(algebra, in_mv: int, out_mv: int, in_s: int = 0, out_s: int = 0) -> int:
    """An EquiLinear counted as its dense matrix."""
    return linear_flops(in_mv * algebra.dim + in_s, out_mv * algebra.dim + out_s)


def bilinear_product_flops(algebra) -> int:
    """FLOPs of one product per bilinear of ``algebra.bilinears`` together: ``2 * sum_b nnz(T_b)``."""
    return 2 * sum(int(np.count_nonzero(b.table)) for b in algebra.bilinears)


def geometric_bilinear_flops(algebra, in_mv: int, out_mv: int, in_s: int, out_s: int, hidden_mv: int) -> int:
    """GeometricBilinear: operand projection + products + output EquiLinear."""
    nb = len(algebra.bilinears)
    return (equi_linear_flops(algebra, in_mv, 2 * hidden_mv * nb, in_s, 0) + hidden_mv * bilinear_product_flops(algebra)
            + equi_linear_flops(algebra, hidden_mv * nb, out_mv, in_s, out_s))


def geometric_attention_flops(algebra, in_mv: int, out_mv: int, in_s: int, out_s: int, num_heads: int,
                              head_mv: int, head_s: int, num_items: int, multi_query: bool = False) -> int:
    """Self-attention: qkv EquiLinear + fused attention + output EquiLinear."""
    kv_heads = 1 if multi_query else num_heads
    heads = num_heads + 2 * kv_heads
    qk = head_mv * algebra.attention_feature_dim + head_s
    v = head_mv * algebra.dim + head_s
    return (equi_linear_flops(algebra, in_mv, heads * head_mv, in_s, heads * head_s)
            + attention_flops(num_items, qk, v, num_heads)
            + equi_linear_flops(algebra, num_heads * head_mv, out_mv, num_heads * head_s, out_s))


def gatr_block_flops(algebra, mv: int, s: int, num_heads: int, head_mv: int, head_s: int, num_items: int,
                     multi_query: bool = False) -> int:
    """GATrBlock: attention + MLP (bilinear c -> 2c, EquiLinear 2c -> c)."""
    nb = len(algebra.bilinears)
    return (geometric_attention_flops(algebra, mv, mv, s, s, num_heads, head_mv, head_s, num_items, multi_query)
            + geometric_bilinear_flops(algebra, mv, 2 * mv, s, 2 * s, max(1, 2 * mv // nb))
            + equi_linear_flops(algebra, 2 * mv, mv, 2 * s, s))


def training_flops(forward_flops: float) -> float:
    """Forward + backward FLOPs from forward FLOPs (backward = 2 x forward)."""
    return TRAINING_MULTIPLIER * forward_flops
