"""Rigid bodies as GATr tokens, for any 3D algebra backend, and keypoints read back as points.

One token per body. Multivector channels (``MV_CHANNELS``):

===  ==========================  ===========================================================
 #   channel                     embedding
===  ==========================  ===========================================================
 0   centre                      ``embed_point(position)``
1-3  axis tips                   ``embed_point(position + axes[j] * sizes[j])`` (the input
                                 keypoints; the net can compare them across bodies)
4-6  body axes                   ``embed_direction(axes[j])`` (unit vectors)
 7   linear velocity             ``embed_direction(velocity)``
 8   angular velocity            ``embed_axial_vector(angular_velocity)`` (transforms with
                                 ``det(R) R``, like the data, see ``rigid_body.transforms``)
9-12 free-flight keypoints       ``embed_point`` of the batch's ``ballistic_keypoints`` (where
                                 each body would be without contacts: overlaps there are the
                                 collisions the net has to correct)
===  ==========================  ===========================================================

Scalar channels (``SCALAR_FEATURES``): the three sizes, log mass, one-hot shape (4), and E(3)
invariants |v|, |w|, ``v . a_j`` (3) and ``c (w . a_j)`` (3) where ``c`` is the handedness below.

Translations. Every backend sees positions (and free-flight keypoints) centred on the mean over the
bodies of each scene, and the centre is added back to the predicted keypoints. The mean moves with the
scene, so this is translation-equivariant. An algebra whose group has no translations (G(3,0,0) with
O(3)) needs it; for the others it keeps float32 exact away from the origin (a point of G(4,1,0)
carries ``|x|^2 / 2``: without centring, a scene 100 m from the origin lost its
centimetres). The centred positions (and the velocities) are then divided by a length unit (``embed``'s
``length_unit``, the model's choice; the read-out multiplies back), a constant, so equivariance is kept; it
sets the scale of ``|x|^2 / 2`` against ``e_o`` in a conformal point.

Reflections (exact E(3) equivariance for every backend).
    Some embeddings pick up ``det(g)`` under reflections: in PGA points and directions are
    trivectors and an odd versor maps ``embed_point(p)`` to ``-embed_point(g p)``
    (``alg.embedding_parity[kind] == -1``), whereas axial vectors and scalars do not flip. Feeding
    the raw embeddings would give the network inputs that do not all transform by ``rho_u``, and
    a network that is equivariant under ``rho_u`` would then not be equivariant on the scene.
    Fix: every body carries a frame whose handedness ``c_i = det[axes_i] = +-1`` is a pseudoscalar
    invariant (``+1`` for real, right-handed bodies; ``-1`` after a reflection of the scene, since
    ``axes -> axes R^T`` multiplies the determinant by ``det R``). Every embedding whose parity is
    ``-1`` is multiplied by ``c_i``: ``c_i embed_point(p)`` becomes ``(det g c_i) embed_point(g p)
    = rho_u(c_i embed_point(p))``. So every input transforms exactly by ``rho_u``, and the outputs
    are read back sign-blind (``extract_point`` divides by the homogeneous weight). Invariant
    scalars built from pseudovectors (``w . a_j``) are multiplied by ``c_i`` for the same reason.

Read-out (residual: free flight, or "no motion", at initialisation).
    The network outputs four channels ``Y_k`` (centre and axis tips). Each is added to the
    reference ``X_k`` = the embedded free-flight keypoint (``residual="ballistic"``, the default) or
    input keypoint (``residual="keypoints"``), with the same ``c_i`` factor, and read back with
    ``extract_point``. For backends whose points carry a homogeneous weight (a linear functional
    ``phi`` with ``phi(embed_point(p)) = 1``, derived numerically below: ``e_123`` in PGA, ``-X . e_inf``
    in CGA; none in G(3,0,0)) the weight of ``Y_k`` is first moved onto the reference:
    ``Z_k = Y_k - (c_i^(parity) phi(Y_k)) X_k`` has weight 0, so ``X_k + gate * Z_k`` has weight exactly
    ``phi(X_k) = +-1`` and the read-out ``x_k + displacement`` never divides by a learned number.
    ``c_i^(parity) phi(Y)`` is an invariant scalar, so ``Z_k`` transforms by ``rho_u`` and the whole
    predictor is E(3)-equivariant. ``gate`` is a learnable scalar (initialised to 0 by the models, so
    an untrained model predicts the input keypoints, i.e. no motion).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from algebras import Embedding3D, get_algebra
from algebras.contract import missing_members, protocol_members
from algebras.geometry3d import Euclidean3DAlgebra
from experiments.rigid_body.ballistic import no_motion_keypoints

__all__ = [
    "RIGID_BODY_CONTRACT", "check_rigid_body_algebra", "MV_CHANNELS", "SCALAR_FEATURES", "NUM_SHAPES", "RESIDUALS", "BodyEmbedding", "EmbeddedBodies",
    "handedness", "input_keypoints", "reference_keypoints", "point_weight_functional", "scene_centre",
]

#: What the rigid-body model reads from an algebra besides the network contract: the members of the
#: declared protocol :class:`algebras.Embedding3D` (the 3D embeddings the built-in backends provide; a plain
#: ``CliffordAlgebra`` of a new signature has none of them: subclass one of the backends, or add these).
RIGID_BODY_CONTRACT = protocol_members(Embedding3D)


def check_rigid_body_algebra(alg) -> None:
    """Raise ValueError naming every member of :class:`algebras.Embedding3D` that ``alg`` lacks.

    Parameters
    ----------
    alg : NetworkAlgebra

    Raises
    ------
    ValueError
        Naming the algebra and the missing embedding methods.
    """
    if isinstance(alg, Embedding3D):
        return
    missing = missing_members(alg, Embedding3D)
    raise ValueError(f"algebra {alg.name!r} cannot embed rigid bodies: it lacks {', '.join(missing)} (the 3D "
                     "embeddings of the euclidean, projective and conformal backends: algebras.Embedding3D)")


MV_CHANNELS = ("centre", "tip_0", "tip_1", "tip_2", "axis_0", "axis_1", "axis_2", "velocity",
               "angular_velocity", "ballistic_centre", "ballistic_tip_0", "ballistic_tip_1", "ballistic_tip_2")
#: what the predicted keypoints are a correction to: free flight (default) or the input keypoints
RESIDUALS = ("ballistic", "keypoints")
NUM_SHAPES = 4
SCALAR_FEATURES = ("size_0", "size_1", "size_2", "log_mass", "shape_box", "shape_sphere", "shape_capsule",
                   "shape_ellipsoid", "speed", "spin", "v.a_0", "v.a_1", "v.a_2", "c w.a_0", "c w.a_1",
                   "c w.a_2")
OUT_CHANNELS = 4  # centre and the three axis tips


def handedness(axes: torch.Tensor) -> torch.Tensor:
    """``c = sign(det[axes])`` (``(..., 3, 3)`` -> ``(...)``): +1 right-handed, -1 after a reflection."""
    c = torch.linalg.det(axes.to(torch.float64)).sign().to(axes.dtype)
    return torch.where(c == 0, torch.ones_like(c), c)


def scene_centre(positions: torch.Tensor) -> torch.Tensor:
    """The centre a model subtracts from a scene (GATr always, the transformer with ``centre=True``): the mean
    body position, by :meth:`algebras.geometry3d.Euclidean3DAlgebra.center` (the one centring).

    Parameters
    ----------
    positions : Tensor, shape (B, N, 3)
        The bodies' positions.

    Returns
    -------
    Tensor, shape (B, 1, 3)
        Their mean; it moves with the scene, so subtracting it is translation-equivariant.
    """
    return Euclidean3DAlgebra.center(positions, dim=-2)[1]


#: keypoints of the input state: centre and centre + axes[j] * sizes[j], ``(..., N, 4, 3)``
input_keypoints = no_motion_keypoints


def free_flight_keypoints(batch: dict) -> torch.Tensor:
    """The batch's ``ballistic_keypoints`` ``(..., N, 4, 3)``, or a clear error if it has none."""
    kp = batch.get("ballistic_keypoints")
    if kp is None:
        raise KeyError("the batch has no 'ballistic_keypoints' (the free-flight prediction the models correct); "
                       "the datasets add them, or compute them with experiments.rigid_body.ballistic."
                       "ballistic_keypoints(batch, horizon_seconds)")
    return kp.to(batch["positions"].dtype)


