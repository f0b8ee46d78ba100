"""Analyse a study directory: fits (analysis.json), plots (PNG) and a short report (report.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .fit import analyze_results
from .plots import make_plots
from .runner import atomic_write_text, collect_results, read_json, write_json, write_tables


def _f(v, fmt: str = ".3g") -> str:
    if v is None:
        return "–"
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    return format(v, fmt) if math.isfinite(v) else "–"


def _exp(d: dict) -> str:
    if not d or d.get("exponent") is None:
        return (d or {}).get("note") or "insufficient points"
    s = _f(d["exponent"], ".2f")
    if d.get("stderr") is not None:
        s += f" ± {_f(d['stderr'], '.2f')}"
    else:
        s += f" ({d.get('note') or 'no uncertainty'})"
    return s


def _alpha(fa: dict) -> str:
    fit = fa.get("fit", {})
    if fit.get("method") == "insufficient":
        return "insufficient points"
    b = fa.get("alpha_boot", {})
    lo68, hi68 = b.get("ci68", [math.nan, math.nan])
    lo95, hi95 = b.get("ci95", [math.nan, math.nan])
    s = _f(fit.get("alpha"), ".3f")
    if b.get("n_boot"):
        s += f" (boot. median {_f(b.get('median'), '.3f')}, 68% [{_f(lo68, '.3f')}, {_f(hi68, '.3f')}], " \
             f"95% [{_f(lo95, '.3f')}, {_f(hi95, '.3f')}])"
    return s


def render_report(analysis: dict, study: dict | None, plots: dict[str, Path], out_dir: Path) -> str:
    cfg = (study or {}).get("config", {})
    fams = analysis["families"]
    meta = analysis.get("family_meta", {})
    lines = [f"# Scaling study: {cfg.get('name', Path(out_dir).name)}", ""]
    if cfg.get("description"):
        lines += [cfg["description"].strip(), ""]
    n_grid = (study or {}).get("num_runs")
    lines += [f"Runs: {analysis['n_results']} recorded"
              + (f" of {n_grid} in the grid" if n_grid is not None else "")
              + f", {analysis['n_ok']} ok, {len(analysis['failed'])} failed.", ""]
    lines += ["Compute is the nominal training FLOPs reported by the training code. Fits use the "
              "compute-optimal frontier (runs that no cheaper run beats) at the main training-set size: "
              "`L(C) = a·C^(-α) [+ L_inf]`, least squares in log space; α uncertainties from a bootstrap "
              "over runs (frontier re-extracted per resample). Allocation exponents are log-log slopes "
              "of parameters and tokens seen (steps × batch × bodies) along the frontier (± standard error).",
              ""]
    lines += ["## Fitted exponents", "",
              "| family | algebra | augment | runs | best test loss | E(3) test loss (best) | α (loss vs compute) "
              "| L_inf | N_opt ∝ C^a | D_opt ∝ C^b |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name in sorted(fams):
        fa = fams[name]
        m = meta.get(name, {})
        fit = fa.get("fit", {})
        linf = _f(fit.get("l_inf")) if fit.get("method") == "curve_fit" else "(not fitted)"
        lines.append(f"| {name} | {m.get('algebra') or '–'} | {m.get('augment')} | {fa['n_runs']} | "
                     f"{_f(fa['best'].get('test_loss'))} | {_f(fa['best'].get('test_e3_loss'))} | {_alpha(fa)} | "
                     f"{linf} | {_exp(fa['allocation'].get('params', {}))} | "
                     f"{_exp(fa['allocation'].get('tokens', {}))} |")
    lines += [""]
    eff = analysis.get("data_efficiency", {})
    if any(len(v) > 1 for v in eff.values()):
        lines += ["## Data efficiency", "",
                  "Test loss (plain / E(3)-transformed) per training-set size, run picked by validation loss.", "",
                  "| family | " + " | ".join(["train trajectories: plain / E(3)"]) + " |", "|---|---|"]
        for name in sorted(eff):
            cells = ", ".join(f"n={r['train_trajectories']}: {_f(r['test_loss'])} / {_f(r.get('test_e3_loss'))}"
                              for r in eff[name])
            lines.append(f"| {name} | {cells} |")
        lines += [""]
    lines += ["## Plots", ""]
    titles = {"loss_vs_compute": "Loss vs compute", "loss_vs_params": "Loss vs parameters",
              "loss_vs_data": "Loss vs training-set size", "plain_vs_e3": "Plain vs E(3)-transformed test loss"}
    for key, p in plots.items():
        rel = Path(p).relative_to(out_dir) if Path(p).is_relative_to(out_dir) else Path(p)
        lines += [f"### {titles.get(key, key)}", "", f"![{titles.get(key, key)}]({rel.as_posix()})", ""]
    if analysis.get("unusable"):
        lines += ["## Runs left out of the fits", "",
                  "Finished, but with a non-finite or non-positive loss or compute (e.g. diverged):", ""]
        for u in analysis["unusable"]:
            lines.append(f"- `{u['run_id']}`: test loss {u.get('test_loss')}, train FLOPs {u.get('train_flops')}")
        lines.append("")
    lines += ["## Failed runs", ""]
    if analysis["failed"]:
        for f in analysis["failed"]:
            lines.append(f"- `{f['run_id']}`: {f.get('error_type')}: {str(f.get('error_message'))[:300]}")
    else:
        lines.append("None.")
    lines.append("")
    return "\n".join(lines)


def analyze(out_dir: str | Path, n_boot: int = 500, seed: int = 0, progress: bool = True) -> dict:
    """Analyse a study directory (all shards' results): refresh results.csv/jsonl, write analysis.json,
    plots/*.png and report.md. Returns the analysis dict."""
    out_dir = Path(out_dir)
    if not (out_dir / "runs").is_dir():
        raise FileNotFoundError(f"{out_dir} has no runs/ directory: not a scaling study output")
    write_tables(out_dir)
    results = collect_results(out_dir)
    analysis = analyze_results(results, n_boot=n_boot, seed=seed)
    write_json(out_dir / "analysis.json", analysis)
    plots = make_plots(results, analysis, out_dir / "plots")
    study = read_json(out_dir / "study.json")
    atomic_write_text(out_dir / "report.md", render_report(analysis, study, plots, out_dir))
    if progress:
        print(json.dumps({name: {"alpha": fa["fit"]["alpha"], "best_test_loss": fa["best"].get("test_loss")}
                          for name, fa in analysis["families"].items()}, indent=1))
        print(f"report: {out_dir / 'report.md'}")
    return analysis
