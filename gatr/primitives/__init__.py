"""Stateless tensor functions of the network; all algebra-specific data comes from the algebra."""

from .attention import build_attention_mask, geometric_sdpa
from .bilinear import bilinear_products
from .constants import constant
from .linear import apply_dense, dense_equi_bias, dense_equi_matrix, equi_linear, init_stds
from .nonlinearity import ACTIVATIONS, gated_nonlinearity, get_activation
from .norm import equi_layer_norm, scalar_layer_norm

__all__ = [
    "ACTIVATIONS", "apply_dense", "bilinear_products", "build_attention_mask", "constant", "dense_equi_bias",
    "dense_equi_matrix", "equi_linear", "equi_layer_norm", "gated_nonlinearity", "geometric_sdpa", "get_activation",
    "init_stds", "scalar_layer_norm",
]
