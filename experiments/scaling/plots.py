"""Scaling plots (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .fit import PowerLawFit, family_of, main_grid_ntraj, ok_results


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _colors(names: list[str]) -> dict[str, tuple]:
    plt = _plt()
    cmap = plt.get_cmap("tab10")
    return {n: cmap(i % 10) for i, n in enumerate(names)}


def _group(results: list[dict]) -> dict[str, list[dict]]:
    fams: dict[str, list[dict]] = {}
    for r in ok_results(results):
        fams.setdefault(family_of(r), []).append(r)
    return dict(sorted(fams.items()))


def _fit_from(d: dict) -> PowerLawFit | None:
    f = d.get("fit") or {}
    if not f or f.get("method") == "insufficient" or not math.isfinite(f.get("alpha", math.nan)):
        return None
    return PowerLawFit(**f)


def _finish_loglog(plt, fig, ax, path: Path, xlabel: str, ylabel: str, title: str) -> Path:
    """Log-log axes, labels, grid and legend; save the figure to ``path`` and close it."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_loss_vs_compute(results: list[dict], analysis: dict, path: Path) -> Path:
    plt = _plt()
    fams = _group(results)
    colors = _colors(list(fams))
    fig, ax = plt.subplots(figsize=(7, 5))
    for name, runs in fams.items():
        col = colors[name]
        c = np.array([r["train_flops"] for r in runs])
        l_ = np.array([r["test_loss"] for r in runs])
        ax.scatter(c, l_, color=col, alpha=0.25, s=14)
        fa = analysis["families"].get(name, {})
        ids = set(fa.get("frontier", []))
        fr = sorted((r for r in runs if r["run_id"] in ids), key=lambda r: r["train_flops"])
        if fr:
            ax.plot([r["train_flops"] for r in fr], [r["test_loss"] for r in fr], "o", color=col, ms=5)
        fit = _fit_from(fa)
        label = name
        if fit is not None and fr:
            xs = np.geomspace(min(c), max(c), 100)
            ax.plot(xs, fit.predict(xs), "-", color=col, lw=1.5)
            boot = fa.get("alpha_boot", {})
            lo, hi = boot.get("ci68", [math.nan, math.nan])
            label = f"{name}: α={fit.alpha:.2f}" + (f" [{lo:.2f}, {hi:.2f}]" if math.isfinite(lo) else "")
        ax.plot([], [], "o-", color=col, label=label)
    return _finish_loglog(plt, fig, ax, path, "training compute (nominal FLOPs)",
                          "test loss (mean squared distance, m²)",
                          "Loss vs compute: all runs (faint), frontier (dots), fits (lines)")


def plot_loss_vs_params(results: list[dict], analysis: dict, path: Path) -> Path:
    """Best test loss per model size (at the main training-set size) against parameter count."""
    plt = _plt()
    fams = _group(results)
    colors = _colors(list(fams))
    fig, ax = plt.subplots(figsize=(7, 5))
    for name, runs in fams.items():
        col = colors[name]
        ax.scatter([r["params"] for r in runs], [r["test_loss"] for r in runs], color=col, alpha=0.25, s=14)
        nt = main_grid_ntraj(runs)
        best: dict[int, float] = {}
        for r in runs:
            if r["spec"]["train_trajectories"] == nt:
                p = int(r["params"])
                best[p] = min(best.get(p, math.inf), r["test_loss"])
        ps = sorted(best)
        ax.plot(ps, [best[p] for p in ps], "o-", color=col, label=name)
    return _finish_loglog(plt, fig, ax, path, "parameters", "test loss", "Loss vs model size (line: best over steps)")


def plot_loss_vs_data(analysis: dict, path: Path) -> Path:
    """Data efficiency: plain (solid) and E(3)-transformed (dashed) test loss vs training-set size."""
    plt = _plt()
    eff = analysis.get("data_efficiency", {})
    colors = _colors(sorted(eff))
    fig, ax = plt.subplots(figsize=(7, 5))
    for name in sorted(eff):
        rows = eff[name]
        if not rows:
            continue
        n = [r["train_trajectories"] for r in rows]
        ax.plot(n, [r["test_loss"] for r in rows], "o-", color=colors[name], label=f"{name}")
        e3 = [r.get("test_e3_loss") for r in rows]
        if all(v is not None for v in e3):
            ax.plot(n, e3, "x--", color=colors[name], alpha=0.8)
    ax.plot([], [], "k-", label="plain test")
    ax.plot([], [], "k--", label="E(3)-transformed test")
    return _finish_loglog(plt, fig, ax, path, "training trajectories", "test loss",
                          "Data efficiency (run selected by validation loss per data size)")


def plot_e3(analysis: dict, path: Path) -> Path:
    """Plain vs E(3)-transformed test loss of each family's best run (grouped bars, log scale)."""
    plt = _plt()
    fams = analysis.get("families", {})
    names = sorted(fams)
    plain = [fams[n]["best"].get("test_loss") or math.nan for n in names]
    e3 = [fams[n]["best"].get("test_e3_loss") or math.nan for n in names]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names) + 2), 4.5))
    x = np.arange(len(names))
    ax.bar(x - 0.2, plain, 0.4, label="plain test")
    ax.bar(x + 0.2, e3, 0.4, label="E(3)-transformed test")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("test loss (best run)")
    ax.set_title("Equivariance check: plain vs E(3)-transformed test loss")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


PLOTS = {
    "loss_vs_compute": "loss_vs_compute.png",
    "loss_vs_params": "loss_vs_params.png",
    "loss_vs_data": "loss_vs_data.png",
    "plain_vs_e3": "plain_vs_e3.png",
}


def make_plots(results: list[dict], analysis: dict, out_dir: Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        "loss_vs_compute": plot_loss_vs_compute(results, analysis, out_dir / PLOTS["loss_vs_compute"]),
        "loss_vs_params": plot_loss_vs_params(results, analysis, out_dir / PLOTS["loss_vs_params"]),
        "loss_vs_data": plot_loss_vs_data(analysis, out_dir / PLOTS["loss_vs_data"]),
        "plain_vs_e3": plot_e3(analysis, out_dir / PLOTS["plain_vs_e3"]),
    }
