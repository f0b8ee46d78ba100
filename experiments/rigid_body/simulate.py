"""MuJoCo simulation of rigid bodies colliding in free space.

A scene holds ``N`` rigid bodies (boxes, spheres, capsules, ellipsoids) with
random sizes and densities, no gravity and no floor, so the physics is
E(3)-symmetric.  Bodies are placed without overlap and launched roughly towards
the scene centre with random spins, so that they collide.

Conventions
-----------
* Shape codes: ``0`` box, ``1`` sphere, ``2`` capsule, ``3`` ellipsoid
  (:data:`SHAPE_NAMES`).
* Each body has exactly one geom at its origin, with the body frame equal to
  the geom frame (``compiler alignfree="false"``).  The body origin is
  therefore the centre of mass, and the body axes are the geom's principal
  axes.
* ``sizes[i]`` are the three semi-axis extents along the body axes: box
  half-sizes, sphere ``(r, r, r)``, capsule ``(r, r, half_length + r)`` (the
  capsule axis is the body z axis), ellipsoid radii.
* ``orientations`` are unit quaternions ``(w, x, y, z)`` mapping body to world
  coordinates.
* ``velocity`` and ``angular_velocity`` are both expressed in the WORLD frame.
  MuJoCo's free-joint ``qvel`` holds the linear velocity of the body origin in
  the world frame but the angular velocity in the LOCAL body frame; we rotate
  it to the world frame (``w_world = R @ qvel[3:6]``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, fields

import mujoco
import numpy as np

SHAPE_NAMES = ("box", "sphere", "capsule", "ellipsoid")

__all__ = [
    "SHAPE_NAMES",
    "SimConfig",
    "NoContactError",
    "UnstableSimulationError",
    "sample_scene",
    "scene_xml",
    "simulate_scene",
    "simulate_trajectory",
    "kinetic_energy",
    "quat_to_matrix",
]


class NoContactError(RuntimeError):
    """Raised when a simulated trajectory has no body-body contact."""


class UnstableSimulationError(ValueError):
    """MuJoCo reported an unstable simulation (NaN, inf or huge state): the trajectory would be wrong."""


#: MuJoCo warnings that mean the recorded trajectory is not physics (MuJoCo resets the state on them)
_FATAL_WARNINGS = ("mjWARN_BADQACC", "mjWARN_BADQPOS", "mjWARN_BADQVEL", "mjWARN_CONTACTFULL", "mjWARN_CNSTRFULL")


def _mujoco_warning(message: str) -> None:
    warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)


# MuJoCo's warnings become Python warnings instead of lines in ./MUJOCO_LOG.TXT in the user's directory
mujoco.set_mju_user_warning(_mujoco_warning)


@dataclass(frozen=True)
class SimConfig:
    """Parameters of scene sampling and simulation.

    All lengths in metres, times in seconds, densities in kg/m^3.
    The default gives ``frames=51`` frames ``frame_stride * timestep = 0.02 s``
    apart, i.e. 1 s of simulated time.
    """

    bodies: int = 4
    frames: int = 51
    frame_stride: int = 20
    timestep: float = 0.001
    size_range: tuple[float, float] = (0.04, 0.12)
    density_range: tuple[float, float] = (300.0, 3000.0)
    speed_range: tuple[float, float] = (0.5, 1.5)
    aim_noise: float = 0.15
    spin_scale: float = 4.0
    spread: float = 0.35
    friction: float = 0.3
    solref: tuple[float, float] = (0.005, 0.3)  # (timeconst, dampratio)
    max_attempts: int = 50

    def __post_init__(self):
        if not 2 <= int(self.bodies) <= 16:
            raise ValueError(f"bodies must be between 2 and 16, got {self.bodies}")
        if self.frames < 2 or self.frame_stride < 1:
            raise ValueError("frames must be >= 2 and frame_stride >= 1")
        if not (math.isfinite(self.timestep) and self.timestep > 0):
            raise ValueError(f"timestep must be a positive finite number of seconds, got {self.timestep}")
        for f in fields(self):  # no NaN or inf anywhere: they would simulate into a NaN dataset
            value = getattr(self, f.name)
            for v in (value if isinstance(value, tuple) else (value,)):
                if isinstance(v, float) and not math.isfinite(v):
                    raise ValueError(f"{f.name} must be finite, got {value}")

    def to_dict(self) -> dict:
        """JSON-friendly dict (tuples become lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "SimConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise TypeError(f"unknown simulation options: {sorted(unknown)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices from unit quaternions ``(w, x, y, z)``.

    Parameters
    ----------
    q : ndarray, shape (..., 4)

    Returns
    -------
    ndarray, shape (..., 3, 3)
        Body-to-world rotation; column ``j`` is the body's ``j``-th axis.
    """
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    r = np.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    )
    return r.reshape(q.shape[:-1] + (3, 3))


def sample_scene(rng: np.random.Generator, config: SimConfig) -> dict:
    """Draw a random scene (shapes, sizes, densities, initial state).

    Returns
    -------
    dict with
        ``shape`` (N,) int, ``sizes`` (N,3), ``geom_size`` (N,3) MuJoCo geom size
        parameters, ``density`` (N,), ``position`` (N,3), ``quat`` (N,4) wxyz,
        ``velocity`` (N,3) world, ``angular_velocity`` (N,3) world.
    """
    n = config.bodies
    shape, geom_size, sizes = _sample_shapes(rng, config)
    density = np.exp(rng.uniform(*np.log(config.density_range), size=n))
    position = _place_bodies(rng, np.linalg.norm(sizes, axis=1), config)  # conservative bounding radii

    quat = rng.normal(size=(n, 4))
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)

    # Aim at the centre (origin) with noise, random speeds and spins.
    to_centre = -position / np.maximum(np.linalg.norm(position, axis=1, keepdims=True), 1e-9)
    direction = to_centre + config.aim_noise * rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    speed = rng.uniform(*config.speed_range, size=(n, 1))
    velocity = speed * direction
    angular_velocity = config.spin_scale * rng.normal(size=(n, 3))
    return dict(
        shape=shape, sizes=sizes, geom_size=geom_size, density=density,
        position=position, quat=quat, velocity=velocity, angular_velocity=angular_velocity,
    )


def _sample_shapes(rng: np.random.Generator, config: SimConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random shapes ``(N,)`` with their MuJoCo geom sizes ``(N, 3)`` and semi-axis extents ``(N, 3)``."""
    n = config.bodies
    lo, hi = config.size_range
    shape = rng.integers(0, 4, size=n)
    geom_size = np.zeros((n, 3))
    sizes = np.zeros((n, 3))
    for i, s in enumerate(shape):
        a = rng.uniform(lo, hi, size=3)
        if s == 0 or s == 3:  # box half-sizes / ellipsoid radii
            geom_size[i] = a
            sizes[i] = a
        elif s == 1:  # sphere
            geom_size[i] = (a[0], 0, 0)
            sizes[i] = a[0]
        else:  # capsule: radius, half-length of the cylinder part
            r, hl = 0.6 * a[0], a[1]
            geom_size[i] = (r, hl, 0)
            sizes[i] = (r, r, hl + r)
    return shape, geom_size, sizes


def _place_bodies(rng: np.random.Generator, bound: np.ndarray, config: SimConfig) -> np.ndarray:
    """Centres ``(N, 3)`` of bodies with bounding radii ``bound`` (N,), without overlap of the bounding spheres,
    in a ball whose radius grows with N (enlarged while placement keeps failing), then centred on the origin."""
    n = config.bodies
    radius = config.spread * (n / 4.0) ** (1.0 / 3.0)
    position = np.zeros((n, 3))
    placed = 0
    tries = 0
    while placed < n:
        p = rng.normal(size=3)
        p *= radius * rng.uniform() ** (1 / 3) / np.linalg.norm(p)
        d = np.linalg.norm(position[:placed] - p, axis=1)
        if np.all(d > bound[:placed] + bound[placed] + 0.01):
            position[placed] = p
            placed += 1
        tries += 1
        if tries % 200 == 0:
            radius *= 1.1
    return position - position.mean(axis=0)


def scene_xml(scene: dict, config: SimConfig) -> str:
    """MJCF string of a scene (free joints, zero gravity, no floor)."""
    parts = []
    for i, s in enumerate(scene["shape"]):
        gs = scene["geom_size"][i]
        size = {0: gs, 1: gs[:1], 2: gs[:2], 3: gs}[int(s)]
        size_str = " ".join(f"{v:.17g}" for v in size)
        parts.append(
            f'<body name="b{i}"><freejoint/>'
            f'<geom type="{SHAPE_NAMES[int(s)]}" size="{size_str}" '
            f'density="{scene["density"][i]:.17g}"/></body>'
        )
    sr = config.solref
    return (
        '<mujoco><compiler alignfree="false" autolimits="true"/>'
        f'<option timestep="{config.timestep:.17g}" gravity="0 0 0" integrator="implicitfast" '
        'cone="elliptic"/>'
        f'<default><geom solref="{sr[0]:.17g} {sr[1]:.17g}" friction="{config.friction:.17g} 0 0" '
        'condim="3" margin="0"/></default>'
        f'<worldbody>{"".join(parts)}</worldbody></mujoco>'
    )


def simulate_scene(scene: dict, config: SimConfig) -> dict:
    """Simulate a given scene and record the trajectory.

    Parameters
    ----------
    scene : dict
        As returned by :func:`sample_scene` (may be modified, e.g. rigidly
        transformed, before simulation).
    config : SimConfig

    Returns
    -------
    dict of ndarrays (float64 unless noted), T = ``config.frames``:
        ``positions`` (T,N,3), ``orientations`` (T,N,4) wxyz,
        ``velocity`` (T,N,3) world, ``angular_velocity`` (T,N,3) world,
        ``contacts`` (T,) int32: maximum number of simultaneous contacts over
        the simulator steps since the previous frame (frame 0: initial state),
        ``shape`` (N,) int8, ``sizes`` (N,3), ``mass`` (N,),
        ``inertia`` (N,3,3) body-frame inertia tensor about the centre of mass.
    """
    model, data = _start_simulation(scene, config)
    frames = _record_frames(model, data, config)
    _check_stable(data, frames["positions"], config)
    iq = quat_to_matrix(model.body_iquat[1:])
    return dict(
        positions=frames["positions"],
        orientations=frames["orientations"],
        velocity=frames["velocity"],
        angular_velocity=np.einsum("tnij,tnj->tni", frames["xmat"], frames["local_angular_velocity"]),  # to world
        contacts=frames["contacts"],
        shape=np.asarray(scene["shape"], dtype=np.int8),
        sizes=np.asarray(scene["sizes"], dtype=np.float64),
        mass=model.body_mass[1:].copy(),
        inertia=np.einsum("nij,nj,nkj->nik", iq, model.body_inertia[1:], iq),
    )


def _start_simulation(scene: dict, config: SimConfig):
    """The MuJoCo model and data of ``scene``, in its initial state (kinematics computed)."""
    model = mujoco.MjModel.from_xml_string(scene_xml(scene, config))
    data = mujoco.MjData(model)
    n = config.bodies
    qpos = data.qpos.reshape(n, 7)
    qvel = data.qvel.reshape(n, 6)
    qpos[:, :3] = scene["position"]
    qpos[:, 3:] = scene["quat"]
    qvel[:, :3] = scene["velocity"]
    # free-joint angular velocity is in the local body frame: w_local = R^T w_world
    rot0 = quat_to_matrix(scene["quat"])
    qvel[:, 3:] = np.einsum("nji,nj->ni", rot0, scene["angular_velocity"])
    mujoco.mj_forward(model, data)
    return model, data


def _record_frames(model, data, config: SimConfig) -> dict:
    """Step the simulation and record ``config.frames`` frames, ``config.frame_stride`` steps apart:
    ``positions``, ``orientations``, ``velocity``, ``contacts`` (as :func:`simulate_scene` returns them),
    ``local_angular_velocity`` (T, N, 3) in the body frames and their rotations ``xmat`` (T, N, 3, 3)."""
    n, T = config.bodies, config.frames
    qvel = data.qvel.reshape(n, 6)
    out = {"positions": np.empty((T, n, 3)), "orientations": np.empty((T, n, 4)), "velocity": np.empty((T, n, 3)),
           "contacts": np.zeros(T, dtype=np.int32), "local_angular_velocity": np.empty((T, n, 3)),
           "xmat": np.empty((T, n, 3, 3))}
    xmat = data.xmat[1:].reshape(n, 3, 3)  # views, updated in place by MuJoCo

    def record(t):
        out["positions"][t] = data.xpos[1:]
        out["orientations"][t] = data.xquat[1:]
        out["velocity"][t] = qvel[:, :3]
        out["local_angular_velocity"][t] = qvel[:, 3:]
        out["xmat"][t] = xmat

    record(0)
    out["contacts"][0] = data.ncon
    step = mujoco.mj_step
    for t in range(1, T):
        c = 0
        for _ in range(config.frame_stride):
            step(model, data)
            if data.ncon > c:
                c = data.ncon
        out["contacts"][t] = c
        # mj_step leaves xpos/xmat at the state *before* the last integration;
        # refresh kinematics so that positions match qpos/qvel of this frame.
        mujoco.mj_kinematics(model, data)
        record(t)
    return out


def _check_stable(data, positions: np.ndarray, config: SimConfig) -> None:
    """Raise :class:`UnstableSimulationError` if MuJoCo reset the state or a position is not finite."""
    fatal = [name for name in _FATAL_WARNINGS if data.warning[getattr(mujoco.mjtWarning, name)].number > 0]
    if fatal or not np.isfinite(positions).all():
        raise UnstableSimulationError(
            f"the simulation is unstable ({', '.join(fatal) or 'non-finite state'}) with timestep={config.timestep} s, "
            f"speeds up to {config.speed_range[1]} m/s and spin scale {config.spin_scale} rad/s; use a smaller "
            "--timestep (default 0.001) or slower bodies")


def simulate_trajectory(rng: np.random.Generator, config: SimConfig) -> tuple[dict, int]:
    """Sample and simulate scenes until one has a body-body contact.

    Parameters
    ----------
    rng : numpy Generator
        Consumed sequentially; the result is a deterministic function of its state.
    config : SimConfig

    Returns
    -------
    (trajectory, rejected)
        ``trajectory`` as in :func:`simulate_scene`, ``rejected`` the number of
        scenes discarded because they had no contact.

    Raises
    ------
    NoContactError
        If ``config.max_attempts`` scenes in a row had no contact.
    """
    for attempt in range(config.max_attempts):
        traj = simulate_scene(sample_scene(rng, config), config)
        if traj["contacts"].max() > 0:
            return traj, attempt
    raise NoContactError(f"no contact in {config.max_attempts} scenes; check SimConfig")


def kinetic_energy(traj: dict) -> np.ndarray:
    """Total kinetic energy per frame (linear + rotational, world inertia).

    Parameters
    ----------
    traj : dict
        With ``velocity`` (T,N,3), ``angular_velocity`` (T,N,3),
        ``orientations`` (T,N,4), ``mass`` (N,), ``inertia`` (N,3,3) body frame.

    Returns
    -------
    ndarray, shape (T,)
    """
    v = np.asarray(traj["velocity"], dtype=np.float64)
    w = np.asarray(traj["angular_velocity"], dtype=np.float64)
    rot = quat_to_matrix(traj["orientations"])
    i_world = rot @ np.asarray(traj["inertia"])[None] @ np.swapaxes(rot, -1, -2)
    lin = 0.5 * np.einsum("n,tni,tni->t", np.asarray(traj["mass"]), v, v)
    ang = 0.5 * np.einsum("tni,tnij,tnj->t", w, i_world, w)
    return lin + ang
