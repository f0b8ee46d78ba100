"""Physics sanity of the rigid-body simulator."""

import mujoco
import numpy as np
import pytest

from experiments.rigid_body.simulate import (
    SimConfig, kinetic_energy, quat_to_matrix, sample_scene, scene_xml, simulate_scene,
    simulate_trajectory,
)

CFG = SimConfig()


@pytest.fixture(scope="module")
def trajectories():
    return [simulate_trajectory(np.random.default_rng([123, i]), CFG)[0] for i in range(12)]


def test_shapes(trajectories):
    tr = trajectories[0]
    T, N = CFG.frames, CFG.bodies
    assert tr["positions"].shape == (T, N, 3)
    assert tr["orientations"].shape == (T, N, 4)
    assert tr["velocity"].shape == tr["angular_velocity"].shape == (T, N, 3)
    assert tr["contacts"].shape == (T,)
    assert tr["shape"].shape == (N,) and tr["sizes"].shape == (N, 3) and tr["mass"].shape == (N,)
    assert (CFG.frames - 1) * CFG.frame_stride * CFG.timestep >= 1.0 - 1e-9  # >= 1 s by default
    np.testing.assert_allclose(np.linalg.norm(tr["orientations"], axis=-1), 1, atol=1e-9)


def test_contacts_happen(trajectories):
    for tr in trajectories:
        assert tr["contacts"][0] == 0  # placed without initial overlap
        assert tr["contacts"].max() > 0


def test_momentum_conserved(trajectories):
    for tr in trajectories:
        p = np.einsum("n,tni->ti", tr["mass"], tr["velocity"])
        scale = np.einsum("n,ni->", tr["mass"], np.abs(tr["velocity"][0]))
        assert np.abs(p - p[0]).max() <= 1e-6 * scale


def test_kinetic_energy_does_not_grow(trajectories):
    for tr in trajectories:
        e = kinetic_energy(tr)
        assert e.max() <= e[0] * (1 + 2e-3)
        assert e[-1] > 0.05 * e[0]  # not absurdly dissipative


def test_kinetic_energy_conserved_without_contacts():
    cfg = SimConfig(bodies=2, frames=21, speed_range=(0.0, 0.0), spread=1.0, spin_scale=8.0)
    scene = sample_scene(np.random.default_rng(1), cfg)
    scene["velocity"][:] = 0.0
    tr = simulate_scene(scene, cfg)
    assert tr["contacts"].max() == 0
    e = kinetic_energy(tr)
    np.testing.assert_allclose(e, e[0], rtol=1e-3)


def test_body_frame_is_geom_frame():
    scene = sample_scene(np.random.default_rng(7), CFG)
    model = mujoco.MjModel.from_xml_string(scene_xml(scene, CFG))
    data = mujoco.MjData(model)
    data.qpos.reshape(-1, 7)[:, 3:] = scene["quat"]
    mujoco.mj_forward(model, data)
    np.testing.assert_allclose(data.geom_xmat, data.xmat[1:], atol=1e-12)
    np.testing.assert_allclose(data.geom_xpos, data.xpos[1:], atol=1e-12)
    # sizes are the semi-axes along body axes: the geom's bounding box half-extents
    for i, s in enumerate(scene["shape"]):
        if s == 2:  # capsule along z: r, r, half_length + r
            r, hl = model.geom_size[i, :2]
            np.testing.assert_allclose(scene["sizes"][i], [r, r, hl + r])
        elif s in (0, 3):
            np.testing.assert_allclose(scene["sizes"][i], model.geom_size[i])


def test_angular_velocity_is_world_frame():
    """Orientation change over one step matches the recorded WORLD angular velocity."""
    cfg = SimConfig(bodies=2, frames=30, frame_stride=1, spread=1.0, spin_scale=6.0)
    tr = simulate_scene(sample_scene(np.random.default_rng(3), cfg), cfg)
    rot = quat_to_matrix(tr["orientations"])
    dt = cfg.timestep
    for t in range(0, 29, 7):
        # R(t+dt) R(t)^T = exp(dt [w]_x) with w in world coordinates
        d = rot[t + 1] @ np.swapaxes(rot[t], -1, -2)
        skew = (d - np.swapaxes(d, -1, -2)) / (2 * dt)
        w_fd = np.stack([skew[:, 2, 1], skew[:, 0, 2], skew[:, 1, 0]], -1)
        w = 0.5 * (tr["angular_velocity"][t] + tr["angular_velocity"][t + 1])
        np.testing.assert_allclose(w_fd, w, atol=2e-3 * np.abs(w).max())
        # the local-frame interpretation would be clearly wrong
        w_local = np.einsum("nji,nj->ni", rot[t], tr["angular_velocity"][t])
        assert np.abs(w_fd - w_local).max() > 0.1 * np.abs(w).max()


