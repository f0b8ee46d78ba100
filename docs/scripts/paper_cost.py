"""What the `paper` preset costs, extrapolated from the per-step times the `standard` study measured.

    python docs/scripts/paper_cost.py [docs/results/standard]

Per model family, the measured seconds per optimiser step of the standard study's runs (a dedicated
run's training seconds / steps, on the machine that ran it) are fitted as ``t = a + b * FLOPs per
step`` (a fixed per-step overhead plus a throughput), and the fit prices every trunk and cooldown of
the paper grid (WSD branches: the steps actually trained). Families the standard study did not run
borrow the fit of the closest one (named in the output): GATr on other algebras that of GATr-iPGA,
the MLP that of the transformer. It is an extrapolation to 4-60x larger models on the same CPU, not
a measurement, and says nothing about a GPU.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from experiments.scaling.grid import estimate_flops, load_config, pilot_key
from experiments.scaling.execution import optimiser_steps, trunk_groups

BORROW = {"gatr": "gatr-ipga", "transformer": "transformer-centred", "mlp": "transformer-centred"}


def per_step_fits(results_dir: Path) -> dict:
    """``{family name: (a, b, points)}`` from the study's result files (seconds per step vs FLOPs per step)."""
    points: dict = {}
    for f in sorted((results_dir / "runs").glob("*/result.json")):
        r = json.loads(f.read_text())
        if r.get("status") != "ok" or not r.get("train_time_s"):
            continue
        points.setdefault(r["spec"]["name"], []).append((r["flops_per_step"], r["train_time_s"] / r["steps"]))
    fits = {}
    for name, pts in points.items():
        x, y = np.array(pts).T
        if len(set(x)) >= 2:
            b, a = np.polyfit(x, y, 1)
        else:
            a, b = float(np.mean(y)), 0.0
        fits[name] = (max(float(a), 0.0), max(float(b), 0.0), len(pts))
    return fits


def main(results_dir: str = "docs/results/standard") -> None:
    fits = per_step_fits(Path(results_dir))
    cfg = load_config(preset="paper")
    lrs = {pilot_key(f["name"], z["width"], z["depth"]): 1e-3 for f, z in cfg.pilot_sizes()}
    specs = cfg.expand(lrs)
    pilot = [cfg.pilot_spec(f, z, lr) for f, z in cfg.pilot_sizes() for lr in cfg.pilot_grid(f)]
    total_s, rows = 0.0, []
    for fam in cfg.families:
        mine = [s for s in specs if s["name"] == fam["name"]] + [s for s in pilot if s["name"] == fam["name"]]
        source = fam["name"] if fam["name"] in fits else BORROW[fam["family"]]
        a, b, _ = fits[source]
        groups = trunk_groups(mine)  # runs sharing a WSD trunk
        seconds = sum(optimiser_steps(g)[1] * (a + b * estimate_flops({**g[0], "steps": 1})) for g in groups)
        trained = sum(optimiser_steps(g)[1] for g in groups)
        total_s += seconds
        rows.append((fam["name"], source, trained, sum(estimate_flops(s) for s in mine), seconds))
    print(f"{'family':22s} {'time fit from':22s} {'steps trained':>14s} {'nominal FLOPs':>14s} {'CPU core-hours':>15s}")
    for name, source, steps, flops, sec in rows:
        print(f"{name:22s} {source:22s} {steps:14,d} {flops:14.3g} {sec / 3600:15.1f}")
    print(f"{'total':45s} {sum(r[2] for r in rows):14,d} {sum(r[3] for r in rows):14.3g} {total_s / 3600:15.1f}")
    print("per-step fits (s = a + b * FLOPs/step):",
          {k: f"a={v[0] * 1e3:.1f} ms, b={v[1] * 1e12:.2f} s/TFLOP, {v[2]} runs" for k, v in fits.items()})


if __name__ == "__main__":
    main(*sys.argv[1:])