def reference_keypoints(batch: dict, residual: str) -> torch.Tensor:
    """What a model's output corrects: free-flight keypoints ("ballistic") or the input ones ("keypoints")."""
    if residual == "ballistic":
        return free_flight_keypoints(batch)
    if residual == "keypoints":
        return input_keypoints(batch)
    raise ValueError(f"unknown residual {residual!r}; valid: {list(RESIDUALS)}")


@lru_cache(maxsize=None)
def _weight_functional(alg) -> tuple | None:
    """Cached ``phi`` (as a tuple, float64) or None; see :func:`point_weight_functional`."""
    gen = torch.Generator().manual_seed(0)
    p = torch.randn(64, 3, generator=gen, dtype=torch.float64)
    points = alg.embed_point(p)  # (64, dim)
    ones = torch.ones(64, 1, dtype=torch.float64)
    phi = torch.linalg.lstsq(points, ones, driver="gelsd").solution[:, 0]  # min-norm solution
    phi = torch.where(phi.abs() < 1e-10, torch.zeros_like(phi), phi)  # clean round-off
    if (points @ phi - 1).abs().max() > 1e-8:
        return None  # e.g. G(3,0,0): points are plain vectors, no homogeneous weight
    # phi must be equivariant up to the point parity: phi(rho_u x) = s(u) phi(x).
    parity = alg.embedding_parity.get("point", 1)
    u = alg.random_versors(8, generator=1, dtype=torch.float64)
    x = torch.randn(8, alg.dim, generator=gen, dtype=torch.float64)
    odd = alg.parity(u).to(torch.float64)  # 1 for odd versors
    sign = torch.where((odd > 0.5) & (parity == -1), -1.0, 1.0).to(torch.float64)
    if (alg.act(u, x) @ phi - sign * (x @ phi)).abs().max() > 1e-8:
        return None
    return tuple(phi.tolist())


