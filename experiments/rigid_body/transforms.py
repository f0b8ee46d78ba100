"""E(3) transforms of rigid-body samples (batched, torch).

An element ``(R, t)`` of E(3) (``R`` orthogonal, possibly with ``det R = -1``)
acts on the sample keys as follows (``p`` a point, ``v`` a vector):

==========================  ====================================
key                         transformed value
==========================  ====================================
``positions``               ``R p + t``
``target_positions``        ``R p + t``
``target_keypoints``,       ``R k + t`` (every keypoint)
``ballistic_keypoints``
``axes``, ``target_axes``   ``R a`` for each axis vector (rows); frames of
                            reflected samples become left-handed
``velocity``                ``R v``
``angular_velocity``        ``det(R) R w`` (pseudovector)
other keys                  unchanged (sizes, mass, shape, ...)
==========================  ====================================
"""

from __future__ import annotations

import torch

__all__ = ["POINT_KEYS", "VECTOR_KEYS", "PSEUDOVECTOR_KEYS", "TRANSFORM_KINDS", "random_e3", "transform_sample"]

POINT_KEYS = ("positions", "target_positions", "target_keypoints", "ballistic_keypoints")
#: parts of E(3) that :func:`random_e3` draws from
TRANSFORM_KINDS = ("e3", "rotation", "translation")
VECTOR_KEYS = ("axes", "target_axes", "velocity")
PSEUDOVECTOR_KEYS = ("angular_velocity",)


def random_e3(
    n: int,
    generator: torch.Generator | int | None = None,
    reflections: bool = True,
    translation_scale: float = 1.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    kind: str = "e3",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random E(3) elements: Haar-random rotations, optional reflections, Gaussian translations.

    ``kind="rotation"`` sets the translations to zero and ``kind="translation"`` the rotations to
    the identity (the same draws are made, so the three kinds share their random stream).

    Parameters
    ----------
    n : number of elements
    generator : torch.Generator, an int seed, or None (global RNG)
    reflections : if True, each element is improper (``det R = -1``) with probability 1/2
    translation_scale : standard deviation of each translation component [m]

    Returns
    -------
    R : Tensor, shape (n, 3, 3), orthogonal
    t : Tensor, shape (n, 3)
    """
    if isinstance(generator, int):
        generator = torch.Generator().manual_seed(generator)
    gen_device = generator.device if generator is not None else "cpu"
    a = torch.randn(n, 3, 3, generator=generator, dtype=torch.float64, device=gen_device)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)  # Haar on O(3)
    det = torch.linalg.det(q)
    q[:, :, 0] *= det.unsqueeze(-1)  # now in SO(3)
    if reflections:
        flip = torch.rand(n, generator=generator, dtype=torch.float64, device=gen_device) < 0.5
        q = torch.where(flip[:, None, None], -q, q)  # -R has det -1
    t = translation_scale * torch.randn(n, 3, generator=generator, dtype=torch.float64, device=gen_device)
    if kind not in TRANSFORM_KINDS:
        raise ValueError(f"kind must be one of {TRANSFORM_KINDS}, got {kind!r}")
    if kind == "rotation":
        t = torch.zeros_like(t)
    elif kind == "translation":
        q = torch.eye(3, dtype=q.dtype, device=q.device).expand_as(q).clone()
    return q.to(dtype=dtype, device=device), t.to(dtype=dtype, device=device)


def _apply(x: torch.Tensor, R: torch.Tensor, batch: int) -> torch.Tensor:
    """``R @ x[..., :]`` for every 3-vector in ``x``; ``R`` has ``batch`` leading dims."""
    lead = x.shape[:batch]
    y = x.reshape(*lead, -1, 3) @ R.transpose(-1, -2).to(x.dtype)
    return y.reshape(x.shape)


def transform_sample(sample: dict, R: torch.Tensor, t: torch.Tensor | None = None) -> dict:
    """Apply E(3) elements to a (batched) sample dict.

    Parameters
    ----------
    sample : dict of tensors
        Keys as produced by :class:`~experiments.rigid_body.dataset.RigidBodyDataset`,
        with optional leading batch dims ``(*B)`` shared by all keys (e.g.
        ``positions`` (*B,N,3), ``axes`` (*B,N,3,3), ``target_keypoints`` (*B,N,4,3)).
    R : Tensor, shape (*B, 3, 3) or (3, 3)
        Orthogonal matrices (one per batch element, or one for all).
    t : Tensor, shape (*B, 3) or (3,), optional
        Translations (default zero).

    Returns
    -------
    dict
        New dict; transformed keys are listed in the module docstring, other
        entries are passed through (same objects).
    """
    batch = R.dim() - 2
    out = dict(sample)
    if batch == 0 and "positions" in sample and sample["positions"].dim() > 2:
        # one element for a whole batch: broadcast
        lead = sample["positions"].shape[:-2]
        R = R.expand(*lead, 3, 3)
        t = None if t is None else t.expand(*lead, 3)
        batch = len(lead)
    det = None
    for key, x in sample.items():
        if not isinstance(x, torch.Tensor):
            continue
        if key in POINT_KEYS or key in VECTOR_KEYS:
            y = _apply(x, R, batch)
            if key in POINT_KEYS and t is not None:
                y = y + t.to(y.dtype).reshape(*t.shape[:-1], *([1] * (x.dim() - batch - 1)), 3)
            out[key] = y
        elif key in PSEUDOVECTOR_KEYS:
            if det is None:
                det = torch.linalg.det(R.to(torch.float64)).sign().to(x.dtype)
            y = _apply(x, R, batch)
            out[key] = y * det.reshape(*det.shape, *([1] * (x.dim() - batch)))
    return out
