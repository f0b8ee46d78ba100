"""Sets of different sizes in one forward pass: padded to a batch, or packed into one sequence.

Both paths use only :class:`~gatr.GATr`'s public forward arguments, and both give every set the
result it gets alone:

* :func:`pad` stacks the sets into ``(sets, max_items, channels, dim)`` with a ``key_padding_mask``
  (True for real items). Simple; every layer also processes the padding.
* :func:`pack` concatenates them along the item axis into one sequence ``(1, total_items, channels,
  dim)``, with a block-diagonal ``attention_mask`` (items attend only within their own set) and a
  per-item ``reference_mv`` (each set's own mean, the reference :class:`~gatr.GATr` computes for a
  padded set). No padding is processed; the mask is ``total_items x total_items``. The leading axis
  of size 1 keeps the attention four-dimensional, as PyTorch's fused attention kernels require.

>>> import torch
>>> from gatr import GATr
>>> from gatr.packing import pack
>>> net = GATr("projective", in_mv_channels=1, out_mv_channels=1, hidden_mv_channels=4, num_blocks=1, num_heads=2)
>>> sets = [torch.randn(3, 1, 16), torch.randn(5, 1, 16)]
>>> packed = pack(sets)
>>> out_mv, _ = net(packed.mv, attention_mask=packed.attention_mask, reference_mv=packed.reference_mv)
>>> tuple(out_mv.shape), [tuple(o.shape) for o in packed.unpack(out_mv)]
((1, 8, 1, 16), [(3, 1, 16), (5, 1, 16)])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

__all__ = ["PackedSets", "PaddedSets", "block_diagonal_mask", "pack", "pad", "segment_ids"]


@dataclass(frozen=True)
class PackedSets:
    """Sets concatenated along the item axis, with what :class:`~gatr.GATr` needs to keep them apart.

    Pass ``mv``, ``scalars``, ``attention_mask`` and ``reference_mv`` to the network's forward.

    Parameters
    ----------
    mv : Tensor, shape (1, total_items, channels, dim)
        The sets' multivectors, one after the other (a batch of one sequence).
    scalars : Tensor, shape (1, total_items, s_channels), or None
        The sets' scalars, or None if none were given.
    attention_mask : Tensor of bool, shape (total_items, total_items)
        True where query item and key item belong to the same set (block diagonal); it broadcasts to
        the network's ``(1, heads, total_items, total_items)``.
    reference_mv : Tensor, shape (1, total_items, 1, dim)
        Per item: its set's reference (by default the mean of the set's multivectors over items and
        channels, as :func:`~gatr.layers.reference_from_inputs` computes for that set alone).
    segment_ids : Tensor of int64, shape (total_items,)
        Index of each item's set.
    lengths : tuple of int
        Items per set.
    """

    mv: torch.Tensor
    scalars: Optional[torch.Tensor]
    attention_mask: torch.Tensor
    reference_mv: torch.Tensor
    segment_ids: torch.Tensor
    lengths: tuple

    def unpack(self, packed: torch.Tensor) -> list:
        """Split a per-item result back into one tensor per set.

        Parameters
        ----------
        packed : Tensor, shape (1, total_items, ...)
            E.g. the network's output multivectors ``(1, total_items, out_mv_channels, dim)`` or scalars.

        Returns
        -------
        list of Tensor
            ``result[i]`` has shape ``(lengths[i], ...)`` (views of ``packed``).

        Raises
        ------
        ValueError
            If the leading axes are not ``(1, sum(lengths))``.
        """
        total = sum(self.lengths)
        if packed.ndim < 2 or tuple(packed.shape[:2]) != (1, total):
            raise ValueError(f"unpack: expected a tensor of shape (1, {total}, ...) (the packed items), "
                             f"got {tuple(packed.shape)}")
        return list(torch.split(packed[0], list(self.lengths), dim=0))


@dataclass(frozen=True)
class PaddedSets:
    """Sets stacked along a new leading axis and padded with zeros to the largest.

    Pass ``mv``, ``scalars`` and ``key_padding_mask`` to the network's forward.

    Parameters
    ----------
    mv : Tensor, shape (sets, max_items, channels, dim)
    scalars : Tensor, shape (sets, max_items, s_channels), or None
    key_padding_mask : Tensor of bool, shape (sets, max_items)
        True for real items, False for padding.
    lengths : tuple of int
        Items per set.
    """

    mv: torch.Tensor
    scalars: Optional[torch.Tensor]
    key_padding_mask: torch.Tensor
    lengths: tuple

    def unpack(self, padded: torch.Tensor) -> list:
        """The real items of each set of a padded result.

        Parameters
        ----------
        padded : Tensor, shape (sets, max_items, ...)

        Returns
        -------
        list of Tensor
            ``result[i] = padded[i, :lengths[i]]``.

        Raises
        ------
        ValueError
            If the leading axes are not ``(sets, max_items)``.
        """
        expected = tuple(self.key_padding_mask.shape)
        if padded.ndim < 2 or tuple(padded.shape[:2]) != expected:
            raise ValueError(f"unpack: expected a tensor of shape {expected + ('...',)} (sets, max items), "
                             f"got {tuple(padded.shape)}")
        return [padded[i, :n] for i, n in enumerate(self.lengths)]


def _check_sets(what: str, sets: Sequence[torch.Tensor], tail: int, lengths=None) -> tuple:
    """The item counts of ``sets`` (tensors ``(items_i, *rest)`` with one ``rest`` and one dtype and device),
    or a ValueError / TypeError naming the first bad one."""
    if isinstance(sets, torch.Tensor) or not isinstance(sets, Sequence) or len(sets) == 0:
        got = "an empty list" if isinstance(sets, Sequence) and not isinstance(sets, torch.Tensor) \
            else type(sets).__name__
        raise TypeError(f"{what} must be a non-empty list of tensors (one per set), got {got}")
    first = sets[0]
    for i, x in enumerate(sets):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{what}[{i}] must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != tail + 1 or x.shape[1:] != first.shape[1:]:
            like = f"like {what}[0] {tuple(first.shape)}" if i else "(a tensor per set)"
            raise ValueError(f"{what}[{i}] must have {tail + 1} axes (items, ...) {like}; got {tuple(x.shape)}")
        if x.dtype != first.dtype or x.device != first.device:
            raise ValueError(f"{what}[{i}] is {x.dtype} on {x.device} but {what}[0] is {first.dtype} on "
                             f"{first.device}; give every set the same dtype and device")
        if x.shape[0] == 0:
            raise ValueError(f"{what}[{i}] has no items; leave empty sets out")
        if lengths is not None and x.shape[0] != lengths[i]:
            raise ValueError(f"{what}[{i}] has {x.shape[0]} items but mv[{i}] has {lengths[i]}")
    return tuple(int(x.shape[0]) for x in sets)


def segment_ids(lengths: Sequence[int], device=None) -> torch.Tensor:
    """The set index of each item of sets of ``lengths`` items laid end to end.

    Parameters
    ----------
    lengths : sequence of int
        Items per set (each >= 1).
    device : torch.device, optional

    Returns
    -------
    Tensor of int64, shape (sum(lengths),)
        E.g. ``[0, 0, 1, 1, 1]`` for lengths ``(2, 3)``.
    """
    bad = [n for n in lengths if int(n) < 1]
    if bad:
        raise ValueError(f"lengths must be positive integers, got {list(lengths)}")
    counts = torch.as_tensor(list(lengths), dtype=torch.long, device=device)
    return torch.repeat_interleave(torch.arange(len(counts), device=device), counts)


def block_diagonal_mask(lengths: Sequence[int], device=None) -> torch.Tensor:
    """Bool attention mask of packed sets: True where query and key item are in the same set.

    Parameters
    ----------
    lengths : sequence of int
        Items per set (each >= 1).
    device : torch.device, optional

    Returns
    -------
    Tensor of bool, shape (total_items, total_items)
        Block diagonal with blocks of ``lengths``; broadcasts to ``(..., heads, items, items)``.
    """
    return _same_segment(segment_ids(lengths, device))


def _same_segment(ids: torch.Tensor) -> torch.Tensor:
    """``(n, n)`` bool: whether items ``i`` and ``j`` have the same segment id."""
    return ids[:, None] == ids[None, :]


def _per_item_reference(mv, sets_reference, lengths, ids):
    """``(1, total_items, 1, dim)``: each set's given reference (broadcast to its items) or its own mean."""
    dim = mv.shape[-1]
    if sets_reference is None:
        sums = torch.zeros(len(lengths), dim, dtype=mv.dtype, device=mv.device)
        sums.index_add_(0, ids, mv[0].sum(dim=-2))
        counts = torch.as_tensor(lengths, dtype=mv.dtype, device=mv.device) * mv.shape[-2]
        return (sums / counts[:, None])[ids][None, :, None, :]
    if isinstance(sets_reference, torch.Tensor) or len(sets_reference) != len(lengths):
        raise ValueError(f"reference_mv must be a list of {len(lengths)} tensors (one per set), "
                         f"got {type(sets_reference).__name__}")
    parts = []
    for i, (ref, n) in enumerate(zip(sets_reference, lengths)):
        try:
            parts.append(torch.broadcast_to(ref.to(mv.device), (n, 1, dim)))
        except RuntimeError:
            raise ValueError(f"reference_mv[{i}] of shape {tuple(ref.shape)} does not broadcast to the set's "
                             f"({n}, 1, {dim}) (items, 1, dim)") from None
    return torch.cat(parts, dim=0)[None]