def point_weight_functional(algebra) -> torch.Tensor | None:
    """Linear functional ``phi (dim,)`` with ``phi(embed_point(p)) == 1`` that transforms like the
    points (invariant, or times ``det g`` for parity -1 points); None if the backend has none."""
    phi = _weight_functional(get_algebra(algebra))
    return None if phi is None else torch.tensor(phi, dtype=torch.float64)


@dataclass
class EmbeddedBodies:
    mv: torch.Tensor  # (B, N, C_in, dim)
    scalars: torch.Tensor  # (B, N, S_in)
    reference: torch.Tensor  # (B, N, 4, dim): embedded reference keypoints (times c where parity is -1)
    handedness: torch.Tensor  # (B, N)
    centre: torch.Tensor  # (B, 1, 3): the scene centre subtracted before embedding
    length_unit: torch.Tensor | float = 1.0  # positions and velocities are embedded in this unit [m]


class BodyEmbedding:
    """Embedding of rigid-body states into an algebra and the keypoint read-out (see module doc)."""

    num_mv_channels = len(MV_CHANNELS)
    num_scalar_channels = len(SCALAR_FEATURES)
    num_out_channels = OUT_CHANNELS

    def __init__(self, algebra, residual: str = "ballistic"):
        if residual not in RESIDUALS:
            raise ValueError(f"unknown residual {residual!r}; valid: {list(RESIDUALS)}")
        self.residual = residual
        self.algebra = get_algebra(algebra)
        check_rigid_body_algebra(self.algebra)
        self.parity = {k: int(self.algebra.embedding_parity.get(k, 1)) for k in ("point", "direction", "axial_vector")}
        phi = point_weight_functional(self.algebra)
        self._phi = phi

    # ------------------------------------------------------------------ inputs
    def _signed(self, mv: torch.Tensor, kind: str, c: torch.Tensor) -> torch.Tensor:
        """Multiply parity -1 embeddings by the handedness ``c`` (so they transform by rho_u)."""
        if self.parity[kind] == -1:
            return mv * c.reshape(*c.shape, *([1] * (mv.dim() - c.dim())))
        return mv

    def embed(self, batch: dict, length_unit: torch.Tensor | float = 1.0) -> EmbeddedBodies:
        """The network's inputs; centred positions and velocities are embedded in units of ``length_unit`` [m]
        (a positive constant: dividing by it commutes with E(3), so the predictor stays equivariant)."""
        alg = self.algebra
        positions, axes = batch["positions"], batch["axes"]
        dtype = positions.dtype
        velocity, omega = batch["velocity"].to(dtype), batch["angular_velocity"].to(dtype)
        sizes, mass = batch["sizes"].to(dtype), batch["mass"].to(dtype)
        c = handedness(axes)  # (B, N)

        keypoints = torch.cat([input_keypoints(batch), free_flight_keypoints(batch)], -2)  # (B, N, 8, 3)
        centre = scene_centre(positions)  # (B, 1, 3): moves with the scene (see the module doc)
        keypoints = (keypoints - centre.unsqueeze(-2)) / length_unit

        points = self._signed(alg.embed_point(keypoints), "point", c)  # (B, N, 8, dim)
        directions = torch.cat([axes, (velocity / length_unit).unsqueeze(-2)], -2)  # (B, N, 4, 3)
        directions = self._signed(alg.embed_direction(directions), "direction", c)
        spin = self._signed(alg.embed_axial_vector(omega).unsqueeze(-2), "axial_vector", c)
        mv = torch.cat([points[..., :4, :], directions, spin, points[..., 4:, :]], -2)  # (B, N, 13, dim)
        reference = points[..., 4:, :] if self.residual == "ballistic" else points[..., :4, :]

        shape = torch.nn.functional.one_hot(batch["shape"].long(), NUM_SHAPES).to(dtype)
        v_dot_a = (axes * velocity.unsqueeze(-2)).sum(-1)
        w_dot_a = (axes * omega.unsqueeze(-2)).sum(-1) * c.unsqueeze(-1)  # pseudoscalar * c: invariant
        scalars = torch.cat([
            sizes, torch.log(mass.clamp_min(1e-12)).unsqueeze(-1), shape,
            velocity.norm(dim=-1, keepdim=True), omega.norm(dim=-1, keepdim=True), v_dot_a, w_dot_a,
        ], -1)
        return EmbeddedBodies(mv=mv, scalars=scalars, reference=reference, handedness=c, centre=centre,
                              length_unit=length_unit)

    # ------------------------------------------------------------------ outputs
    def readout(self, out_mv: torch.Tensor, emb: EmbeddedBodies, gate: torch.Tensor | float = 1.0) -> torch.Tensor:
        """Keypoints ``(B, N, 4, 3)`` from the network's 4 output channels ``(B, N, 4, dim)``.

        ``gate`` scales the displacement in metres; it is applied in the embedding's ``length_unit`` and the
        keypoints are returned in metres."""
        alg = self.algebra
        ref = emb.reference
        unit = emb.length_unit
        gate = gate / unit
        y = out_mv
        if self._phi is not None:
            phi = self._phi.to(dtype=y.dtype, device=y.device)
            weight = y @ phi  # (B, N, 4)
            if self.parity["point"] == -1:
                weight = weight * emb.handedness.unsqueeze(-1)  # c phi(Y): invariant
            y = y - weight.unsqueeze(-1) * ref  # weight-0 displacement, transforms by rho_u
        return alg.extract_point(ref + gate * y) * unit + emb.centre.unsqueeze(-2)
