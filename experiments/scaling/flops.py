"""Nominal training FLOPs of a run spec, for planning (budgets, listing, balancing workers).

The models' own counts (:meth:`experiments.models.base.BodyModel.nominal_flops_per_sample`), built
once per architecture; a rough ``6 * params * tokens`` estimate where a model cannot be built here.
"""

from __future__ import annotations

import json


def estimate_params(spec: dict) -> int:
    """Rough parameter count, for listing a grid when a model cannot be built (the training code reports
    the real one). Transformer-like: ~12 w^2 per block; MLP: ~w^2 per layer; on an algebra: multivector
    channels w with ~(linear maps + attention + bilinears) ~ 12 w^2 * n_maps / 4."""
    w, d = spec["width"], spec["depth"]
    if spec.get("algebra") is not None:
        from algebras import get_algebra

        n_maps = get_algebra(spec["algebra"]).linear_basis.shape[0]
        return int(d * 12 * w * w * n_maps / 4 + 40 * w)
    if spec["family"] == "mlp":
        return int((d - 1) * w * w + 2 * 40 * spec.get("bodies", 4) * w)
    return int(d * 12 * w * w + 40 * w)


def _rough_flops(spec: dict) -> float:
    tokens = spec["steps"] * spec.get("batch_size", 64) * spec.get("bodies", 4)
    dim = 1
    if spec.get("algebra") is not None:
        from algebras import get_algebra

        dim = get_algebra(spec["algebra"]).dim
    return float(6 * estimate_params(spec) * tokens * dim)


_FLOPS_PER_SAMPLE: dict = {}


def estimate_flops(spec: dict) -> float:
    """Nominal training FLOPs of a run: the model's own count (built once per architecture, no training)
    x batch size x steps; the rough 6 * params * tokens estimate when the model cannot be built here."""
    key = json.dumps({k: spec.get(k) for k in ("family", "algebra", "width", "depth", "num_heads", "bodies",
                                               "model_kwargs")}, sort_keys=True, default=str)
    if key not in _FLOPS_PER_SAMPLE:
        try:
            from experiments.models import build_model

            model = build_model(spec["family"], spec.get("algebra"), width=spec["width"], depth=spec["depth"],
                                num_heads=spec.get("num_heads", 4), num_bodies=spec.get("bodies", 4),
                                **(spec.get("model_kwargs") or {}))
            _FLOPS_PER_SAMPLE[key] = float(model.nominal_flops_per_sample(spec.get("bodies", 4)))
        except Exception:  # noqa: BLE001 - listing must work without the training stack
            _FLOPS_PER_SAMPLE[key] = None
    per_sample = _FLOPS_PER_SAMPLE[key]
    if per_sample is None:
        return _rough_flops(spec)
    return per_sample * spec.get("batch_size", 64) * spec["steps"]
