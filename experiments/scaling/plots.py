"""Scaling plots (matplotlib, Agg backend, PNG files), drawn from the analysis dict.

Every loss plot shows the closed-form references as lines: ballistic (free flight) and no motion.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .fit import PowerLawFit


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _colors(names: list[str]) -> dict[str, tuple]:
    cmap = _plt().get_cmap("tab10")
    return {n: cmap(i % 10) for i, n in enumerate(names)}


def _references(ax, analysis: dict, contact: bool = False, relative: bool = False) -> None:
    """Horizontal lines for the ballistic and no-motion predictors."""
    suffix = "_contact" if contact else ""
    b, nm = analysis.get(f"ballistic_mse{suffix}"), analysis.get(f"no_motion_mse{suffix}")
    if b is None:
        return
    ax.axhline(1.0 if relative else b, color="k", ls="--", lw=1.2, label="ballistic (free flight)")
    if nm is not None:
        ax.axhline(nm / b if relative else nm, color="0.5", ls=":", lw=1.2, label="no motion")


def _finish(plt, fig, ax, path: Path, xlabel: str, ylabel: str, title: str, logx: bool = True) -> Path:
    if logx:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _main_configs(fa: dict) -> list[dict]:
    sel = fa.get("selected") or {}
    configs = fa["configs"]
    if not configs:
        return []
    counts: dict = {}
    for c in configs:
        counts[c["ntraj"]] = counts.get(c["ntraj"], 0) + c["n_seeds"]
    main = max(counts, key=lambda n: (counts[n], n)) if sel else configs[0]["ntraj"]
    return sorted((c for c in configs if c["ntraj"] == main), key=lambda c: c["train_flops"])


def plot_vs_compute(analysis: dict, path: Path, contact: bool = False) -> Path:
    """Seed-mean test loss of every config vs training compute; frontier fits; budgets; references."""
    plt = _plt()
    fams = analysis["families"]
    colors = _colors(sorted(fams))
    fig, ax = plt.subplots(figsize=(7.5, 5))
    base = analysis.get("ballistic_mse_contact") if contact else None
    key = "test_contact_loss" if contact else "test_loss"
    for name in sorted(fams):
        fa, col = fams[name], colors[name]
        cs = [c for c in _main_configs(fa) if c.get(key) is not None and math.isfinite(c[key])]
        if not cs or (contact and not base):
            continue
        x = np.array([c["train_flops"] for c in cs])
        y = np.array([c[key] for c in cs]) / (base if contact else 1.0)
        ax.plot(x, y, "o", color=col, ms=5, label=name)
        fit = (fa["scaling"] or {}).get("fit")
        if fit and not contact and math.isfinite(fit.get("alpha", math.nan)):
            front = [c for c in cs if c["config"] in fa["scaling"]["frontier"]]
            if len(front) >= 2:
                xs = np.geomspace(front[0]["train_flops"], front[-1]["train_flops"], 50)
                ax.plot(xs, PowerLawFit(**fit).predict(xs), "-", color=col, lw=1.3)
        elif contact and len(cs) > 1:
            ax.plot(x, y, "-", color=col, lw=0.8, alpha=0.6)
    for b in analysis["compute_matched"]["budgets"]:
        ax.axvline(b, color="0.7", ls="-.", lw=0.8)
    _references(ax, analysis, contact=contact, relative=contact)
    if contact:
        return _finish(plt, fig, ax, path, "training compute (nominal FLOPs)",
                       "contact-window loss / ballistic", "Contact windows relative to free flight "
                       "(seed means; dash-dot: headline budgets)")
    return _finish(plt, fig, ax, path, "training compute (nominal FLOPs)", "test loss (mean squared distance, m²)",
                   "Test loss vs compute: seed means (dots), frontier fits (lines), headline budgets (dash-dot)")


def plot_loss_vs_data(analysis: dict, path: Path) -> Path:
    """Contact-window loss relative to ballistic vs training-set size (68% intervals)."""
    plt = _plt()
    fams = {f: fa["data_efficiency"] for f, fa in analysis["families"].items() if len(fa["data_efficiency"]) > 1}
    colors = _colors(sorted(analysis["families"]))
    fig, ax = plt.subplots(figsize=(7, 5))
    for name, rows in sorted(fams.items()):
        rows = [r for r in rows if r.get("rel_ballistic_contact") is not None]
        if not rows:
            continue
        n = np.array([r["train_trajectories"] for r in rows])
        y = np.array([r["rel_ballistic_contact"] for r in rows])
        lo = np.array([r["rel_ballistic_contact_interval"]["ci68"][0] for r in rows])
        hi = np.array([r["rel_ballistic_contact_interval"]["ci68"][1] for r in rows])
        ax.errorbar(n, y, yerr=[np.maximum(y - lo, 0), np.maximum(hi - y, 0)], fmt="o-", color=colors[name],
                    capsize=3, label=name)
    _references(ax, analysis, contact=True, relative=True)
    return _finish(plt, fig, ax, path, "training trajectories", "contact-window loss / ballistic",
                   "Data efficiency (config selected by validation loss per size; 68% intervals)")


def plot_symmetry(analysis: dict, path: Path) -> Path:
    """Selected config's test loss: plain, E(3), rotations/reflections only, translations only."""
    plt = _plt()
    fams = {f: fa["selected"] for f, fa in analysis["families"].items() if fa["selected"]}
    names = sorted(fams)
    keys = (("test_loss", "plain"), ("test_e3_loss", "E(3)"), ("test_rotation_loss", "rotations+reflections"),
            ("test_translation_loss", "translations"))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names) + 2), 4.5))
    x = np.arange(len(names))
    for k, (key, label) in enumerate(keys):
        vals = [fams[n].get(key) if fams[n].get(key) is not None else math.nan for n in names]
        ax.bar(x + (k - 1.5) * 0.2, vals, 0.2, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha="right")
    _references(ax, analysis)
    return _finish(plt, fig, ax, path, "", "test loss (selected config)",
                   "Plain vs transformed test sets: which symmetry each model lacks", logx=False)


PLOTS = {"loss_vs_compute": "loss_vs_compute.png", "contact_vs_compute": "contact_vs_compute.png",
         "loss_vs_data": "loss_vs_data.png", "symmetry": "symmetry.png"}


def make_plots(results: list[dict], analysis: dict, out_dir: Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        "loss_vs_compute": plot_vs_compute(analysis, out_dir / PLOTS["loss_vs_compute"]),
        "contact_vs_compute": plot_vs_compute(analysis, out_dir / PLOTS["contact_vs_compute"], contact=True),
        "loss_vs_data": plot_loss_vs_data(analysis, out_dir / PLOTS["loss_vs_data"]),
        "symmetry": plot_symmetry(analysis, out_dir / PLOTS["symmetry"]),
    }
