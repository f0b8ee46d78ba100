"""Closed-form reference predictors: "no motion" and "ballistic" (free flight).

Free flight is what a body does when nothing touches it: its centre moves with constant
velocity and it rotates torque-free. Torque-free rotation conserves the WORLD angular momentum
``L = I_world w``, not the angular velocity (constant ``w`` is exact only for spheres): with the
body axes ``a_j`` (unit rows, world frame) and principal moments ``I_j``,

    w(t)      = sum_j (a_j . L) / I_j  a_j          (I_world^-1 L, I_world = sum_j I_j a_j a_j^T)
    d a_j/dt  = w x a_j

which is Euler's equations written in the world frame. We integrate it with classical RK4 in
float64 (default step <= 2 ms; the error is far below MuJoCo's own 1 ms semi-implicit step).

Both predictors read only the input state (positions, axes, velocity, angular velocity, sizes,
mass, shape) and are E(3)-equivariant: under ``x -> R x + t`` the axes and velocity rotate, the
angular velocity and ``L`` rotate as pseudovectors (``det(R) R``), and ``(det R R w) x (R a) =
R (w x a)``, so reflected scenes give reflected predictions.

Inertia from shape, sizes and mass (principal moments along the body axes, MuJoCo's formulas for
uniform density; ``sizes`` as in :mod:`experiments.rigid_body.simulate`):

* box, half-sizes ``(a, b, c)``:  ``I_x = m (b^2 + c^2) / 3``
* ellipsoid, radii ``(a, b, c)``:  ``I_x = m (b^2 + c^2) / 5``
* sphere, radius ``r``:  ``2 m r^2 / 5``
* capsule, radius ``r``, cylinder height ``h = 2 (sizes_z - r)`` along z: cylinder mass ``m_c``
  and the two hemispheres' mass ``m_s`` in proportion to their volumes;
  ``I_z = (m_c / 2 + 2 m_s / 5) r^2``, ``I_x = I_y = m_c (h^2/12 + r^2/4) + m_s (2 r^2/5 + h^2/4 + 3 h r/8)``
  (parallel-axis theorem for the hemispheres, whose centres of mass sit ``3 r / 8`` from their bases).
"""

from __future__ import annotations

import math

import torch

__all__ = ["principal_inertia", "free_flight", "keypoints", "ballistic_keypoints", "no_motion_keypoints",
           "DEFAULT_MAX_STEP"]

#: largest RK4 step [s] of :func:`free_flight` (error ~ (h |w|)^5; |w| <~ 20 rad/s here)
DEFAULT_MAX_STEP = 0.002


def principal_inertia(shape: torch.Tensor, sizes: torch.Tensor, mass: torch.Tensor) -> torch.Tensor:
    """Principal moments of inertia about the centre of mass, along the body axes.

    Parameters
    ----------
    shape : (...,) int, 0 box, 1 sphere, 2 capsule, 3 ellipsoid
    sizes : (..., 3) semi-axis extents [m]
    mass : (...,) [kg]

    Returns
    -------
    Tensor, shape (..., 3) [kg m^2], dtype of ``sizes``
    """
    shape = torch.as_tensor(shape).long()
    if not bool(((shape >= 0) & (shape <= 3)).all()):
        raise ValueError(f"shape codes must be 0..3 (box, sphere, capsule, ellipsoid), got {shape.unique().tolist()}")
    s2 = sizes * sizes
    x2, y2, z2 = s2.unbind(-1)
    m = mass.to(sizes.dtype)
    perp = torch.stack([y2 + z2, x2 + z2, x2 + y2], -1)  # sum of the two other squared extents
    box = perp / 3.0
    ellipsoid = perp / 5.0
    sphere = (0.4 * x2).unsqueeze(-1).expand_as(perp)
    r = sizes[..., 0]
    h = (2.0 * (sizes[..., 2] - r)).clamp_min(0.0)  # sizes_z < r is no capsule: treat it as a sphere
    v_cyl = math.pi * r * r * h
    v_sph = 4.0 / 3.0 * math.pi * r ** 3
    f_cyl, f_sph = v_cyl / (v_cyl + v_sph), v_sph / (v_cyl + v_sph)  # mass fractions
    i_perp = f_cyl * (h * h / 12 + r * r / 4) + f_sph * (0.4 * r * r + h * h / 4 + 3 * h * r / 8)
    i_axis = (f_cyl / 2 + 0.4 * f_sph) * r * r
    capsule = torch.stack([i_perp, i_perp, i_axis], -1)
    per_mass = torch.where((shape == 0).unsqueeze(-1), box,
                           torch.where((shape == 1).unsqueeze(-1), sphere,
                                       torch.where((shape == 2).unsqueeze(-1), capsule, ellipsoid)))
    return per_mass * m.unsqueeze(-1)


