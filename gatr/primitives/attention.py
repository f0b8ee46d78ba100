"""Geometric attention as ONE ``scaled_dot_product_attention`` call.

Logits are ``sum_c query_features(q_c) . key_features(k_c) + q_s . k_s`` where the algebra's
features satisfy ``query_features(q) . key_features(k) = <q~ k>_0`` (plus, in the distance-aware
projective backend, minus squared distances): invariant, so the attention weights are invariant and
the output (a weighted sum of whole value multivectors) is equivariant. Multivector features and
scalars are concatenated along the feature axis and fed to SDPA together.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: q, k and v are zero-padded to one common feature length, a multiple of this.
PAD_MULTIPLE = 8


def build_attention_mask(attention_mask, key_padding_mask, dtype, device):
    """Combine an attention mask and a key-padding mask into one SDPA ``attn_mask``.

    Parameters
    ----------
    attention_mask : Tensor, optional
        Bool or integer (nonzero = attend), or additive float, broadcastable to
        ``(..., heads, q_items, k_items)``.
    key_padding_mask : Tensor ``(..., k_items)``, optional
        Bool, True for real items (attend), False for padding.
    dtype, device
        Dtype and device of an additive float mask.

    Returns
    -------
    Tensor or None
        A bool mask (True = attend) if neither input is an additive float mask, else an additive
        float mask with ``-inf`` at padded keys; None if both inputs are None.

    Raises
    ------
    ValueError
        If ``key_padding_mask`` is not bool.
    """
    if key_padding_mask is not None:
        if key_padding_mask.dtype != torch.bool:
            raise ValueError(f"key_padding_mask must be bool (True = real item), got {key_padding_mask.dtype}")
        key_padding_mask = key_padding_mask[..., None, None, :]  # (..., 1, 1, k_items)
    if attention_mask is None:
        return key_padding_mask
    if not attention_mask.dtype.is_floating_point:  # integer 0/1 masks mean attend / not, like bool ones
        attention_mask = attention_mask != 0
    if attention_mask.dtype == torch.bool:
        return attention_mask if key_padding_mask is None else attention_mask & key_padding_mask
    mask = attention_mask.to(dtype=dtype, device=device)
    if key_padding_mask is not None:
        mask = mask.masked_fill(~key_padding_mask, float("-inf"))
    return mask


def geometric_sdpa(alg, q_mv, k_mv, v_mv, q_s, k_s, v_s, attn_mask=None, dropout_p: float = 0.0):
    """Fused geometric attention, heads-first layout.

    Parameters
    ----------
    alg : CliffordAlgebra
    q_mv : Tensor ``(..., heads, q_items, channels, dim)``
    k_mv, v_mv : Tensor ``(..., kv_heads, k_items, channels, dim)``; ``kv_heads`` is ``heads`` or 1
        (multi-query: one key/value head shared by all query heads).
    q_s, k_s, v_s : Tensor ``(..., heads | kv_heads, items, s_channels)``
    attn_mask : Tensor, optional
        Bool (True = attend) or additive float, broadcastable to ``(..., heads, q_items, k_items)``.

    Returns
    -------
    mv : Tensor ``(..., heads, q_items, channels, dim)``
    s : Tensor ``(..., heads, q_items, s_channels)``
    """
    channels, dim = v_mv.shape[-2:]
    q = torch.cat([alg.query_features(q_mv).flatten(-2), q_s], -1)
    k = torch.cat([alg.key_features(k_mv).flatten(-2), k_s], -1)
    v = torch.cat([v_mv.flatten(-2), v_s], -1)
    if q.shape[-1] == 0:
        raise ValueError("attention needs at least one hidden multivector or scalar channel")
    if isinstance(attn_mask, torch.Tensor) and attn_mask.dtype != torch.bool:
        attn_mask = attn_mask.to(q.dtype)
    scale = 1.0 / math.sqrt(q.shape[-1])
    # The fused (flash / memory-efficient) kernels need one head size for q, k and v, and prefer a
    # multiple of 8; otherwise SDPA falls back to the math kernel, which materialises the
    # (items x items) logits. Zero columns change neither q . k nor the kept value columns.
    v_len = v.shape[-1]
    width = -(-max(q.shape[-1], v_len) // PAD_MULTIPLE) * PAD_MULTIPLE
    q, k, v = (F.pad(t, (0, width - t.shape[-1])) if t.shape[-1] != width else t for t in (q, k, v))
    gqa = k.shape[-3] != q.shape[-3]
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale, enable_gqa=gqa
    )
    split = channels * dim
    return out[..., :split].unflatten(-1, (channels, dim)), out[..., split:v_len]
