"""Dataset, data module and E(3) transforms."""

import numpy as np
import pytest
import torch

from experiment_helpers import rollout_targets, teacher_forced_rollout_error
from experiments.rigid_body.dataset import RigidBodyDataModule, RigidBodyDataset, keypoints, select_windows, split_indices
from experiments.rigid_body.generate import generate_dataset
from experiments.rigid_body.simulate import quat_to_matrix
from experiments.rigid_body.storage import load_arrays
from experiments.rigid_body.transforms import random_e3, transform_sample


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("ds"), 20, bodies=3, seed=3, workers=1,
                            progress=False, shard_size=8, frames=12)


@pytest.fixture(scope="module")
def arrays(data_dir):
    return load_arrays(data_dir)[0]


def make_ds(arrays, *args, **kwargs):
    """A dataset of the fixture's arrays (0.02 s between frames, the generator's default)."""
    return RigidBodyDataset(arrays, *args, frame_dt=0.02, **kwargs)


def test_split_by_trajectory(arrays):
    sets = {}
    for split in ("train", "val", "test"):
        ds = make_ds(arrays, split, horizon=3)
        sets[split] = set(ds.trajectory_ids.tolist())
        seen = {int(ds[i]["trajectory"]) for i in range(len(ds))}
        assert seen == sets[split]
        assert len(ds) == len(sets[split]) * (12 - 3)
    assert not sets["train"] & sets["val"] and not sets["train"] & sets["test"] and not sets["val"] & sets["test"]
    assert sets["train"] | sets["val"] | sets["test"] == set(range(20))
    assert len(sets["val"]) == len(sets["test"]) == 2
    s1, s2 = split_indices(20, seed=0), split_indices(20, seed=0)
    for k in s1:
        np.testing.assert_array_equal(s1[k], s2[k])


def test_max_trajectories_nested(arrays):
    small = make_ds(arrays, "train", horizon=2, max_trajectories=3)
    big = make_ds(arrays, "train", horizon=2, max_trajectories=10)
    assert small.num_trajectories == 3
    assert set(small.trajectory_ids.tolist()) <= set(big.trajectory_ids.tolist())


def test_sample_contents(arrays):
    k = 4
    ds = make_ds(arrays, "all", horizon=k)
    s = ds[5 * (12 - k) + 2]  # trajectory 5, frame 2
    assert int(s["trajectory"]) == 5 and int(s["frame"]) == 2
    n = 3
    shapes = {"positions": (n, 3), "axes": (n, 3, 3), "velocity": (n, 3), "angular_velocity": (n, 3),
              "sizes": (n, 3), "mass": (n,), "shape": (n,), "target_keypoints": (n, 4, 3),
              "target_positions": (n, 3), "target_axes": (n, 3, 3)}
    for key, shape in shapes.items():
        assert s[key].shape == shape, key
        assert s[key].dtype == (torch.int64 if key == "shape" else torch.float32), key
    np.testing.assert_allclose(s["positions"], arrays["positions"][5, 2], atol=1e-6)
    np.testing.assert_allclose(s["target_positions"], arrays["positions"][5, 2 + k], atol=1e-6)
    # axes[i, j] = j-th column of the body-to-world rotation; orthonormal right-handed
    rot = quat_to_matrix(arrays["orientations"][5, 2])
    np.testing.assert_allclose(s["axes"], np.swapaxes(rot, -1, -2), atol=1e-5)
    eye = s["axes"] @ s["axes"].transpose(-1, -2)
    torch.testing.assert_close(eye, torch.eye(3).expand(n, 3, 3), atol=1e-5, rtol=0)
    assert torch.allclose(torch.linalg.det(s["axes"]), torch.ones(n), atol=1e-5)
    # keypoints: centre and centre + axis * size
    kp = s["target_keypoints"]
    torch.testing.assert_close(kp[:, 0], s["target_positions"])
    for j in range(3):
        torch.testing.assert_close(kp[:, 1 + j], s["target_positions"] + s["target_axes"][:, j] * s["sizes"][:, j:j + 1])


def test_random_e3():
    R, t = random_e3(200, generator=0)
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3).expand(200, 3, 3), atol=1e-5, rtol=0)
    det = torch.linalg.det(R)
    assert torch.allclose(det.abs(), torch.ones(200), atol=1e-5)
    assert (det < 0).any() and (det > 0).any()
    assert t.shape == (200, 3)
    R2, t2 = random_e3(200, generator=0)
    assert torch.equal(R, R2) and torch.equal(t, t2)
    R3, _ = random_e3(50, generator=torch.Generator().manual_seed(1), reflections=False)
    assert (torch.linalg.det(R3) > 0).all()


