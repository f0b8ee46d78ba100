"""ONE nominal-FLOP convention for every model family (GATr, transformer, MLP baselines).

Convention
----------
* Forward FLOPs = 2 x the multiply-accumulates (MACs) of every dense matrix product *as executed*:
  - a linear layer ``in -> out`` costs ``2 * in * out`` per token; a GATr ``EquiLinear`` counts as
    its dense ``(out_mv*dim + out_s) x (in_mv*dim + in_s)`` matrix;
  - a bilinear product (geometric product, join, ...) costs ``2 * nnz(table)`` per product;
  - attention costs ``2 * num_items * (qk_features + v_features)`` per query token and head
    (``Q K^T`` and ``A V`` over the full sequence, no causal discount).
* Element-wise work (norms, activations, softmax, biases, residuals, gathers) is NOT counted.
* Backward = 2 x forward, so training FLOPs per token = 3 x forward (:data:`TRAINING_MULTIPLIER`).

Every GATr layer counts its own products (``EquiModule.own_flops_per_token``) with these helpers and
sums its sub-layers; the baselines in ``experiments/models`` count theirs with the same helpers.
"""

from __future__ import annotations

TRAINING_MULTIPLIER = 3  # forward + backward (backward = 2 x forward)


def linear_flops(in_features: int, out_features: int) -> int:
    """Forward FLOPs per token of a dense ``in -> out`` linear layer: ``2 * in * out``.

    Parameters
    ----------
    in_features, out_features : int
        Input and output widths.

    Returns
    -------
    int
    """
    return 2 * int(in_features) * int(out_features)


def attention_flops(num_items: int, qk_features: int, v_features: int, num_heads: int = 1) -> int:
    """Forward FLOPs per query token of ``softmax(Q K^T) V`` over ``num_items`` keys (all heads).

    ``2 * num_items * (qk_features + v_features) * num_heads``: ``Q K^T`` and ``A V`` over the full
    sequence, no causal discount.

    Parameters
    ----------
    num_items : int
        Number of keys.
    qk_features : int
        Length of a query / key per head.
    v_features : int
        Length of a value per head.
    num_heads : int
        Number of heads.

    Returns
    -------
    int
    """
    return 2 * int(num_items) * (int(qk_features) + int(v_features)) * int(num_heads)


def training_flops(forward_flops: float) -> float:
    """Forward + backward FLOPs from forward FLOPs (backward = 2 x forward).

    Parameters
    ----------
    forward_flops : float
        Forward FLOPs.

    Returns
    -------
    float
        ``TRAINING_MULTIPLIER * forward_flops``.
    """
    return TRAINING_MULTIPLIER * forward_flops
