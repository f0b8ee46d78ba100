"""Whole-split scoring: per-window errors, per-trajectory sums and the references agree."""

import numpy as np
import pytest
import torch

from experiments.rigid_body.dataset import RigidBodyDataset
from experiments.rigid_body.generate import generate_dataset
from experiments.training.evaluation import REFERENCES, per_trajectory, reference_scores, score, window_errors


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = generate_dataset(tmp_path_factory.mktemp("eval"), 6, bodies=3, seed=1, workers=1, progress=False,
                            frames=16)
    return RigidBodyDataset(root, "all", horizon=5)


def test_window_errors_and_per_trajectory_sums_agree(dataset):
    shift = torch.tensor([0.01, 0.0, 0.0])

    def predict(batch):  # the ballistic keypoints moved by 1 cm
        return batch["ballistic_keypoints"] + shift

    e = window_errors(predict, dataset, batch_size=7)  # batch size that does not divide the windows
    assert len(e["mse"]) == len(dataset) and e["mse"].dtype == torch.float64
    batch = dataset[torch.arange(len(dataset))]
    manual = (predict(batch).double() - batch["target_keypoints"].double()).pow(2).sum(-1).mean((-1, -2))
    torch.testing.assert_close(e["mse"], manual)
    torch.testing.assert_close(e["contact"], batch["contact"])
    s, pt = score(e), per_trajectory(e)
    assert pt["trajectory"] == sorted(set(batch["trajectory"].tolist()))
    total = (np.sum(pt["sse_contact"]) + np.sum(pt["sse_free"])) / (np.sum(pt["n_contact"]) + np.sum(pt["n_free"]))
    assert total == pytest.approx(s["all"], rel=1e-12)
    assert np.sum(pt["sse_contact"]) / np.sum(pt["n_contact"]) == pytest.approx(s["contact"], rel=1e-12)
    assert s["n_windows"] == len(dataset) and s["n_contact"] == int(batch["contact"].sum())


def test_references_on_contact_free_windows(dataset):
    refs = reference_scores(dataset, batch_size=5)
    assert set(refs) == set(REFERENCES) == {"ballistic", "no_motion"}
    ballistic, no_motion = refs["ballistic"][0], refs["no_motion"][0]
    if ballistic["n_windows"] > ballistic["n_contact"]:
        assert ballistic["free"] < 1e-6  # free flight is exact without contacts (float32 storage, MuJoCo steps)
    assert ballistic["contact"] > 100 * ballistic["free"]
    assert no_motion["all"] > ballistic["all"]