def pack(mv: Sequence[torch.Tensor], scalars: Sequence[torch.Tensor] | None = None,
         reference_mv: Sequence[torch.Tensor] | None = None) -> PackedSets:
    """Concatenate sets of different sizes into one sequence that a GATr runs without padding.

    ``net(p.mv, p.scalars, attention_mask=p.attention_mask, reference_mv=p.reference_mv)`` then gives
    each set what it gets alone (or padded, with :func:`pad`), up to rounding: attention stays within
    a set, every other layer works per item, and each item's reference is its own set's.

    Parameters
    ----------
    mv : list of Tensor, shapes (items_i, channels, dim)
        One tensor per set; the same channels, dim, dtype and device for all.
    scalars : list of Tensor, shapes (items_i, s_channels), optional
        One tensor per set; None when the network has no scalar inputs.
    reference_mv : list of Tensor, optional
        One reference per set, each broadcastable to ``(items_i, 1, dim)`` (e.g. ``(dim,)`` for the
        whole set). Default: each set's mean over its items and channels (the network's own default).

    Returns
    -------
    PackedSets
        ``mv (1, total, channels, dim)``, ``scalars (1, total, s_channels)`` or None, ``attention_mask
        (total, total)``, ``reference_mv (1, total, 1, dim)``, ``segment_ids (total,)``, ``lengths``.

    Raises
    ------
    ValueError, TypeError
        Naming the set whose shape, dtype, device or item count does not fit.
    """
    lengths = _check_sets("mv", mv, 2)
    mv_cat = torch.cat(list(mv), dim=0)[None]
    s_cat = None
    if scalars is not None:
        _check_sets("scalars", scalars, 1, lengths)
        s_cat = torch.cat(list(scalars), dim=0)[None].to(mv_cat.device)
    ids = segment_ids(lengths, mv_cat.device)
    return PackedSets(mv=mv_cat, scalars=s_cat, attention_mask=_same_segment(ids),
                      reference_mv=_per_item_reference(mv_cat, reference_mv, lengths, ids),
                      segment_ids=ids, lengths=lengths)


