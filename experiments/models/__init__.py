"""Rigid-body predictors: GATr on any algebra, and non-equivariant transformer / MLP baselines.

>>> from experiments.models import build_model
>>> model = build_model("transformer", width=8, depth=1)
>>> # keypoints = model(batch)    # (B, N, 4, 3); model.nominal_flops_per_sample(4); model.num_parameters()

Every model: ``forward(batch) -> keypoints (B, N, 4, 3)`` (centre and the three axis tips),
``nominal_flops_per_sample(num_bodies)`` (forward + backward FLOPs of one sample, convention in
:mod:`gatr.flops`) and ``num_parameters()``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from algebras import available_algebras, canonical_name

from .augmentation import augment_batch
from .base import BodyModel, flat_body_features
from .baselines import MLPBodyModel, TransformerBodyModel
from .embedding import BodyEmbedding, handedness, input_keypoints

__all__ = ["FAMILIES", "BodyEmbedding", "BodyModel", "GATrBodyModel", "MLPBodyModel", "ModelFamily",
           "TransformerBodyModel", "algebra_families", "augment_batch", "build_model", "family_takes_algebra", "flat_body_features",
           "handedness", "input_keypoints"]

class ModelFamily(NamedTuple):
    """A model family: whether it takes an algebra, and ``build(algebra, width, depth, num_heads, num_bodies,
    **kwargs) -> BodyModel``."""

    takes_algebra: bool
    build: Callable[..., BodyModel]


def _build_gatr(algebra, width, depth, num_heads, num_bodies, **kwargs):
    from .gatr_model import GATrBodyModel

    return GATrBodyModel(algebra, width=width, depth=depth, num_heads=num_heads, **kwargs)


def _build_transformer(algebra, width, depth, num_heads, num_bodies, **kwargs):
    return TransformerBodyModel(width=width, depth=depth, num_heads=num_heads, **kwargs)


def _build_mlp(algebra, width, depth, num_heads, num_bodies, **kwargs):
    return MLPBodyModel(num_bodies=num_bodies, width=width, depth=depth, **kwargs)


#: The model families, read by the training module and the study configs (the one list).
FAMILIES: dict[str, ModelFamily] = {
    "gatr": ModelFamily(True, _build_gatr),
    "transformer": ModelFamily(False, _build_transformer),
    "mlp": ModelFamily(False, _build_mlp),
}


def family_takes_algebra(family: str) -> bool:
    """Whether ``family`` (a key of :data:`FAMILIES`) is built on an algebra."""
    return FAMILIES[family].takes_algebra


def algebra_families() -> list[str]:
    """The families built on an algebra (named in the errors for an algebra given to another family)."""
    return [f for f, spec in FAMILIES.items() if spec.takes_algebra]


def __getattr__(name):  # GATrBodyModel needs the gatr package; import it on demand
    if name == "GATrBodyModel":
        from .gatr_model import GATrBodyModel

        return GATrBodyModel
    raise AttributeError(name)


def build_model(family: str, algebra: str | None = None, width: int = 16, depth: int = 2, num_heads: int = 4,
                num_bodies: int = 4, **kwargs) -> BodyModel:
    """Build a rigid-body predictor.

    Parameters
    ----------
    family : a key of :data:`FAMILIES`
    algebra : for families that take one: an algebra name, alias, ``"module:attribute"`` factory (see
        ``algebras.available_algebras()``) or object
    width : GATr hidden multivector channels (hidden scalars = 2 * width); baselines: hidden size 6 * width
        (transformer: rounded up to a multiple of num_heads); see ``experiments.models.baselines``
    depth : number of blocks (GATr, transformer) / residual MLP blocks (mlp)
    num_heads : attention heads (gatr, transformer)
    num_bodies : bodies per scene (the MLP's input size depends on it; the token models accept any)
    kwargs : passed to the model class (e.g. ``init_gate``, ``hidden_per_width``, ``residual``)
    """
    fam = str(family).strip().lower() if isinstance(family, str) else family
    if fam not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; valid families: {list(FAMILIES)}")
    if FAMILIES[fam].takes_algebra:
        if algebra is None:
            raise ValueError(f"family {fam!r} needs an algebra; valid algebras: {available_algebras()}")
        if isinstance(algebra, str):
            try:
                canonical_name(algebra)
            except ValueError as err:
                raise ValueError(f"family {fam!r}: {err}") from None
    elif algebra is not None:
        raise ValueError(f"algebra={algebra!r} is only valid for the families {algebra_families()}, not {fam!r}")
    return FAMILIES[fam].build(algebra, width=width, depth=depth, num_heads=num_heads, num_bodies=num_bodies,
                               **kwargs)