def _omega(axes: torch.Tensor, momentum: torch.Tensor, inv_inertia: torch.Tensor) -> torch.Tensor:
    """``w = I_world^-1 L = sum_j (a_j . L) / I_j a_j``; axes (..., 3, 3) rows, L (..., 3)."""
    coeff = (axes @ momentum.unsqueeze(-1)).squeeze(-1) * inv_inertia  # (..., 3)
    return (coeff.unsqueeze(-1) * axes).sum(-2)


def _axes_rate(axes: torch.Tensor, momentum: torch.Tensor, inv_inertia: torch.Tensor) -> torch.Tensor:
    w = _omega(axes, momentum, inv_inertia)
    return torch.linalg.cross(w.unsqueeze(-2).expand_as(axes), axes, dim=-1)


def free_flight(positions: torch.Tensor, axes: torch.Tensor, velocity: torch.Tensor,
                angular_velocity: torch.Tensor, inertia: torch.Tensor, duration: float,
                max_step: float = DEFAULT_MAX_STEP) -> tuple[torch.Tensor, torch.Tensor]:
    """Free-flight state after ``duration`` seconds (constant velocity, torque-free rotation).

    Parameters
    ----------
    positions : (..., 3) centres [m]
    axes : (..., 3, 3) body axes as rows (world frame)
    velocity : (..., 3) [m/s]
    angular_velocity : (..., 3) world frame [rad/s]
    inertia : (..., 3) principal moments along the axes (only their ratios matter)
    duration : seconds (>= 0)
    max_step : largest RK4 step [s]

    Returns
    -------
    (positions (..., 3), axes (..., 3, 3)) after ``duration``, in float64
    """
    if not duration >= 0 or not max_step > 0:
        raise ValueError(f"need duration >= 0 and max_step > 0, got {duration}, {max_step}")
    f64 = torch.float64
    axes = axes.to(f64)
    omega = angular_velocity.to(f64)
    inv_inertia = 1.0 / inertia.to(f64).clamp_min(1e-30)
    # L = I_world w, conserved: sum_j I_j (a_j . w) a_j
    momentum = (((axes @ omega.unsqueeze(-1)).squeeze(-1) / inv_inertia).unsqueeze(-1) * axes).sum(-2)
    n = max(1, math.ceil(duration / max_step - 1e-9)) if duration > 0 else 0
    h = duration / n if n else 0.0
    for _ in range(n):
        k1 = _axes_rate(axes, momentum, inv_inertia)
        k2 = _axes_rate(axes + 0.5 * h * k1, momentum, inv_inertia)
        k3 = _axes_rate(axes + 0.5 * h * k2, momentum, inv_inertia)
        k4 = _axes_rate(axes + h * k3, momentum, inv_inertia)
        axes = axes + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
    return positions.to(f64) + duration * velocity.to(f64), axes


def keypoints(positions: torch.Tensor, axes: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """Centre and three axis tips.

    Parameters
    ----------
    positions : (..., N, 3)
    axes : (..., N, 3, 3), rows are axes
    sizes : (..., N, 3)

    Returns
    -------
    Tensor, shape (..., N, 4, 3)
    """
    tips = positions.unsqueeze(-2) + axes * sizes.unsqueeze(-1)
    return torch.cat([positions.unsqueeze(-2), tips], -2)


def no_motion_keypoints(batch: dict) -> torch.Tensor:
    """The input keypoints (centre, centre + axes[j] * sizes[j]) as the prediction: ``(..., N, 4, 3)``."""
    p = batch["positions"]
    return keypoints(p, batch["axes"].to(p.dtype), batch["sizes"].to(p.dtype))


def ballistic_keypoints(batch: dict, duration: float, max_step: float = DEFAULT_MAX_STEP) -> torch.Tensor:
    """Free-flight keypoints after ``duration`` seconds from a (batched) sample dict.

    Parameters
    ----------
    batch : dict with ``positions`` (..., N, 3), ``axes`` (..., N, 3, 3), ``velocity``,
        ``angular_velocity`` (..., N, 3), ``sizes`` (..., N, 3), ``mass`` (..., N), ``shape`` (..., N)
    duration : prediction horizon [s]

    Returns
    -------
    Tensor, shape (..., N, 4, 3), dtype of ``positions`` (computed in float64)
    """
    sizes = batch["sizes"].to(torch.float64)
    inertia = principal_inertia(batch["shape"], sizes, batch["mass"].to(torch.float64))
    pos, axes = free_flight(batch["positions"], batch["axes"], batch["velocity"], batch["angular_velocity"],
                            inertia, duration, max_step)
    return keypoints(pos, axes, sizes).to(batch["positions"].dtype)
