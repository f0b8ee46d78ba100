"""Stateless tensor functions of the network: the mathematics. Every algebra-specific constant comes
from the algebra (:class:`algebras.NetworkAlgebra`); how the heavy ones execute is :mod:`gatr.kernels`."""

from .attention import build_attention_mask, geometric_sdpa
from .bilinear import bilinear_products, reference_factors
from .linear import equi_bias, equi_matrix, init_stds
from .nonlinearity import ACTIVATIONS, gated_nonlinearity, get_activation
from .norm import equi_layer_norm, scalar_layer_norm

__all__ = [
    "ACTIVATIONS", "bilinear_products", "build_attention_mask", "equi_bias", "equi_layer_norm", "equi_matrix",
    "gated_nonlinearity", "geometric_sdpa", "get_activation", "init_stds", "reference_factors", "scalar_layer_norm",
]
