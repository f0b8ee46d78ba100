"""Scoring whole splits: per-window errors, per-trajectory sums, and the closed-form references.

A study's uncertainty comes from a bootstrap over test trajectories (and seeds), so a run keeps,
for every test trajectory, the sum of its windows' keypoint MSEs and their count, separately for
contact windows (a body-body contact inside the horizon) and contact-free ones. Any loss of the
report - overall, contact windows, relative to ballistic - is a ratio of such sums over a
(resampled) set of trajectories.
"""

from __future__ import annotations

import torch

from experiments.rigid_body.ballistic import no_motion_keypoints

__all__ = ["window_errors", "per_trajectory", "score", "reference_scores", "REFERENCES"]

#: the closed-form predictors every evaluation reports: name -> batch -> keypoints (B, N, 4, 3)
REFERENCES = {
    "ballistic": lambda batch: batch["ballistic_keypoints"],
    "no_motion": no_motion_keypoints,
}


@torch.no_grad()
def window_errors(predict, dataset, batch_size: int = 512, device=None) -> dict:
    """Keypoint MSE of every window of ``dataset``.

    Parameters
    ----------
    predict : callable, batch dict -> keypoints ``(B, N, 4, 3)``
    dataset : :class:`~experiments.rigid_body.dataset.RigidBodyDataset` (batched indexing)
    batch_size : windows per forward call
    device : where batches go (default: stay on the CPU)

    Returns
    -------
    dict of CPU tensors over the W windows: ``mse`` (W,) float64, ``trajectory`` (W,) int64,
    ``contact`` (W,) bool
    """
    out = {"mse": [], "trajectory": [], "contact": []}
    for start in range(0, len(dataset), batch_size):
        batch = dataset[torch.arange(start, min(start + batch_size, len(dataset)))]
        if device is not None:
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        pred = predict(batch)
        err = (pred.double() - batch["target_keypoints"].double()).pow(2).sum(-1).mean((-1, -2))
        out["mse"].append(err.cpu())
        out["trajectory"].append(batch["trajectory"].cpu())
        out["contact"].append(batch["contact"].cpu())
    if not out["mse"]:
        return {"mse": torch.zeros(0, dtype=torch.float64), "trajectory": torch.zeros(0, dtype=torch.int64),
                "contact": torch.zeros(0, dtype=torch.bool)}
    return {k: torch.cat(v) for k, v in out.items()}


def per_trajectory(errors: dict) -> dict:
    """Per-trajectory sums of window MSEs and counts, split by contact (JSON-ready lists).

    Returns
    -------
    dict with ``trajectory`` (sorted ids), ``sse_contact``, ``n_contact``, ``sse_free``, ``n_free``
    (one entry per trajectory)
    """
    ids, inverse = torch.unique(errors["trajectory"], sorted=True, return_inverse=True)
    out = {"trajectory": ids.tolist()}
    for name, mask in (("contact", errors["contact"]), ("free", ~errors["contact"])):
        sse = torch.zeros(len(ids), dtype=torch.float64).index_add_(0, inverse[mask], errors["mse"][mask])
        n = torch.zeros(len(ids), dtype=torch.int64).index_add_(0, inverse[mask], torch.ones_like(inverse[mask]))
        out[f"sse_{name}"], out[f"n_{name}"] = sse.tolist(), n.tolist()
    return out


def score(errors: dict) -> dict:
    """Mean MSE over all windows, contact windows and contact-free windows (NaN where empty)."""
    def mean(mask):
        return float(errors["mse"][mask].mean()) if bool(mask.any()) else float("nan")

    everything = torch.ones_like(errors["contact"])
    return {"all": mean(everything), "contact": mean(errors["contact"]), "free": mean(~errors["contact"]),
            "n_windows": int(len(errors["mse"])), "n_contact": int(errors["contact"].sum())}


def reference_scores(dataset, batch_size: int = 4096) -> dict:
    """``{name: (score, per_trajectory)}`` of every predictor in :data:`REFERENCES` on ``dataset``."""
    out = {}
    for name, fn in REFERENCES.items():
        e = window_errors(fn, dataset, batch_size)
        out[name] = (score(e), per_trajectory(e))
    return out