def _batch(ds, idx):
    samples = [ds[i] for i in idx]
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


def test_transform_sample_consistent(arrays):
    ds = make_ds(arrays, "all", horizon=3)
    b = _batch(ds, range(0, 60, 6))
    R, t = random_e3(10, generator=5, translation_scale=2.0)
    out = transform_sample(b, R, t)
    # keypoints of transformed sample == transformed keypoints
    torch.testing.assert_close(keypoints(out["target_positions"], out["target_axes"], out["sizes"]),
                               out["target_keypoints"], atol=1e-5, rtol=0)
    torch.testing.assert_close(out["target_keypoints"],
                               torch.einsum("bij,bnkj->bnki", R, b["target_keypoints"]) + t[:, None, None],
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(out["positions"], torch.einsum("bij,bnj->bni", R, b["positions"]) + t[:, None])
    torch.testing.assert_close(out["velocity"], torch.einsum("bij,bnj->bni", R, b["velocity"]))
    det = torch.linalg.det(R)
    torch.testing.assert_close(out["angular_velocity"],
                               det[:, None, None] * torch.einsum("bij,bnj->bni", R, b["angular_velocity"]))
    # pseudovector rule keeps the rigid-body velocity field consistent: w' x a' = R (w x a)
    a = b["axes"] * b["sizes"][..., None]
    a2 = out["axes"] * out["sizes"][..., None]
    lhs = torch.cross(out["angular_velocity"][:, :, None].expand_as(a2), a2, dim=-1)
    rhs = torch.einsum("bij,bnkj->bnki", R, torch.cross(b["angular_velocity"][:, :, None].expand_as(a), a, dim=-1))
    torch.testing.assert_close(lhs, rhs, atol=1e-4, rtol=1e-4)
    for key in ("sizes", "mass", "shape", "trajectory"):
        assert torch.equal(out[key], b[key])
    # batched == per-sample; single element broadcast over the batch
    single = transform_sample(ds[0], R[0], t[0])
    for key in single:
        torch.testing.assert_close(single[key], out[key][0])
    shared = transform_sample(b, R[0], t[0])
    torch.testing.assert_close(shared["positions"][0], out["positions"][0])


def test_point_reflection_rule(arrays):
    s = make_ds(arrays, "all", horizon=1)[0]
    out = transform_sample(s, -torch.eye(3), torch.zeros(3))
    torch.testing.assert_close(out["velocity"], -s["velocity"])
    torch.testing.assert_close(out["angular_velocity"], s["angular_velocity"])  # pseudovector


def test_e3_test_set(arrays):
    plain = make_ds(arrays, "test", horizon=2)
    e3 = make_ds(arrays, "test", horizon=2, e3_seed=9)
    assert len(plain) == len(e3)
    R, t = e3.e3
    for i in (0, len(e3) - 1):
        ref = transform_sample(plain[i], R[i], t[i])
        for key, v in e3[i].items():
            torch.testing.assert_close(v, ref[key])
    assert not torch.allclose(e3[0]["positions"], plain[0]["positions"])
    again = make_ds(arrays, "test", horizon=2, e3_seed=9)
    torch.testing.assert_close(again[3]["target_keypoints"], e3[3]["target_keypoints"])


def test_rollout_helpers(arrays):
    ds = make_ds(arrays, "val", horizon=3)
    tgt = rollout_targets(ds, 1, t0=1, steps=3)
    assert tgt.shape == (3, 3, 4, 3)
    torch.testing.assert_close(tgt[0], ds.state(1, 1)["target_keypoints"])
    torch.testing.assert_close(tgt[2], ds.state(1, 7)["target_keypoints"])
    with pytest.raises(ValueError):
        rollout_targets(ds, 1, t0=3, steps=3)
    oracle = lambda b: b["target_keypoints"]  # noqa: E731
    err = teacher_forced_rollout_error(oracle, ds, 1, t0=0)
    assert err.shape == ((12 - 1) // 3,) and torch.all(err == 0)
    static = lambda b: keypoints(b["positions"], b["axes"], b["sizes"])  # noqa: E731
    assert torch.all(teacher_forced_rollout_error(static, ds, 1, t0=0, steps=2) > 0)


def test_datamodule(data_dir):
    dm = RigidBodyDataModule(data_dir, horizon=2, batch_size=8, max_train_trajectories=5, seed=0)
    dm.setup("fit")
    assert dm.train.num_trajectories == 5
    b = next(iter(dm.train_dataloader()))
    assert b["positions"].shape == (8, 3, 3) and b["target_keypoints"].shape == (8, 3, 4, 3)
    b2 = next(iter(dm.train_dataloader()))
    torch.testing.assert_close(b["positions"], b2["positions"])  # seeded shuffling
    test, test_e3, test_rot, test_trans = dm.test_dataloader()
    assert len(test.dataset) == len(test_e3.dataset) == len(test_rot.dataset) == len(test_trans.dataset)
    assert test_e3.dataset is dm.test_e3
    assert len(list(dm.val_dataloader())) > 0
    x, y = next(iter(test)), next(iter(test_e3))
    r, t = next(iter(test_rot)), next(iter(test_trans))
    # E(3) preserves distances between keypoints
    d = lambda k: torch.cdist(k.flatten(1, 2), k.flatten(1, 2))  # noqa: E731
    for z in (y, r, t):
        torch.testing.assert_close(d(x["target_keypoints"]), d(z["target_keypoints"]), atol=1e-5, rtol=1e-5)
    # rotations/reflections only fix the origin; translations only keep every vector
    torch.testing.assert_close(r["positions"].norm(dim=-1), x["positions"].norm(dim=-1), atol=1e-5, rtol=1e-5)
    assert (r["positions"] - x["positions"]).abs().max() > 1e-2
    torch.testing.assert_close(t["axes"], x["axes"])
    torch.testing.assert_close(t["velocity"], x["velocity"])
    assert (t["positions"] - x["positions"]).abs().max() > 1e-2


def test_bad_horizon(arrays):
    with pytest.raises(ValueError):
        make_ds(arrays, "train", horizon=12)
    with pytest.raises(ValueError):
        make_ds(arrays, "bogus", horizon=1)


@pytest.mark.parametrize("e3_seed", [None, 4])
def test_batched_indexing_matches_single(arrays, e3_seed):
    ds = make_ds(arrays, "train", horizon=2, e3_seed=e3_seed)
    idx = [5, 0, 17, len(ds) - 1]
    batch = ds[torch.tensor(idx)]
    ref = _batch(ds, idx)
    assert batch.keys() == ref.keys()
    for key in ref:
        torch.testing.assert_close(batch[key], ref[key])


def test_contact_flags_match_the_simulator_counts(arrays):
    ds = make_ds(arrays, "all", horizon=3)
    c = np.asarray(arrays["contacts"]) > 0
    for i in range(0, len(ds), 7):
        s = ds[i]
        m, t = int(s["trajectory"]), int(s["frame"])
        assert bool(s["contact"]) == bool(c[m, t + 1:t + 4].any())
    assert 0 < ds.contact_fraction < 1


def test_window_sampling_is_deterministic_per_seed_and_keeps_every_contact():
    rng = np.random.default_rng(0)
    contact = torch.as_tensor(rng.random(1000) < 0.2)
    a, b = select_windows(contact, 0.5, seed=1), select_windows(contact, 0.5, seed=1)
    torch.testing.assert_close(a, b)
    other = select_windows(contact, 0.5, seed=2)
    assert not torch.equal(a, other) and len(a) == len(other)
    kept = contact[a]
    assert kept.sum() == contact.sum() and kept.float().mean() >= 0.5  # every contact window, >= half
    assert int((~kept).sum()) == int(contact.sum())  # exactly as many contact-free windows at f = 0.5
    assert torch.equal(select_windows(contact, None), torch.arange(1000))
    assert torch.equal(select_windows(contact, 0.1), torch.arange(1000))  # already above 10%
    with pytest.raises(ValueError, match="min_contact_fraction"):
        select_windows(contact, 1.5)


def test_dataset_window_selection_and_ballistic_keypoints(arrays):
    full = make_ds(arrays, "all", horizon=3)
    half = make_ds(arrays, "all", horizon=3, min_contact_fraction=0.5, window_seed=3)
    again = make_ds(arrays, "all", horizon=3, min_contact_fraction=0.5, window_seed=3)
    assert half.contact_fraction >= 0.5 and len(half) <= len(full)
    torch.testing.assert_close(half._index, again._index)
    # the stored free-flight keypoints are the ballistic predictor on each window's state
    i = torch.arange(0, len(half), 5)
    batch = half[i]
    m, t = half._index[i].unbind(-1)
    state = half.state(m, t)
    torch.testing.assert_close(batch["ballistic_keypoints"], state["ballistic_keypoints"])
    torch.testing.assert_close(batch["contact"], state["contact"])
    # on contact-free windows free flight is the answer (MuJoCo's 1 ms steps; float32 storage)
    free = ~full.contact
    b = full[torch.nonzero(free).flatten()]
    err = (b["ballistic_keypoints"] - b["target_keypoints"]).norm(dim=-1).max()
    assert err < 1e-3, err
