"""A study's summary: selected configs, compute-matched headline, algebra comparisons, data
efficiency and the scaling paper's three findings, each with a verdict read off its interval.

Built on :mod:`experiments.scaling.analysis` (selection on validation, bootstrap over seeds and test
trajectories).
"""

from __future__ import annotations

import math

import numpy as np

from .allocation import iso_flop
from .analysis import (StudyData, _loss, compute_matched, frontier_fit, load_study, ratio_interval,
                       selected_config, selected_scores)
from .efficiency import data_efficiency_gap

__all__ = ["analyze_results", "data_efficiency"]


def data_efficiency(study: StudyData, family: str, n_boot: int = 500, seed: int = 0) -> list[dict]:
    """Per training-set size: the config selected by validation loss, its test scores and intervals."""
    by_n: dict = {}
    for c in study.configs[family]:
        by_n.setdefault(c.ntraj, []).append(c)
    rows = []
    for n in sorted(by_n):
        cfg = selected_config(by_n[n])
        if cfg is not None:
            rows.append({"train_trajectories": n, "epochs": cfg.mean("epochs"),
                         **selected_scores(study, cfg, n_boot, seed)})
    return rows


def _is_equivariant(meta: dict) -> bool:
    return meta.get("family") == "gatr"


def _verdict(ratio: dict, better_means: str) -> str:
    """'supported' if the 95% interval of the ratio lies below 1, 'contradicted' above 1, else 'not resolved'."""
    lo, hi = ratio.get("ci95", [math.nan, math.nan])
    if not math.isfinite(lo):
        return "not resolved"
    if hi < 1:
        return "supported" if better_means == "below" else "contradicted"
    if lo > 1:
        return "contradicted" if better_means == "below" else "supported"
    return "not resolved"


def analyze_results(results: list[dict], n_boot: int = 500, seed: int = 0) -> dict:
    """Full analysis of a study's result records (JSON-ready)."""
    study = load_study(results)
    failed = [r for r in results if r.get("status") != "ok"]
    ok_ids = {r["run_id"] for c in study.configs.values() for cfg in c for r in cfg.runs}
    unusable = [{"run_id": r.get("run_id"), "test_loss": r.get("test_loss"), "train_flops": r.get("train_flops")}
                for r in results if r.get("status") == "ok" and r.get("run_id") not in ok_ids]
    ts = study.test_set
    out = {"n_results": len(results), "n_ok": len(ok_ids), "unusable": unusable,
           "failed": [{"run_id": r.get("run_id"), "error_type": r.get("error_type"),
                       "error_message": r.get("error_message")} for r in failed],
           "family_meta": study.meta, "n_boot": n_boot}
    if ts is not None:
        out["ballistic_mse"] = ts.loss("ballistic")
        out["no_motion_mse"] = ts.loss("no_motion")
        out["ballistic_mse_contact"] = ts.loss("ballistic", None, True)
        out["no_motion_mse_contact"] = ts.loss("no_motion", None, True)
        out["ballistic_mse_free"] = _loss({**ts.references["ballistic"],
                                           "sse_contact": ts.references["ballistic"]["sse_free"],
                                           "n_contact": ts.references["ballistic"]["n_free"]}, None, True)
        n_c = ts.references["ballistic"]["n_contact"].sum()
        out["test_windows"] = int(n_c + ts.references["ballistic"]["n_free"].sum())
        out["test_contact_windows"] = int(n_c)
        out["test_trajectories"] = int(len(ts.trajectory))
    else:
        out["ballistic_mse"] = out["no_motion_mse"] = None
    families = {}
    for fam in sorted(study.configs):
        sel = selected_config(study.grid(fam))
        scores = selected_scores(study, sel, n_boot, seed) if sel is not None else {}
        families[fam] = {
            **study.meta[fam], "n_seeds": scores.get("n_seeds", 0), "selected": scores,
            "rel_ballistic": scores.get("rel_ballistic"), "rel_ballistic_contact": scores.get("rel_ballistic_contact"),
            "rel_ballistic_interval": scores.get("rel_ballistic_interval"),
            "rel_ballistic_contact_interval": scores.get("rel_ballistic_contact_interval"),
            "configs": [{"config": c.label, "train_flops": c.compute, "params": c.params, "n_seeds": c.n_seeds,
                         "val_loss": float(np.nanmean(c.val)), "test_loss": float(np.nanmean(c.test)),
                         "test_contact_loss": c.mean("test_contact_loss"), "ntraj": c.ntraj, "steps": c.steps,
                         "width": c.width, "depth": c.depth}
                        for c in sorted(study.configs[fam], key=lambda c: (c.ntraj, c.compute))],
            "scaling": frontier_fit(study, fam, n_boot, seed),
            "iso_flop": iso_flop(study, fam, n_boot, seed),
            "data_efficiency": data_efficiency(study, fam, n_boot, seed),
        }
    out["families"] = families
    cm = compute_matched(study, n_boot, seed, max_budgets=3)
    samples = cm.pop("samples")
    out["compute_matched"] = cm
    tm = compute_matched(study, n_boot, seed, max_budgets=3, axis="seconds")
    samples_time = tm.pop("samples")
    out["time_matched"] = tm
    out["comparisons"] = _comparisons(study, cm, samples)
    out["findings"] = _findings(study, out, samples, samples_time, n_boot, seed)
    out["hardware"] = hardware(results)
    return out


