"""Nominal FLOP accounting shared by all model families.

Convention (the one in DESIGN.md "one convention for all families"):

* a dense matrix product ``(m, k) @ (k, n)`` costs ``2 m k n`` FLOPs (multiply + add);
* only matrix products count (linear layers, equivariant linear maps as their dense
  ``(C_out dim) x (C_in dim)`` matrix, bilinear maps as their tables, attention ``Q K^T`` and
  ``A V``); element-wise work (norms, nonlinearities, softmax, biases, embeddings) is ignored;
* training = forward + backward = ``3 x`` forward (backward costs twice the forward).

The GATr network reports its forward FLOPs per token (``GATr.nominal_flops_per_token``); the baselines
below are counted with the same helpers so the families are comparable.
"""

from __future__ import annotations

__all__ = ["TRAINING_FACTOR", "linear_flops", "attention_flops", "training_flops"]

#: training step FLOPs = TRAINING_FACTOR * forward FLOPs
TRAINING_FACTOR = 3


def linear_flops(in_features: int, out_features: int) -> int:
    """Forward FLOPs of one dense linear map applied to one token: ``2 * in * out``."""
    return 2 * int(in_features) * int(out_features)


def attention_flops(num_items: int, qk_features: int, v_features: int | None = None) -> int:
    """Forward FLOPs per query token of ``softmax(Q K^T) V`` over ``num_items`` keys:
    ``2 n d_qk`` for the scores and ``2 n d_v`` for the weighted sum (summed over heads)."""
    v_features = qk_features if v_features is None else v_features
    return 2 * int(num_items) * (int(qk_features) + int(v_features))


def training_flops(forward_flops: float) -> float:
    """Forward + backward FLOPs from forward FLOPs."""
    return TRAINING_FACTOR * float(forward_flops)
