"""Shape validation shared by the layers: clear ValueErrors naming what was expected."""

from __future__ import annotations

import torch


def check_inputs(layer, mv, scalars, mv_channels: int, s_channels: int, what: str = "input"):
    """Validate ``mv (..., items, mv_channels, dim)`` and ``scalars (..., items, s_channels)``.

    ``scalars`` may be None only when ``s_channels == 0``. Returns ``scalars`` (None if empty).
    """
    dim = layer.algebra.dim
    name = type(layer).__name__
    if not isinstance(mv, torch.Tensor):
        raise TypeError(f"{name}: {what} multivectors must be a torch.Tensor, got {type(mv).__name__}")
    if mv.ndim < 3 or mv.shape[-1] != dim or mv.shape[-2] != mv_channels:
        raise ValueError(
            f"{name}: expected {what} multivectors of shape (..., items, {mv_channels}, {dim}) "
            f"({mv_channels} channels of the {layer.algebra.name} algebra, dim {dim}), got {tuple(mv.shape)}"
        )
    # the first parameter's dtype (a loop, not next(..., None): torch 2.5's compiler cannot trace that form)
    expected = None
    for p in layer.parameters():
        expected = p.dtype
        break
    if expected is not None and mv.dtype != expected and not torch.is_autocast_enabled(mv.device.type):
        raise TypeError(f"{name}: {what} multivectors are {mv.dtype} but the module's weights are {expected}; "
                        f"cast the inputs (mv.to({expected})) or the module (.to({expected})), or use autocast")
    if scalars is None:
        if s_channels:
            raise ValueError(f"{name}: expected {what} scalars of shape (..., items, {s_channels}), got None")
        return None
    if scalars.ndim < 2 or scalars.shape[-1] != s_channels:
        raise ValueError(
            f"{name}: expected {what} scalars of shape (..., items, {s_channels}), got {tuple(scalars.shape)}"
        )
    if scalars.shape[:-1] != mv.shape[:-2]:
        try:
            torch.broadcast_shapes(scalars.shape[:-1], mv.shape[:-2])
        except RuntimeError:
            raise ValueError(
                f"{name}: {what} scalars {tuple(scalars.shape)} and multivectors {tuple(mv.shape)} must share "
                "their leading (..., items) axes"
            ) from None
        shape = torch.broadcast_shapes(scalars.shape[:-1], mv.shape[:-2])
        scalars = scalars.expand(*shape, s_channels)
    return scalars if s_channels else None


def check_mask_shape(name: str, mask, expected: tuple) -> None:
    """A clear error unless ``mask`` broadcasts to ``expected`` without growing it."""
    if mask is None:
        return
    try:
        ok = torch.broadcast_shapes(mask.shape, expected) == torch.Size(expected)
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} of shape {tuple(mask.shape)} does not broadcast to {tuple(expected)} "
                         "(attention_mask: (..., heads, query items, key items); key_padding_mask: (..., key items))")
