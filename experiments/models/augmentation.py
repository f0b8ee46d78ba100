"""Random E(3) data augmentation for the "+aug" baseline families.

One random element ``(R, t)`` per sample (Haar rotation, a reflection with probability 1/2 when
``reflections``, Gaussian translation with standard deviation ``translation_scale`` per axis) is
applied consistently to inputs and targets with :func:`experiments.rigid_body.transforms.transform_sample`:
points (positions, targets) ``R p + t``, vectors (axes, velocity) ``R v``, the angular velocity as a
pseudovector ``det(R) R w``; sizes, mass and shape unchanged.
"""

from __future__ import annotations

import torch

from experiments.rigid_body.transforms import random_e3, transform_sample

__all__ = ["augment_batch"]


def augment_batch(batch: dict, generator: torch.Generator | int | None = None, reflections: bool = True,
                  translation_scale: float = 1.0, return_transform: bool = False):
    """Apply an independent random E(3) element to every sample of a batch.

    Parameters
    ----------
    batch : dict of tensors with a leading batch axis (``positions`` ``(B, N, 3)``, ...)
    generator : torch.Generator, int seed, or None (global RNG); same seed -> same transforms
    reflections : include improper elements (``det R = -1``) with probability 1/2
    translation_scale : standard deviation of each translation component [m]
    return_transform : also return ``(R (B,3,3), t (B,3))``

    Returns
    -------
    the augmented batch (a new dict; untransformed entries are shared), and ``(R, t)`` if asked
    """
    positions = batch["positions"]
    if positions.dim() < 3:
        raise ValueError(f"augment_batch expects batched samples, positions (B, N, 3); got {tuple(positions.shape)}")
    R, t = random_e3(positions.shape[0], generator=generator, reflections=reflections,
                     translation_scale=translation_scale, dtype=positions.dtype, device=positions.device)
    out = transform_sample(batch, R, t)
    return (out, (R, t)) if return_transform else out
