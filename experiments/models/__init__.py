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
           "TransformerBodyModel", "algebra_families", "augment_batch", "build_model", "family_takes_algebra",
           "flat_body_features", "handedness", "input_keypoints", "validate_family_algebra"]

class ModelFamily(NamedTuple):
    """A model family: whether it takes an algebra, and ``build(algebra, width, depth, num_heads, num_bodies,
    compile=False, **kwargs) -> BodyModel`` (``compile``: see :func:`build_model`)."""

    takes_algebra: bool
    build: Callable[..., BodyModel]


def _build_gatr(algebra, width, depth, num_heads, num_bodies, compile=False, **kwargs):
    from .gatr_model import GATrBodyModel

    # the network's own switch: its blocks compiled with fullgraph=True, its inputs checked eagerly
    return GATrBodyModel(algebra, width=width, depth=depth, num_heads=num_heads, compile=compile, **kwargs)


def _compiled(model: BodyModel, compile: bool) -> BodyModel:
    """``model``, its forward compiled in place when ``compile`` (``nn.Module.compile``: the parameters and
    the state dict stay the plain model's)."""
    if compile:
        model.compile()
    return model


def _build_transformer(algebra, width, depth, num_heads, num_bodies, compile=False, **kwargs):
    return _compiled(TransformerBodyModel(width=width, depth=depth, num_heads=num_heads, **kwargs), compile)


def _build_mlp(algebra, width, depth, num_heads, num_bodies, compile=False, **kwargs):
    return _compiled(MLPBodyModel(num_bodies=num_bodies, width=width, depth=depth, **kwargs), compile)


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


def _no_algebra(algebra) -> bool:
    """Whether ``algebra`` stands for "none" (``None``, or an empty or ``"none"`` string from a command line)."""
    return algebra is None or (isinstance(algebra, str) and algebra.strip().lower() in ("", "none", "null"))


def validate_family_algebra(family, algebra) -> tuple[str, object]:
    """The one check of a model family and its algebra (training module, sweep configs, :func:`build_model`).

    Parameters
    ----------
    family : str
        A key of :data:`FAMILIES` (blanks and case are ignored).
    algebra : str, algebra object or None
        For a family that takes one: a registered name, an alias or a ``"module:attribute"`` factory
        (built once here, so a broken factory fails now), or an algebra object (returned as is); for the
        other families None (or ``""`` / ``"none"``).

    Returns
    -------
    (str, str or object or None)
        The family's key and the algebra's registry name (an alias becomes its name; a factory path stays
        as written, so a checkpoint rebuilds the same algebra), the object as given, or None.

    Raises
    ------
    ValueError
        Naming the valid values, for an unknown family, an unknown or broken algebra, a family that needs
        an algebra without one, or an algebra given to a family that takes none.
    """
    from algebras import get_algebra

    fam = family.strip().lower() if isinstance(family, str) else family
    if fam not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; valid families: {', '.join(FAMILIES)}")
    if not FAMILIES[fam].takes_algebra:
        if not _no_algebra(algebra):
            raise ValueError(f"family {fam!r} takes no algebra (got {algebra!r}; give none, e.g. --model.algebra "
                             f"null); algebras are only valid for the families {algebra_families()}")
        return fam, None
    if _no_algebra(algebra):
        raise ValueError(f"family {fam!r} needs an algebra; valid algebras: {', '.join(available_algebras())}")
    if isinstance(algebra, (bool, int, float, list, tuple, dict)):
        raise ValueError(f"algebra must be a name, an alias or a factory 'module:attribute', got {algebra!r}; "
                         f"valid algebras: {', '.join(available_algebras())}")
    if not isinstance(algebra, str):
        return fam, algebra  # an algebra object: the network checks what it needs when it is built
    try:
        name = canonical_name(algebra)
        get_algebra(name)  # a factory that fails or returns no algebra: the error names it now
    except (ValueError, TypeError) as err:
        raise ValueError(str(err)) from None
    return fam, name


def build_model(family: str, algebra: str | None = None, width: int = 16, depth: int = 2, num_heads: int = 4,
                num_bodies: int = 4, compile: bool = False, **kwargs) -> BodyModel:
    """Build a rigid-body predictor.

    Parameters
    ----------
    family : a key of :data:`FAMILIES`
    algebra : for families that take one: an algebra name, alias, ``"module:attribute"`` factory (see
        ``algebras.available_algebras()``) or object (checked by :func:`validate_family_algebra`)
    width : GATr hidden multivector channels (hidden scalars = 2 * width); baselines: hidden size 6 * width
        (transformer: rounded up to a multiple of num_heads); see ``experiments.models.baselines``
    depth : number of blocks (GATr, transformer) / residual MLP blocks (mlp)
    num_heads : attention heads (gatr, transformer)
    num_bodies : bodies per scene (the MLP's input size depends on it; the token models accept any)
    compile : run the model through ``torch.compile``, the family's way: GATr compiles its own blocks
        (``GATrConfig.compile``: ``fullgraph=True``, inputs checked eagerly; embedding and read-out
        eager), the baselines compile their whole forward (``nn.Module.compile``); parameters and state
        dict are those of the plain model either way
    kwargs : passed to the model class (e.g. ``init_gate``, ``hidden_per_width``, ``residual``)
    """
    fam, algebra = validate_family_algebra(family, algebra)
    return FAMILIES[fam].build(algebra, width=width, depth=depth, num_heads=num_heads, num_bodies=num_bodies,
                               compile=compile, **kwargs)
