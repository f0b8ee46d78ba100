"""Numerical diagnostics: equivariance error of GATr vs depth.

    python -m gatr.diagnostics            # float32, 1 / 4 / 16 blocks, every registered algebra
"""

from __future__ import annotations

import torch

from algebras import get_algebra

from .nets import GATr


def act_on(alg, versors: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply one group element per leading index: ``rho_{u_n}(x[n, ...])``.

    The action matrices are built in float64 (:meth:`~algebras.CliffordAlgebra.act_matrix`), then
    cast to ``x``'s dtype.

    Parameters
    ----------
    alg : CliffordAlgebra
        The algebra.
    versors : Tensor, shape (n, dim)
        Group elements.
    x : Tensor, shape (n, ..., dim)
        Multivectors; ``x[i]`` is acted on by ``versors[i]``.

    Returns
    -------
    Tensor, shape (n, ..., dim)
    """
    matrices = alg.act_matrix(versors.to(torch.float64)).to(x.dtype)  # (n, dim, dim)
    return torch.einsum("nab,n...b->n...a", matrices, x)


def reference_pseudoscalar(alg, batch: int, dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    """A random reference ``(batch, 1, 1, dim)`` with a non-zero pseudoscalar (for the PGA join).

    Normal entries with standard deviation 0.3, plus 1 on the pseudoscalar.

    Parameters
    ----------
    alg : CliffordAlgebra
        The algebra (only ``dim`` is read).
    batch : int
        Leading size.
    dtype : torch.dtype
        Dtype of the result.
    seed : int
        Seed of the generator.

    Returns
    -------
    Tensor, shape (batch, 1, 1, dim)
    """
    g = torch.Generator().manual_seed(seed)
    ref = 0.3 * torch.randn(batch, 1, 1, alg.dim, generator=g, dtype=dtype)
    ref[..., -1] += 1.0
    return ref


@torch.no_grad()
def equivariance_error(algebra, num_blocks: int, dtype=torch.float32, items: int = 8, batch: int = 4,
                       seed: int = 0) -> float:
    """Relative equivariance error ``|f(u.x) - u.f(x)| / |f(x)|`` (max over entries) of a random GATr.

    A GATr with 2 multivector and 2 scalar channels in and out, 8 hidden of each, 2 heads, run in
    ``dtype`` on random inputs, a random :func:`reference_pseudoscalar` and random group elements of
    both parities; the transformed output is compared in float64.

    Parameters
    ----------
    algebra : str or CliffordAlgebra
        A registered name or an algebra.
    num_blocks : int
        Depth of the network.
    dtype : torch.dtype
        Dtype of the network and its inputs.
    items, batch : int
        Input size ``(batch, items, 2, dim)``.
    seed : int
        Seed of the weights, inputs and group elements.

    Returns
    -------
    float
        The larger of the multivector error and the scalar outputs' invariance error, each relative
        to the largest output entry.
    """
    alg = get_algebra(algebra)
    torch.manual_seed(seed)
    net = GATr(alg, 2, 2, 8, 2, 2, 8, num_blocks=num_blocks, num_heads=2).to(dtype)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch, items, 2, alg.dim, generator=g).to(dtype)
    s = torch.randn(batch, items, 2, generator=g).to(dtype)
    ref = reference_pseudoscalar(alg, batch, dtype, seed)
    u = alg.random_versors(batch, generator=seed)
    y, ys = net(x, s, reference_mv=ref)
    y2, ys2 = net(act_on(alg, u, x), s, reference_mv=act_on(alg, u, ref))
    y_t = act_on(alg, u, y.to(torch.float64))
    err_mv = (y_t - y2.double()).abs().max() / y.double().abs().max()
    err_s = (ys.double() - ys2.double()).abs().max() / ys.double().abs().max()
    return float(max(err_mv, err_s))


def print_equivariance_vs_depth(algebras=None, depths=(1, 4, 16), dtype=torch.float32):
    """Print a table of :func:`equivariance_error` per algebra (rows) and depth (columns).

    What ``python -m gatr.diagnostics`` runs.

    Parameters
    ----------
    algebras : iterable of str, optional
        Names; default every registered algebra (plug-ins included).
    depths : iterable of int
        Numbers of blocks.
    dtype : torch.dtype
        Dtype of the networks.

    Returns
    -------
    None
    """
    from algebras import available_algebras

    algebras = algebras or available_algebras()
    print(f"relative equivariance error ({dtype}), max over entries, random versors of both parities")
    print(f"{'algebra':<22}" + "".join(f"{d:>12d}" for d in depths) + "  (blocks)")
    for name in algebras:
        print(f"{name:<22}" + "".join(f"{equivariance_error(name, d, dtype):>12.2e}" for d in depths))


if __name__ == "__main__":
    torch.set_num_threads(2)
    print_equivariance_vs_depth()
