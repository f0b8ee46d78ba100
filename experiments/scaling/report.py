"""Analyse a study directory: statistics (analysis.json), plots (PNG) and a report (report.md)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from .findings import analyze_results
from .plots import make_plots
from .grid import ConfigError
from .results import atomic_write_text, collect_results, read_json, unreadable_results, write_json, write_tables


def _f(v, fmt: str = ".3g") -> str:
    if v is None:
        return "–"
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    return format(v, fmt) if math.isfinite(v) else "–"


def _ci(d: dict | None, which: str = "ci95", fmt: str = ".3g") -> str:
    if not d or not d.get("n_boot"):
        return "–"
    lo, hi = d[which]
    return f"[{_f(lo, fmt)}, {_f(hi, fmt)}]"


def _pm(mean, sd, fmt: str = ".3g") -> str:
    s = _f(mean, fmt)
    return s + (f" ± {_f(sd, fmt)}" if sd is not None and math.isfinite(float(sd)) else "")


def _task_section(an: dict) -> list[str]:
    if an.get("ballistic_mse") is None:
        return ["Closed-form references unavailable: the runs carry no per-trajectory test scores.", ""]
    return [
        "## The task and its closed-form references", "",
        f"Test split: {an['test_trajectories']} trajectories, {an['test_windows']} windows, of which "
        f"{an['test_contact_windows']} ({an['test_contact_windows'] / max(1, an['test_windows']):.0%}) hold a "
        "body-body contact inside the horizon (contact windows). Every loss is the mean squared keypoint "
        "distance [m²] over the WHOLE test split; `rel. ballistic` divides by the free-flight predictor's loss on "
        "the same windows (1.0 = ballistic, lower is better).", "",
        "| predictor | all windows | contact windows | contact-free windows |", "|---|---|---|---|",
        f"| ballistic (free flight: constant velocity, torque-free rotation) | {_f(an['ballistic_mse'])} | "
        f"{_f(an['ballistic_mse_contact'])} | {_f(an['ballistic_mse_free'])} |",
        f"| no motion (input keypoints) | {_f(an['no_motion_mse'])} | {_f(an['no_motion_mse_contact'])} | – |", ""]


def _reference_rows(an: dict, cells) -> list[str]:
    """One table row per closed-form reference; ``cells(name, all, contact, free)`` gives the row's cells."""
    if an.get("ballistic_mse") is None:
        return []
    b = an["ballistic_mse"]
    return ["| " + " | ".join(cells(f"*{name} (reference)*", an[f"{key}_mse"], an.get(f"{key}_mse_contact"),
                                    an.get(f"{key}_mse_free"), an[f"{key}_mse"] / b,
                                    (an.get(f"{key}_mse_contact") or math.nan) / an["ballistic_mse_contact"]))
            + " |" for name, key in (("ballistic", "ballistic"), ("no motion", "no_motion"))]


def _headline(an: dict) -> list[str]:
    cm = an["compute_matched"]
    if not cm["budgets"]:
        return ["## Compute-matched comparison", "",
                "No training budget lies inside every family's frontier: no compute-matched comparison is possible "
                "with this grid.", ""]
    lines = ["## Headline: families at equal training compute", "",
             "Test loss read off each family's frontier fit at common budgets (frontier configs selected by "
             "validation loss); `seeds` = mean ± sd of the same procedure run on each seed alone; intervals: 95% "
             "bootstrap over seeds and test trajectories.", ""]
    for j, budget in enumerate(cm["budgets"]):
        lines += [f"### {budget:.3g} training FLOPs", "",
                  "| family | test loss | seeds | 95% interval | rel. ballistic | rel. ballistic, contact windows "
                  "(95%) |", "|---|---|---|---|---|---|"]
        rows = sorted(cm["families"].items(), key=lambda kv: kv[1]["loss"][j]["value"]
                      if math.isfinite(kv[1]["loss"][j]["value"]) else math.inf)
        for fam, res in rows:
            l_, rel, relc = res["loss"][j], res.get("rel_ballistic", [{}])[j] if res.get("rel_ballistic") else {}, \
                res.get("rel_ballistic_contact", [{}])[j] if res.get("rel_ballistic_contact") else {}
            lines.append(f"| {fam} | {_f(l_['value'])} | {_pm(l_['seed_mean'], l_['seed_sd'])} (n={l_['n_seeds']}) | "
                         f"{_ci(l_)} | {_f(rel.get('value'), '.3f')} | {_f(relc.get('value'), '.3f')} "
                         f"{_ci(relc, fmt='.3f')} |")
        lines += _reference_rows(an, lambda name, a, c, fr, rel, relc: (name, _f(a), "–", "–", _f(rel, ".3f"),
                                                                            _f(relc, ".3f")))
        lines.append("")
    return lines