def hardware(results: list[dict]) -> dict:
    """Where and with what code the runs ran, and the training seconds they took: as dedicated runs
    (the compute axis of the time-matched comparison) and actually spent (WSD branches share a trunk)."""
    from experiments.training.run import branch_key

    ok = [r for r in results if r.get("status") == "ok"]
    if not ok:
        return {}
    host = ok[0].get("host") or {}
    trunks: dict = {}
    spent = 0.0
    for r in ok:
        b = r.get("branch")
        if b:
            key = branch_key(r["spec"])  # the runs of one trunk
            trunks[key] = max(trunks.get(key, 0.0), float(b.get("trunk_time_s") or 0.0))
            spent += float(b.get("cooldown_time_s") or 0.0)
        else:
            spent += float(r.get("train_time_s") or 0.0)
    commits = sorted({(r.get("code") or {}).get("git_commit") for r in ok} - {None})
    return {"cpu": host.get("cpu"), "cpu_count": host.get("cpu_count"), "torch": host.get("torch"),
            "hosts": sorted({(r.get("host") or {}).get("hostname") for r in ok} - {None}), "git_commits": commits,
            "train_seconds": float(sum(float(r.get("train_time_s") or 0.0) for r in ok)),
            "spent_seconds": spent + sum(trunks.values())}


def _comparisons(study: StudyData, cm: dict, samples: dict) -> list[dict]:
    """Paired ratios at each budget: every pair of GATr algebras, and best equivariant vs best baseline."""
    rows = []
    gatr = [f for f in cm["families"] if _is_equivariant(study.meta[f])]
    for key in ("loss", "loss_contact"):
        for j, budget in enumerate(cm["budgets"]):
            for a_i, a in enumerate(gatr):
                for b in gatr[a_i + 1:]:
                    r = ratio_interval(samples[a][key][:, j], samples[b][key][:, j])
                    rows.append({"kind": "algebras", "metric": key, "budget": budget, "a": a, "b": b, **r})
    return rows


def _best_at(cm: dict, names: list[str], key: str, j: int) -> str | None:
    vals = {f: cm["families"][f][key][j]["value"] for f in names}
    vals = {f: v for f, v in vals.items() if math.isfinite(v)}
    return min(vals, key=vals.get) if vals else None


def _per_budget(cm: dict, samples: dict, eq: list[str], neq: list[str]) -> list[dict]:
    """Best equivariant / best baseline at each budget (the best read off the point estimates)."""
    rows = []
    for j, budget in enumerate(cm["budgets"]):
        a, b = _best_at(cm, eq, "loss", j), _best_at(cm, neq, "loss", j)
        if a is None or b is None:
            continue
        r = ratio_interval(samples[a]["loss"][:, j], samples[b]["loss"][:, j])
        rows.append({"budget": budget, "equivariant": a, "baseline": b, **r, "verdict": _verdict(r, "below")})
    return rows


def _one_verdict(rows: list[dict]) -> str:
    verdicts = {p["verdict"] for p in rows}
    return verdicts.pop() if len(verdicts) == 1 else "not resolved"


def _findings(study: StudyData, out: dict, samples: dict, samples_time: dict, n_boot: int, seed: int) -> dict:
    """The three findings of the scaling paper, each with numbers and a verdict."""
    fams = out["families"]
    eq = [f for f in fams if _is_equivariant(fams[f])]
    neq = [f for f in fams if not _is_equivariant(fams[f])]
    findings = {}

    # 2. power law in compute; equivariant models better at every budget (nominal FLOPs and measured time)
    per_budget = _per_budget(out["compute_matched"], samples, eq, neq)
    per_time = _per_budget(out["time_matched"], samples_time, eq, neq)
    alphas = {f: {"alpha": fams[f]["scaling"].get("alpha"), "n_points": fams[f]["scaling"].get("n_points"),
                  "ci95": (fams[f]["scaling"].get("alpha_interval") or {}).get("ci95")} for f in fams}
    findings["compute"] = {
        "claim": "loss follows a power law in compute, and equivariant models are better at every compute budget",
        "verdict": _one_verdict(per_budget) if per_budget else "not resolved", "per_budget": per_budget,
        "verdict_time": _one_verdict(per_time) if per_time else "not resolved", "per_time": per_time,
        "alphas": alphas}

    # 1. data efficiency: the change of the gap with data (a ratio of ratios), against the best baseline
    de = data_efficiency_gap(study, eq, neq, n_boot, seed)
    de["claim"] = "equivariance improves data efficiency; augmentation narrows the gap given enough epochs"
    findings["data_efficiency"] = de

    # 3. compute-optimal allocation: N*(C) ~ C^a from iso-FLOP profiles, best GATr vs best baseline
    alloc = {"claim": "the compute-optimal split between model size and training steps differs between equivariant "
                      "and non-equivariant models", "verdict": "not resolved",
             "exponents": {f: {k: fams[f]["iso_flop"].get(k) for k in ("exponent", "se", "df", "ci95", "n_budgets",
                                                                          "note")} for f in fams}}
    have = {f: v for f, v in alloc["exponents"].items() if v.get("exponent") is not None and v.get("se") is not None}
    pick = {}
    for role, names in (("equivariant", eq), ("baseline", neq)):
        cands = [f for f in names if f in have]
        if cands:  # the family with the lowest validation loss among those with an exponent
            pick[role] = min(cands, key=lambda f: fams[f]["selected"].get("val_loss", math.inf))
    alloc["compared"] = pick
    if len(pick) == 2:
        from scipy.stats import t as student_t

        e, b = have[pick["equivariant"]], have[pick["baseline"]]
        gap, se = e["exponent"] - b["exponent"], math.hypot(e["se"], b["se"])
        q = student_t.ppf(0.975, max(1, min(e["df"], b["df"])))
        alloc["difference"] = {"value": gap, "se": se, "ci95": [gap - q * se, gap + q * se]}
        lo, hi = alloc["difference"]["ci95"]
        alloc["verdict"] = "supported" if lo > 0 or hi < 0 else "not resolved"
    findings["allocation"] = alloc
    return findings