def test_linear_velocity_matches_positions():
    cfg = SimConfig(bodies=2, frames=10, frame_stride=1, spread=1.0)
    tr = simulate_scene(sample_scene(np.random.default_rng(4), cfg), cfg)
    v_fd = np.diff(tr["positions"], axis=0) / cfg.timestep
    np.testing.assert_allclose(v_fd, tr["velocity"][1:], atol=1e-9)


def _mirror(R):
    """diag(1, 1, det R): an improper R maps each body frame to a left-handed one; mirroring the body in
    its own z axis (every shape here is symmetric under it) gives the proper frame MuJoCo can hold."""
    return np.diag([1.0, 1.0, np.linalg.det(R)])


def _transform_scene(scene, R, t):
    from scipy.spatial.transform import Rotation

    out = dict(scene)
    out["position"] = scene["position"] @ R.T + t
    out["velocity"] = scene["velocity"] @ R.T
    out["angular_velocity"] = np.linalg.det(R) * scene["angular_velocity"] @ R.T  # a pseudovector
    q = Rotation.from_matrix(R @ quat_to_matrix(scene["quat"]) @ _mirror(R)).as_quat()  # xyzw
    out["quat"] = np.roll(q, 1, axis=-1)
    return out


@pytest.mark.parametrize("reflect", [False, True], ids=["rotation", "reflection"])
@pytest.mark.parametrize("i", range(3))
def test_rigid_motion_equivariance(i, reflect):
    """E(3)-transformed scenes give transformed trajectories, through collisions. Measured worst errors
    over 0.5 s (rotations / reflections): positions 2.7e-7 / 1.3e-7 m, velocities 7.8e-7 / 3.9e-7 m/s,
    angular velocities 5.8e-5 / 2.9e-5 rad/s, orientations 1.4e-5 / 7.1e-6; tolerances ~10-40x that."""
    from scipy.spatial.transform import Rotation

    cfg = SimConfig(frames=26)  # 0.5 s, through the first collisions
    scene = sample_scene(np.random.default_rng([5, i]), cfg)
    R = Rotation.random(random_state=i).as_matrix() * (-1 if reflect else 1)
    t = np.array([0.3, -1.0, 2.0])
    a = simulate_scene(scene, cfg)
    b = simulate_scene(_transform_scene(scene, R, t), cfg)
    assert a["contacts"].max() > 0
    det = np.linalg.det(R)
    np.testing.assert_allclose(a["positions"] @ R.T + t, b["positions"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(a["velocity"] @ R.T, b["velocity"], atol=3e-5, rtol=0)
    np.testing.assert_allclose(det * a["angular_velocity"] @ R.T, b["angular_velocity"], atol=1e-3, rtol=0)
    ra, rb = quat_to_matrix(a["orientations"]), quat_to_matrix(b["orientations"])
    np.testing.assert_allclose(R @ ra @ _mirror(R), rb, atol=2e-4, rtol=0)


def test_config_validation():
    with pytest.raises(ValueError):
        SimConfig(bodies=1)
    with pytest.raises(ValueError):
        SimConfig(bodies=17)
    assert SimConfig.from_dict(SimConfig(bodies=16).to_dict()) == SimConfig(bodies=16)


def test_many_bodies():
    cfg = SimConfig(bodies=16, frames=6)
    tr = simulate_scene(sample_scene(np.random.default_rng(0), cfg), cfg)
    assert tr["positions"].shape == (6, 16, 3)
    assert np.isfinite(tr["positions"]).all()


def test_unstable_simulation_is_an_error_and_mujoco_writes_no_log_here(tmp_path, monkeypatch):
    """Spins of ~1e12 rad/s make MuJoCo reset its state (a wrong trajectory): that is an error naming the
    cause, MuJoCo's warning is a Python warning, and no MUJOCO_LOG.TXT lands in the working directory."""
    from experiments.rigid_body.simulate import UnstableSimulationError

    monkeypatch.chdir(tmp_path)
    cfg = SimConfig(frames=10, spin_scale=1e12)
    scene = sample_scene(np.random.default_rng(0), cfg)
    with pytest.warns(RuntimeWarning, match="MuJoCo"), pytest.raises(UnstableSimulationError, match="timestep"):
        simulate_scene(scene, cfg)
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


def test_generator_cli_errors_are_one_line(tmp_path, capsys):
    from experiments.rigid_body.generate import main

    assert main(["--num-trajectories", "2", "--out", str(tmp_path / "d"), "--workers", "1", "--no-progress",
                 "--timestep", "1"]) == 2  # 1 s steps: the bodies fly through each other
    err = capsys.readouterr().err
    assert err.startswith("error: no contact") and "Traceback" not in err