def _selected(an: dict) -> list[str]:
    lines = ["## Each family's selected config (lowest validation loss)", "",
             "Test losses: mean ± sd over seeds. The symmetry columns divide the loss on a transformed copy of the "
             "test split by the plain one: E(3) (rotation, reflection, translation), rotations and reflections only, "
             "translations only; an exactly equivariant model gives 1.00.", "",
             "| family | config | seeds | test loss | rel. ballistic (68%) | contact: rel. ballistic (68%) | "
             "contact-free loss | E(3) | rot./refl. | transl. | lacks (> 2% worse) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for fam, fa in sorted(an["families"].items(), key=lambda kv: kv[1].get("rel_ballistic_contact") or math.inf):
        s = fa["selected"]
        if not s:
            continue
        plain = s.get("test_loss")

        def ratio(key):
            return s.get(key) / plain if plain and s.get(key) is not None else None

        def rel(key):
            return _f(ratio(key), ".2f")

        lacks = [name for key, name in (("test_rotation_loss", "rotations/reflections"),
                                        ("test_translation_loss", "translations"))
                 if ratio(key) is not None and ratio(key) > 1.02] or ["nothing"]

        lines.append(f"| {fam} | {s['config']} | {s['n_seeds']} | {_pm(plain, s.get('test_loss_sd'))} | "
                     f"{_f(s.get('rel_ballistic'), '.3f')} {_ci(s.get('rel_ballistic_interval'), 'ci68', '.3f')} | "
                     f"{_f(s.get('rel_ballistic_contact'), '.3f')} "
                     f"{_ci(s.get('rel_ballistic_contact_interval'), 'ci68', '.3f')} | {_f(s.get('test_free_loss'))} | "
                     f"{rel('test_e3_loss')} | {rel('test_rotation_loss')} | {rel('test_translation_loss')} | "
                     f"{', '.join(lacks)} |")
    lines += _reference_rows(an, lambda name, a, c, fr, rel, relc: (name, "closed form", "–", _f(a), _f(rel, ".3f"),
                                                                    _f(relc, ".3f"), _f(fr), "1.00", "1.00", "1.00",
                                                                    "nothing"))
    return lines + [""]


def _algebras(an: dict) -> list[str]:
    rows = [c for c in an["comparisons"] if c["kind"] == "algebras"]
    if not rows:
        return []
    lines = ["## The algebras at equal compute", "",
             "Paired bootstrap ratio of test losses (same resampled trajectories and seeds); a difference is "
             "outside the uncertainty when the 95% interval excludes 1.", "",
             "| budget | windows | A / B | ratio | 95% interval | outside the uncertainty |", "|---|---|---|---|---|---|"]
    for c in rows:
        lines.append(f"| {c['budget']:.3g} | {'contact' if c['metric'] == 'loss_contact' else 'all'} | "
                     f"{c['a']} / {c['b']} | {_f(c['median'], '.3f')} | {_ci(c, fmt='.3f')} | "
                     f"{'**yes**' if c['excludes_one'] else 'no'} |")
    return lines + [""]


def _scaling(an: dict) -> list[str]:
    lines = ["## Scaling fits (test loss on the validation-selected frontier)", "",
             "| family | frontier configs | α | α, 68% seed-bootstrap interval | form |", "|---|---|---|---|---|"]
    for fam, fa in sorted(an["families"].items()):
        sc = fa["scaling"]
        lines.append(f"| {fam} | {', '.join(sc['frontier'])} | {_f(sc.get('alpha'), '.3f')} | "
                     f"{_ci(sc.get('alpha_interval'), 'ci68', '.3f')} | {sc.get('note', '')} |")
    return lines + [""]


def _data_efficiency(an: dict) -> list[str]:
    fams = {f: fa["data_efficiency"] for f, fa in an["families"].items() if len(fa["data_efficiency"]) > 1}
    if not fams:
        return []
    lines = ["## Data efficiency", "",
             "Per training-set size, the config selected by validation loss; test loss and contact-window loss "
             "relative to ballistic (68% interval over test trajectories and seeds), and the E(3) test loss.", "",
             "| family | train trajectories | epochs | seeds | test loss | contact: rel. ballistic | E(3) test loss |",
             "|---|---|---|---|---|---|---|"]
    for fam, rows in sorted(fams.items()):
        for r in rows:
            lines.append(f"| {fam} | {r['train_trajectories']} | {_f(r.get('epochs'), '.1f')} | {r['n_seeds']} | "
                         f"{_f(r['test_loss'])} | {_f(r.get('rel_ballistic_contact'), '.3f')} "
                         f"{_ci(r.get('rel_ballistic_contact_interval'), 'ci68', '.3f')} | {_f(r.get('test_e3_loss'))} |")
    lines += _reference_rows(an, lambda name, a, c, fr, rel, relc: (name, "–", "–", "–", _f(a), _f(relc, ".3f"),
                                                                    _f(a)))
    return lines + [""]


def _verdict_line(v: str) -> str:
    return f"**{v}**"


def _findings(an: dict) -> list[str]:
    f = an["findings"]
    lines = ["## The scaling paper's three findings, on this study", "",
             "The claims of Brehmer, Behrends, de Haan and Cohen, \"Does equivariance matter at scale?\" "
             "(arXiv:2410.23179), tested on this study. Each verdict is read off a 95% interval: *supported* when it excludes the null on the claimed side, "
             "*contradicted* on the other side, *not resolved* when it holds the null.", ""]
    de = f["data_efficiency"]
    h = de.get("headline")
    if h:
        r = h["all"]
        ep = h["epochs"]
        aug = de.get("augmentation")
        aug_txt = (f" Augmentation: {aug['augmented']} / {aug['plain']} at {aug['n']} trajectories "
                   f"({_f(aug['epochs'], '.1f')} epochs) = {_f(aug['ratio']['value'], '.3f')} {_ci(aug['ratio'], fmt='.3f')}: "
                   f"narrows the gap {_verdict_line(aug['verdict'])}." if aug else " No augmented baseline in the sweep.")
        lines.append(
            f"1. *{de['claim']}*: {_verdict_line(de['verdict'])}. The gap {h['equivariant']} / {h['baseline']} (the "
            f"baseline with the lowest validation loss) is {_f(r['gap_full']['value'], '.3f')} "
            f"{_ci(r['gap_full'], fmt='.3f')} with {h['n_full']} training trajectories and "
            f"{_f(r['gap_small']['value'], '.3f')} {_ci(r['gap_small'], fmt='.3f')} with {h['n_small']}; their ratio "
            f"(< 1: the advantage grows as data shrink) is **{_f(r['value'], '.3f')}** {_ci(r, fmt='.3f')} "
            f"({r['n_seeds']} seeds; epochs {_f(ep[h['equivariant']]['full'], '.1f')} → "
            f"{_f(ep[h['equivariant']]['small'], '.1f')} at a fixed step count).{aug_txt}")
    else:
        lines.append(f"1. *{de['claim']}*: **not resolved**: {de.get('note') or 'no data sweep'}.")
    c = f["compute"]
    alph = "; ".join(f"{k} α = {_f(v['alpha'], '.3f')} {_ci({'n_boot': 1, 'ci95': v['ci95']}, fmt='.3f') if v.get('ci95') else ''}"
                     f" ({v.get('n_points')} frontier points)" for k, v in c["alphas"].items())
    for key, axis, unit in (("per_budget", "verdict", "FLOPs"), ("per_time", "verdict_time", "s")):
        rows = c[key]
        if not rows:
            continue
        parts = "; ".join(f"{p['budget']:.3g} {unit}: {p['equivariant']} / {p['baseline']} = {_f(p['median'], '.3f')} "
                          f"{_ci(p, fmt='.3f')}" for p in rows)
        if key == "per_budget":
            lines.append(f"2. *{c['claim']}*, at equal nominal training FLOPs: {_verdict_line(c[axis])} (best "
                         f"equivariant / best non-equivariant test loss, 95% intervals: {parts}).")
        else:
            lines.append(f"   At equal measured training time on this machine: {_verdict_line(c[axis])} ({parts}).")
    if not c["per_budget"]:
        lines.append(f"2. *{c['claim']}*: **not resolved**: no common compute budget.")
    lines.append(f"   Power laws on the validation-selected frontier (95% intervals): {alph}.")
    a = f["allocation"]
    ex = "; ".join(f"{k}: a = {_f(v['exponent'], '.2f')} {_ci({'n_boot': 1, 'ci95': v['ci95']}, fmt='.2f')}"
                   if v.get("ci95") else f"{k}: {v.get('note') or 'no exponent'}" for k, v in a["exponents"].items())
    if a.get("difference"):
        d = a["difference"]
        lines.append(f"3. *{a['claim']}*: {_verdict_line(a['verdict'])}: N*(C) ∝ C^a from iso-FLOP profiles; "
                     f"a({a['compared']['equivariant']}) − a({a['compared']['baseline']}) = {_f(d['value'], '.2f')} "
                     f"{_ci({'n_boot': 1, 'ci95': d['ci95']}, fmt='.2f')} ({ex}).")
    else:
        lines.append(f"3. *{a['claim']}*: **not resolved**: {ex}.")
    return lines + [""]


def _iso_flop(an: dict) -> list[str]:
    fams = {f: fa["iso_flop"] for f, fa in an["families"].items() if fa.get("iso_flop", {}).get("profiles")}
    if not fams:
        return []
    lines = ["## Iso-FLOP profiles (validation loss by model size at each budget)", "",
             "N* is the vertex of a parabola in log N through each profile (Hoffmann et al. 2022, approach 2); "
             "'edge' when the optimum is not inside the sizes tried.", "",
             "| family | budget | sizes: params → validation loss | N* |", "|---|---|---|---|"]
    for fam, io in sorted(fams.items()):
        stars = io.get("n_star") or [None] * len(io["profiles"])  # one per profile, in the same order
        for p, star in zip(io["profiles"], stars):
            sizes = ", ".join(f"{_f(s['params'], '.3g')} → {_f(s['val_loss'], '.4g')}" for s in p["sizes"])
            lines.append(f"| {fam} | {p['budget']:.3g} | {sizes} | {_f(star, '.3g') if star else 'edge'} |")
    return lines + [""]


def _gap_table(an: dict) -> list[str]:
    rows = an["findings"]["data_efficiency"].get("rows") or []
    if not rows:
        return []
    lines = ["## Data efficiency: the gap's change with data", "",
             "gap(n) = equivariant / baseline test loss at one model size and step count; ratio = gap(small) / "
             "gap(full), < 1 when the equivariant model's advantage grows as data shrink. 95% bootstrap intervals "
             "over seeds and test trajectories (paired).", "",
             "| equivariant / baseline | trajectories (epochs) | gap, full data | gap, small data | ratio (all windows) "
             "| ratio (contact windows) | verdict |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        e = r["epochs"][r["equivariant"]]
        lines.append(f"| {r['equivariant']} / {r['baseline']} | {r['n_full']} ({_f(e['full'], '.1f')}) → {r['n_small']} "
                     f"({_f(e['small'], '.1f')}) | {_f(r['all']['gap_full']['value'], '.3f')} "
                     f"{_ci(r['all']['gap_full'], fmt='.3f')} | {_f(r['all']['gap_small']['value'], '.3f')} "
                     f"{_ci(r['all']['gap_small'], fmt='.3f')} | {_f(r['all']['value'], '.3f')} {_ci(r['all'], fmt='.3f')} "
                     f"| {_f(r['contact']['value'], '.3f')} {_ci(r['contact'], fmt='.3f')} | {r['verdict']} |")
    return lines + [""]


def _hardware(an: dict) -> list[str]:
    hw = an.get("hardware") or {}
    if not hw:
        return []
    return ["## The machine and the time it took", "",
            f"Measured on {hw.get('cpu')} ({hw.get('cpu_count')} cores), torch {hw.get('torch')}, code at "
            f"`{(hw.get('git_commits') or ['?'])[0][:10]}`" + (f" (and {len(hw['git_commits']) - 1} more commits)"
                                                               if len(hw.get('git_commits') or []) > 1 else "")
            + f". Training seconds of all runs as dedicated runs: {_f(hw.get('train_seconds'), '.4g')}; actually spent "
            f"(WSD branches share their trunks): {_f(hw.get('spent_seconds'), '.4g')} s.", ""]


def _limits(an: dict, study: dict) -> list[str]:
    seeds = sorted({fa["n_seeds"] for fa in an["families"].values()})
    points = {f: fa["scaling"].get("n_points", 0) for f, fa in an["families"].items()}
    few = sorted(f for f, n in points.items() if n < 3)
    lines = ["## What this budget cannot conclude", "",
             f"- Seeds per config: {', '.join(map(str, seeds))}. Intervals with few seeds are themselves uncertain; "
             "a family difference inside them is not a finding.",
             "- Exponents are laws only where the frontier has three or more points" +
             (f"; here {', '.join(few)} have fewer, so their slopes are between budgets only." if few else ".")]
    narrow = [c for c in an["comparisons"] if c["kind"] == "algebras" and not c["excludes_one"]]
    if narrow:
        lines.append(f"- {len(narrow)} of {len([c for c in an['comparisons'] if c['kind'] == 'algebras'])} pairwise "
                     "algebra comparisons lie inside the uncertainty.")
    lines.append("- Small models and short training: rankings at these budgets need not hold at larger ones.")
    lrs = (study or {}).get("pilot_lrs")
    if lrs:
        lines.append("- Learning rates per (family, size) come from a one-seed pilot at one budget per size "
                     "(`pilot/choice.json`); other budgets may prefer others, and the pilot's noise is one seed's.")
    else:
        lines.append("- Learning rates were fixed by the config (no pilot stage); other budgets and sizes may "
                     "prefer others.")
    lines.append("- Equal measured time holds on this machine only: the ranking at equal seconds depends on the "
                 "hardware and on how fast each implementation runs at these sizes.")
    return lines + [""]


def render_report(analysis: dict, study: dict | None, plots: dict[str, Path], out_dir: Path) -> str:
    cfg = (study or {}).get("config", {})
    lines = [f"# Scaling study: {cfg.get('name', Path(out_dir).name)}", ""]
    if cfg.get("description"):
        lines += [cfg["description"].strip(), ""]
    n_grid = (study or {}).get("num_runs")
    lines += [f"Runs: {analysis['n_results']} recorded" + (f" of {n_grid} in the grid" if n_grid is not None else "")
              + f", {analysis['n_ok']} ok, {len(analysis['failed'])} failed. Compute: nominal training FLOPs from the "
              "training code, one convention for every family.", ""]
    lines += _task_section(analysis) + _headline(analysis) + _selected(analysis) + _algebras(analysis)
    lines += _findings(analysis) + _scaling(analysis) + _iso_flop(analysis) + _gap_table(analysis)
    lines += _data_efficiency(analysis) + _hardware(analysis) + _limits(analysis, study)
    lines += ["## Plots", ""]
    titles = {"loss_vs_compute": "Test loss vs compute", "contact_vs_compute": "Contact windows, relative to ballistic",
              "loss_vs_data": "Data efficiency", "symmetry": "Which symmetry each model lacks"}
    for key, p in plots.items():
        rel = Path(p).relative_to(out_dir) if Path(p).is_relative_to(out_dir) else Path(p)
        lines += [f"### {titles.get(key, key)}", "", f"![{titles.get(key, key)}]({rel.as_posix()})", ""]
    if analysis.get("unusable"):
        lines += ["## Runs left out of the fits", "", "Finished, but with a non-finite or non-positive loss or compute:", ""]
        lines += [f"- `{u['run_id']}`: test loss {u.get('test_loss')}, train FLOPs {u.get('train_flops')}"
                  for u in analysis["unusable"]] + [""]
    if analysis.get("unreadable"):
        lines += ["## Unreadable result files", "",
                  "Not a readable result record (truncated or edited); left out. Rerunning the study redoes them:", ""]
        lines += [f"- `{p}`" for p in analysis["unreadable"]] + [""]
    if analysis.get("not_in_grid"):
        lines += ["## Runs left out: not in this study's grid", "",
                  f"{len(analysis['not_in_grid'])} result files in `runs/` belong to another grid (an older study "
                  "in the same directory) and are not analysed:", ""]
        lines += [f"- `{rid}`" for rid in analysis["not_in_grid"]] + [""]
    lines += ["## Failed runs", ""]
    lines += [f"- `{f['run_id']}`: {f.get('error_type')}: {str(f.get('error_message'))[:300]}"
              for f in analysis["failed"]] or ["None."]
    lines.append("")
    return "\n".join(lines)


def analyze(out_dir: str | Path, n_boot: int = 500, seed: int = 0, progress: bool = True) -> dict:
    """Analyse a study directory (all shards' results): refresh results.csv/jsonl, write analysis.json,
    plots/*.png and report.md. Returns the analysis dict."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ConfigError(f"--n-boot: expected a positive number of bootstrap resamples, got {n_boot!r}")
    out_dir = Path(out_dir)
    if not (out_dir / "runs").is_dir():
        raise ConfigError(f"{out_dir} has no runs/ directory: not a scaling study output "
                          "(python -m experiments.scaling run --out DIR writes one)")
    write_tables(out_dir)
    results = collect_results(out_dir)
    unreadable = [f"{p.relative_to(out_dir)} ({why})" for p, why in unreadable_results(out_dir)]
    for p in unreadable:
        print(f"warning: {out_dir}/{p} is not a usable result record; left out (rerun the study to redo it)",
              file=sys.stderr)
    if not results:
        raise ConfigError(f"{out_dir}/runs holds no readable result.json yet: nothing to analyse"
                          + (f" ({len(unreadable)} unreadable)" if unreadable else ""))
    study = read_json(out_dir / "study.json")
    outside = []
    if isinstance(study, dict) and "config" in study:  # runs of another grid (an older study) stay out
        from .grid import load_config, run_id

        cfg = load_config(config=study["config"])
        lrs = study.get("pilot_lrs")
        if cfg.pilot is not None and lrs is None:
            raise ConfigError(f"{out_dir}: the study's learning-rate pilot has not finished (no pilot_lrs in "
                              "study.json): nothing of its grid to analyse yet")
        grid = {run_id(spec) for spec in cfg.expand(lrs)}
        outside = sorted(r["run_id"] for r in results if r.get("run_id") not in grid)
        results = [r for r in results if r.get("run_id") in grid]
    analysis = analyze_results(results, n_boot=n_boot, seed=seed)
    analysis["not_in_grid"] = outside
    analysis["unreadable"] = unreadable
    write_json(out_dir / "analysis.json", analysis)
    plots = make_plots(results, analysis, out_dir / "plots")
    atomic_write_text(out_dir / "report.md", render_report(analysis, study, plots, out_dir))
    if progress:
        print(json.dumps({name: {"rel_ballistic_contact": fa.get("rel_ballistic_contact"),
                                 "test_loss": fa["selected"].get("test_loss") if fa["selected"] else None}
                          for name, fa in analysis["families"].items()}, indent=1))
        print(f"report: {out_dir / 'report.md'}")
    return analysis
