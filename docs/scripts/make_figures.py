"""Figures of the mathematics page (docs/mathematics.md), computed from the algebra backends.

    python docs/scripts/make_figures.py          # from the repository root; writes docs/figures/*.png

1. ``pga_equivariant_maps.png``: the 9 linear maps of G(3,0,1) that commute with E(3), as the solver
   derives them (``get_algebra("projective").linear_basis``), rows and columns in blade order.
2. ``pga_product_table.png``: the geometric product ``e_A e_B = s e_C`` of G(3,0,1), blade order on
   both axes, colour = the sign ``s`` (0 where a degenerate e_0 squares away).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from algebras import get_algebra  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "figures"
GRADE_NAMES = ("scalar", "vector", "bivector", "trivector", "pseudoscalar")


def _blade_ticks(ax, alg, labels: bool = True) -> None:
    ticks = range(alg.dim)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    names = alg.blade_names if labels else [""] * alg.dim
    ax.set_xticklabels(names, rotation=90, fontsize=6)
    ax.set_yticklabels(names, fontsize=6)
    edges = np.flatnonzero(np.diff(alg.grades)) + 0.5  # grade boundaries
    for e in edges:
        ax.axhline(e, color="0.6", lw=0.5)
        ax.axvline(e, color="0.6", lw=0.5)


def equivariant_maps(path: Path) -> None:
    alg = get_algebra("projective")
    basis = alg.linear_basis.numpy()
    blocks = alg.linear_basis_blocks
    fig, axes = plt.subplots(3, 3, figsize=(9, 9.6), constrained_layout=True)
    for m, ax in enumerate(axes.flat):
        ax.imshow(basis[m], cmap="RdBu_r", vmin=-1, vmax=1)
        _blade_ticks(ax, alg, labels=m % 3 == 0 or m >= 6)
        if m % 3:
            ax.set_yticklabels([])
        if m < 6:
            ax.set_xticklabels([])
        g_in, g_out = blocks[m]
        ax.set_title(f"map {m}: {GRADE_NAMES[g_in]} -> {GRADE_NAMES[g_out]}", fontsize=8)
    fig.suptitle("The 9 equivariant linear maps of G(3,0,1) under E(3), derived by the solver\n"
                 "(y = L x; rows: output blade, columns: input blade; red +1, blue -1)", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def product_table(path: Path) -> None:
    alg = get_algebra("projective")
    table = alg.tensors("cpu", torch.float64).geometric.numpy()  # (i, j, k): e_i e_j = sum_k T e_k
    sign = table.sum(-1)
    target = np.abs(table).argmax(-1)
    fig, ax = plt.subplots(figsize=(6.4, 6), constrained_layout=True)
    ax.imshow(sign, cmap="RdBu_r", vmin=-1.5, vmax=1.5)
    for i in range(alg.dim):
        for j in range(alg.dim):
            if sign[i, j]:
                ax.text(j, i, alg.blade_names[target[i, j]], ha="center", va="center", fontsize=4.5)
    _blade_ticks(ax, alg)
    ax.set_xlabel("right factor e_B")
    ax.set_ylabel("left factor e_A")
    ax.set_title("Geometric product e_A e_B of G(3,0,1) in blade order\n(red +, blue -, white 0: e_0 e_0 = 0)",
                 fontsize=9)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    equivariant_maps(OUT / "pga_equivariant_maps.png")
    product_table(OUT / "pga_product_table.png")
    for p in sorted(OUT.glob("*.png")):
        print(f"wrote {p} ({p.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
