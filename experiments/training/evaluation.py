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

__all__ = ["window_errors", "per_trajectory", "score", "reference_scores", "evaluate_splits", "REFERENCES"]

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


class _Prefix(torch.utils.data.Dataset):
    """The first ``n`` windows of a dataset, with its batched indexing (capped smoke-test evaluations)."""

    def __init__(self, base, n: int):
        self.base, self.n = base, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        return self.base[i]


def evaluate_splits(model, datamodule, batch_size: int = 512, max_batches: int | None = None) -> dict:
    """Score ``model`` on the validation split and on the test split, plain and transformed.

    Parameters
    ----------
    model : callable batch -> keypoints (with a ``device`` attribute, e.g. a LightningModule)
    datamodule : with ``val``, ``test``, ``test_e3``, ``test_rotation``, ``test_translation`` datasets
    batch_size : windows per forward call
    max_batches : score only the first ``max_batches * batch_size`` windows of each split (smoke tests;
        studies leave it None and score whole splits)

    Returns
    -------
    dict with ``losses`` (``val_loss``, ``test_loss``, ``test_contact_loss``, ``test_free_loss``,
    ``test_e3_loss``, ``test_rotation_loss``, ``test_translation_loss``), ``test_per_trajectory``,
    ``references`` (``{name: {"test": scores, "val": scores, "per_trajectory": ...}}``),
    ``test_windows`` and ``test_contact_fraction``
    """
    def capped(ds):
        if max_batches is None or int(max_batches) <= 0:
            return ds
        return _Prefix(ds, min(len(ds), int(max_batches) * batch_size))

    def errors(ds):
        return window_errors(model, capped(ds), batch_size, device=getattr(model, "device", None))

    val, test = score(errors(datamodule.val)), errors(datamodule.test)
    test_scores = score(test)
    losses = {"val_loss": val["all"], "test_loss": test_scores["all"], "test_contact_loss": test_scores["contact"],
              "test_free_loss": test_scores["free"]}
    for name in ("test_e3", "test_rotation", "test_translation"):
        losses[f"{name}_loss"] = score(errors(getattr(datamodule, name)))["all"]
    references = {name: {"test": sc, "per_trajectory": pt}
                  for name, (sc, pt) in reference_scores(capped(datamodule.test)).items()}
    for name, (sc, _) in reference_scores(capped(datamodule.val)).items():
        references[name]["val"] = sc
    return {"losses": losses, "test_per_trajectory": per_trajectory(test), "references": references,
            "test_windows": test_scores["n_windows"],
            "test_contact_fraction": test_scores["n_contact"] / max(1, test_scores["n_windows"])}
