"""Helpers shared by the gatr tests."""

import torch

from algebras import available_algebras
from gatr.diagnostics import act_on, reference_pseudoscalar

#: every registered algebra, installed plug-ins included (the shared fixture of the network tests)
ALGEBRAS = available_algebras()


def randn(*shape, dtype=torch.float64):
    return torch.randn(*shape, dtype=dtype)


def assert_equivariant(alg, f, mv_inputs, other_inputs=(), rtol=1e-12, n=4, transform_reference=None):
    """``f(rho_u(mv), ...) == rho_u(f(mv, ...))`` for n random versors (both parities), batch axis first.

    ``f`` returns (mv, scalars); scalars must be invariant. ``transform_reference`` = index into
    ``other_inputs`` of a reference multivector that must be transformed too.
    """
    u = alg.random_versors(n, generator=7)
    mv_out, s_out = f(*mv_inputs, *other_inputs)
    moved = [act_on(alg, u, x) for x in mv_inputs]
    other = list(other_inputs)
    if transform_reference is not None:
        other[transform_reference] = act_on(alg, u, other[transform_reference])
    mv_out2, s_out2 = f(*moved, *other)
    scale = mv_out.detach().abs().max()
    torch.testing.assert_close(act_on(alg, u, mv_out), mv_out2, rtol=0, atol=float(rtol * scale))
    if s_out is not None and s_out.numel():
        torch.testing.assert_close(s_out, s_out2, rtol=0, atol=float(rtol * s_out.detach().abs().max()))
    return mv_out, s_out


__all__ = ["ALGEBRAS", "act_on", "assert_equivariant", "randn", "reference_pseudoscalar"]