def pad(mv: Sequence[torch.Tensor], scalars: Sequence[torch.Tensor] | None = None) -> PaddedSets:
    """Stack sets of different sizes into one batch, zero-padded to the largest, with its padding mask.

    Pass ``net(p.mv, p.scalars, key_padding_mask=p.key_padding_mask)``: padded items then affect no
    real item (attention ignores them; the default reference is the mean over real items only).

    Parameters
    ----------
    mv : list of Tensor, shapes (items_i, channels, dim)
        One tensor per set; the same channels, dim, dtype and device for all.
    scalars : list of Tensor, shapes (items_i, s_channels), optional

    Returns
    -------
    PaddedSets
        ``mv (sets, max_items, channels, dim)``, ``scalars (sets, max_items, s_channels)`` or None,
        ``key_padding_mask (sets, max_items)`` (True for real items), ``lengths``.

    Raises
    ------
    ValueError, TypeError
        Naming the set whose shape, dtype, device or item count does not fit.
    """
    lengths = _check_sets("mv", mv, 2)
    stacked = torch.nn.utils.rnn.pad_sequence(list(mv), batch_first=True)
    s_stacked = None
    if scalars is not None:
        _check_sets("scalars", scalars, 1, lengths)
        s_stacked = torch.nn.utils.rnn.pad_sequence(list(scalars), batch_first=True).to(stacked.device)
    counts = torch.as_tensor(lengths, device=stacked.device)
    mask = torch.arange(stacked.shape[1], device=stacked.device)[None, :] < counts[:, None]
    return PaddedSets(mv=stacked, scalars=s_stacked, key_padding_mask=mask, lengths=lengths)
