"""Planted bugs: every one must make the fast tests fail.

Each mutation replaces one piece of source text in a scratch copy of the repository (tracked files
only) and runs the fast tests that should notice it (``-m "not slow"``, stopping at the first
failure). A mutation that leaves them green SURVIVED: the suite is blind there. A mutation whose
text is no longer in the file is STALE (the code moved; update the list).

    python tests/mutations.py              # all mutations, 2 at a time; a table; exit 1 if any survived
    python tests/mutations.py --list
    python tests/mutations.py --only ln-sum ln-eps --jobs 1

Not part of the pytest run (it takes a few minutes); run it before changing the tests or the maths.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    what: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


E = "tests/experiments/"
MUTATIONS = (
    # ------------------------------------------------------------------ the list
    Mutation("linear-map-sign", "a sign flipped in one entry of one derived linear map", "algebras/constants.py",
             "return self._tensor(self.constants.linear_basis)",
             "b = self.constants.linear_basis.copy(); b.flat[np.flatnonzero(b)[7]] *= -1\n"
             "        return self._tensor(b)",
             ("tests/algebras/test_equivariance.py",)),
    Mutation("omega-no-det", "angular velocity transformed without det(R)", "experiments/rigid_body/transforms.py",
             "out[key] = y * det.reshape(*det.shape, *([1] * (x.dim() - batch)))", "out[key] = y",
             (E + "test_rigid_body_dataset.py", E + "test_models.py")),
    Mutation("fit-sign", "the log-linear fit's exponent with the wrong sign", "experiments/scaling/fit.py",
             "alpha=-slope, l_inf=0.0", "alpha=slope, l_inf=0.0", (E + "test_scaling_fit.py",)),
    Mutation("ipga-no-points", "distance-aware attention features without the e0 point components",
             "algebras/projective.py", "return weight, x[..., self._coords]",
             "return weight, 0 * x[..., self._coords]", ("tests/gatr/test_values.py",)),
    Mutation("split-leak", "one test trajectory leaked into the training split", "experiments/rigid_body/dataset.py",
             '"train": perm[:n_train],', '"train": perm[:n_train + 1],', (E + "test_rigid_body_dataset.py",)),
    Mutation("ln-no-invariant", "layer norm without its invariant-vector term", "algebras/hooks.py",
             "                    maps.append(contraction)", "                    pass",
             ("tests/gatr/test_values.py",)),
    Mutation("ln-eps", "layer norm with epsilon outside the square root", "gatr/primitives/norm.py",
             "out = x * torch.rsqrt(sq + eps)[..., None, None]", "out = x / (torch.sqrt(sq) + eps)[..., None, None]",
             ("tests/gatr/test_values.py",)),
    Mutation("ln-sum", "layer norm summing over channels instead of averaging", "gatr/primitives/norm.py",
             "blades.to(dtype)).mean(-1)  # (...)", "blades.to(dtype)).sum(-1)  # (...)",
             ("tests/gatr/test_values.py",)),
    Mutation("fit-prefactor", "the saturating fit's prefactor computed wrongly", "experiments/scaling/fit.py",
             "PowerLawFit(a=math.exp(log_A) * c0 ** alpha,", "PowerLawFit(a=math.exp(log_A),",
             (E + "test_scaling_fit.py",)),
    Mutation("train-all", "the training data drawn from all trajectories", "experiments/rigid_body/dataset.py",
             'out = {"train": RigidBodyDataset(arrays, "train",', 'out = {"train": RigidBodyDataset(arrays, "all",',
             (E + "test_training.py",)),
    # ------------------------------------------------------------------ our own
    Mutation("ballistic-const-omega", "free flight with constant angular velocity (inertia ignored)",
             "experiments/rigid_body/ballistic.py", "inv_inertia = 1.0 / inertia.to(f64).clamp_min(1e-30)",
             "inv_inertia = torch.ones_like(inertia.to(f64))", (E + "test_ballistic.py",)),
    Mutation("capsule-inertia", "a wrong hemisphere offset in the capsule's inertia",
             "experiments/rigid_body/ballistic.py", "3 * h * r / 8", "3 * h * r / 4", (E + "test_ballistic.py",)),
    Mutation("contact-off-by-one", "contact windows looking at frames t..t+k-1 instead of t+1..t+k",
             "experiments/rigid_body/dataset.py",
             "frames = torch.as_tensor(t).unsqueeze(-1) + torch.arange(1, horizon + 1)",
             "frames = torch.as_tensor(t).unsqueeze(-1) + torch.arange(0, horizon)",
             (E + "test_rigid_body_dataset.py",)),
    Mutation("window-seed", "contact-free window sampling not seeded", "experiments/rigid_body/dataset.py",
             "np.random.default_rng([int(seed), 7127])", "np.random.default_rng()",
             (E + "test_rigid_body_dataset.py",)),
    Mutation("select-on-test", "the selected config chosen by test loss", "experiments/scaling/analysis.py",
             "key=lambda c: (np.nanmean(c.val), c.compute)", "key=lambda c: (np.nanmean(c.test), c.compute)",
             (E + "test_scaling_analysis.py",)),
    Mutation("no-seed-correction", "seed bootstrap without the small-sample correction",
             "experiments/scaling/analysis.py", "c = math.sqrt(n_seeds / (n_seeds - 1))", "c = 1.0",
             (E + "test_scaling_analysis.py",)),
    Mutation("envelope-extrapolates", "the compute envelope extrapolating the fit above the frontier",
             "experiments/scaling/analysis.py", "    out[above] = l_[-1]\n",
             "    out[above] = fit_power_law(c, l_).predict(budgets[above]) if len(fr) > 1 else l_[-1]\n",
             (E + "test_scaling_analysis.py",)),
    Mutation("no-standardise", "baseline features centred but not scaled", "experiments/models/base.py",
             "return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)", "return x - self.mean.to(x.dtype)",
             (E + "test_models.py",)),
    Mutation("centre-not-ballistic", "the centred transformer leaving the free-flight keypoints uncentred",
             "experiments/models/base.py", "ballistic = ballistic - centre.unsqueeze(-2)", "ballistic = ballistic",
             (E + "test_models.py",)),
    Mutation("gatr-wrong-reference", "GATr correcting the input keypoints instead of free flight",
             "experiments/models/embedding.py",
             'reference = points[..., 4:, :] if self.residual == "ballistic" else points[..., :4, :]',
             'reference = points[..., :4, :]', (E + "test_models.py",)),
    Mutation("mse-mean-xyz", "keypoint MSE averaging x, y, z instead of summing", "experiments/training/module.py",
             "return (pred.float() - target.float()).pow(2).sum(-1).mean()",
             "return (pred.float() - target.float()).pow(2).mean()", (E + "test_training.py",)),
    Mutation("attention-scale", "attention logits without the 1/sqrt(d) scale", "gatr/primitives/attention.py",
             "scale = 1.0 / math.sqrt(q.shape[-1])", "scale = 1.0", ("tests/gatr/test_values.py",)),
    Mutation("equilinear-transposed", "EquiLinear's dense path applying every basis map transposed",
             "gatr/primitives/linear.py", "mm.reshape(out_mv, in_mv, dim, dim).permute(0, 2, 1, 3)",
             "mm.reshape(out_mv, in_mv, dim, dim).permute(0, 3, 1, 2)", ("tests/gatr/test_values.py",)),
    Mutation("study-merge", "a changed grid run into an existing study directory (runs of two grids mixed)",
             "experiments/scaling/runner.py", "    check_same_study(out_dir, cfg)\n", "",
             (E + "test_scaling_runner.py",)),
    Mutation("no-run-lock", "concurrent sweeps on one directory training the same run twice",
             "experiments/scaling/execution.py", "    holder = try_lock(lock)\n    if holder is not None:",
             "    try_lock(lock)\n    holder = None\n    if holder is not None:", (E + "test_scaling_runner.py",)),
    Mutation("orphan-workers", "sweep workers that outlive a killed parent", "experiments/workers.py",
             "            if os.getppid() != parent_pid:", "            if False:", (E + "test_workers.py",)),
    Mutation("padded-keys-leak", "padded items' keys and values left in attention (0 * NaN reaches real items)",
             "gatr/layers/attention.py", "        if key_padding_mask is not None:\n            # padded keys get weight 0",
             "        if False:\n            # padded keys get weight 0", ("tests/gatr/test_gatr.py",)),
    Mutation("int-mask-additive", "integer 0/1 attention masks taken as additive", "gatr/primitives/attention.py",
             "    if not attention_mask.dtype.is_floating_point:", "    if False:", ("tests/gatr/test_gatr.py",)),
    Mutation("unstable-sim-kept", "an unstable MuJoCo run (state reset) recorded as a trajectory",
             "experiments/rigid_body/simulate.py", "    if fatal or not np.isfinite(positions).all():", "    if False:",
             (E + "test_rigid_body_simulate.py",)),
    Mutation("resume-drops-settings", "a resume silently replacing requested model settings by the checkpoint's",
             "experiments/resume.py", "    if changed:\n        detail = ", "    if False:\n        detail = ",
             (E + "test_training.py",)),
    Mutation("no-centring", "body embedding without centring (conformal float32 far from the origin)",
             "experiments/models/embedding.py", "centre = scene_centre(positions)",
             "centre = torch.zeros_like(positions[..., :1, :])", (E + "test_models.py",)),
    Mutation("eval-contact-swap", "per-trajectory sums with contact and contact-free swapped",
             "experiments/training/evaluation.py",
             'for name, mask in (("contact", errors["contact"]), ("free", ~errors["contact"])):',
             'for name, mask in (("contact", ~errors["contact"]), ("free", errors["contact"])):',
             (E + "test_evaluation.py",)),
    # ------------------------------------------------------------------ issue 9: registry, kernels, checks
    Mutation("checks-nowhere", "the network's own input checks switched off with its sub-layers'",
             "gatr/layers/base.py", "if module is not self and isinstance(module, EquiModule):",
             "if isinstance(module, EquiModule):", ("tests/gatr/test_gatr.py",)),
    Mutation("sparse-grad-perm", "the sparse linear kernel's backward permuting the output gradient with the "
             "forward permutation instead of its inverse (forward values stay right)", "gatr/kernels/sparse_linear.py",
             "_sector_major(st, out_mv)[::-1]", "(_sector_major(st, out_mv)[1],) * 2",
             ("tests/gatr/test_kernels.py",)),
    Mutation("compile-view-inputs", "compile=True handing the first block its inputs as views (a new item count "
             "then compiles the shared block twice)", "gatr/nets/gatr.py",
             "t.clone() if t._base is not None else t", "t",
             ("tests/gatr/test_compile.py::test_compile_option_compiles_one_block_for_every_block",)),
    Mutation("compile-one-function", "compile=True sharing one compiled function among every kind of block "
             "(dynamo's per-function recompile limit then fails a sweep's worker that trains several families)",
             "gatr/nets/gatr.py", "key = (kind, repr(", "key = (\"\", repr(",
             ("tests/gatr/test_compile.py::test_compile_option_gives_each_kind_of_block_its_own_recompile_limit",)),
    Mutation("label-tables-unpermuted", "the eager label layout's table GEMM on blade-ordered tables (its operands "
             "are in label order)", "gatr/kernels/bilinear.py",
             "tables = t.bilinear_tables[:, o][:, :, o][:, :, :, o]", "tables = t.bilinear_tables",
             ("tests/gatr/test_kernels.py",)),
    Mutation("label-bilinear-transpose", "the eager label layout's products written back with hidden and "
             "bilinear axes swapped", "gatr/kernels/plan.py", "z = z.transpose(-1, -3)  # (..., dim, nb, h)",
             "z = z.permute(*range(z.dim() - 3), -1, -3, -2)",
             ("tests/gatr/test_kernels.py", "tests/gatr/test_gatr.py")),
    Mutation("attention-features-in-labels", "eager attention splitting label-ordered queries and keys without "
             "leaving the layout (the features then read components in the wrong order)", "gatr/layers/attention.py",
             "        if leave_first:\n", "        if False:\n",
             ("tests/gatr/test_gatr.py::test_label_layout_network_equals_blade_order",)),
    Mutation("reference-is-this-project", "--reference-gatr importing a checkout of this project (its kernels "
             "re-register every gatr::* operator and torch destroys ours)", "experiments/peers.py",
             'if (path / "gatr" / "kernels").is_dir() or (path / "algebras" / "__init__.py").is_file():', "if False:",
             ("tests/experiments/test_value_checks.py",)),
    Mutation("operator-redefined", "a kernel module executed again (reload, autoreload) defining its custom "
             "operators again (torch destroys the registrations the process holds)", "gatr/kernels/ops.py",
             "        if registered is None:\n", "        if True:\n",
             ("tests/gatr/test_kernels.py::test_reloading_the_kernel_modules_keeps_their_operators",)),
    Mutation("xor-grad-left", "the xor-shift bilinear's left gradient from the table of the old operand order "
             "(forward values stay right)", "gatr/kernels/label_layout.py",
             "for axes in ((1, 2, 3), (2, 3, 1), (1, 3, 2))]", "for axes in ((1, 2, 3), (3, 2, 1), (1, 3, 2))]",
             ("tests/gatr/test_kernels.py",)),
    Mutation("bilinear-v1-channels", "a version-1 bilinear state dict (operand channels (hidden, bilinear)) loaded "
             "without reordering its channels", "gatr/layers/bilinear.py",
             "view(2, h, nb).transpose(1, 2).reshape(-1)", "view(2, nb, h).reshape(-1)",
             ("tests/gatr/test_gatr.py",)),
    Mutation("spread-order", "the adjoint of a component selection (the gradient of select) reading the wrong "
             "slots", "algebras/components.py", "return _pad_one(y, axis).index_select(axis, ci.spread)",
             "return _pad_one(y, axis).index_select(axis, ci.spread.flip(0))",
             ("tests/algebras/test_components.py",)),
    Mutation("spread-runs", "the eager adjoint of a component selection copying each run from its place in "
             "the full axis instead of its place in the selection", "algebras/components.py",
             "copy_(y.narrow(axis, position, length))", "copy_(y.narrow(axis, min(start, y.shape[axis] - length), length))",
             ("tests/algebras/test_components.py",)),
    Mutation("label-gate", "the gated nonlinearity in the label layout gating by the second row, not the scalar",
             "gatr/kernels/plan.py", "return mv.narrow(self.component_axis, 0, 1)",
             "return mv.narrow(self.component_axis, 1, 1)",
             ("tests/gatr/test_gatr.py",)),
    Mutation("label-norm", "the layer norm in the label layout reading components in label order as blade order",
             "gatr/layers/norm.py", "blades=plan.leave(mv))", "blades=mv.transpose(-1, -2))",
             ("tests/gatr/test_gatr.py",)),
    Mutation("no-plugins", "installed plug-in algebras (entry points) never loaded", "algebras/registry.py",
             "    for ep in entry_points(group=ENTRY_POINT_GROUP):", "    for ep in ():",
             (E + "test_plugin_example.py",)),
    # ------------------------------------------------------------------ issue 23: lines and rays
    Mutation("line-moment-sign", "a PGA line's moment with the wrong sign (the line through -x, still a line)",
             "algebras/projective.py", "return self.euclidean_bivector(d) + self.vector(m, self._moment_blades)",
             "return self.euclidean_bivector(d) - self.vector(m, self._moment_blades)",
             ("tests/algebras/test_lines.py",)),
    Mutation("cga-line-moment-sign", "a CGA line's moment with the wrong sign (its own round trip still passes)",
             "algebras/conformal.py", "return self.vector(d, self._line_blades) + self.embed_axial_vector(m)",
             "return self.vector(d, self._line_blades) - self.embed_axial_vector(m)",
             ("tests/algebras/test_lines.py",)),
)


def _copy_repo(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for rel in files.decode().split("\0"):
        if rel and (REPO / rel).is_file():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, target)


def run_mutation(m: Mutation, scratch: Path) -> tuple[str, float, str]:
    """Apply ``m`` in a fresh copy under ``scratch`` and run its tests: (CAUGHT | SURVIVED | STALE | BROKEN,
    seconds, detail)."""
    t0 = time.perf_counter()
    root = scratch / m.name
    _copy_repo(root)
    path = root / m.file
    text = path.read_text()
    if text.count(m.old) != 1:
        return "STALE", time.perf_counter() - t0, f"{m.old!r} found {text.count(m.old)} times in {m.file}"
    path.write_text(text.replace(m.old, m.new))
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider", *m.tests]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    where = subprocess.run([sys.executable, "-c", "import algebras, experiments; print(algebras.__file__)"],
                           cwd=root, env=env, capture_output=True, text=True).stdout.strip()
    if not where.startswith(str(root)):
        raise RuntimeError(f"the scratch copy is not what gets imported ({where}); check the editable install")
    failed = [line for line in proc.stdout.splitlines() if line.startswith("FAILED") or line.startswith("ERROR")]
    # pytest exits 1 when tests failed; 0 = they passed (the bug survived); anything else (no tests collected,
    # a usage or collection error) proves nothing about the bug, so it counts as a broken mutation
    status = {0: "SURVIVED", 1: "CAUGHT"}.get(proc.returncode, f"BROKEN (pytest exit {proc.returncode})")
    detail = failed[0][:110] if failed else proc.stdout.strip().splitlines()[-1][:110] if proc.stdout.strip() else ""
    return status, time.perf_counter() - t0, detail


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="mutation names to run (default: all)")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    known = {m.name: m for m in MUTATIONS}
    if args.list:
        for m in MUTATIONS:
            print(f"{m.name:24s} {m.what}")
        return 0
    unknown = sorted(set(args.only or ()) - set(known))
    if unknown:
        print(f"error: unknown mutation(s) {unknown}; valid: {', '.join(known)}", file=sys.stderr)
        return 2
    todo = [known[n] for n in args.only] if args.only else list(MUTATIONS)
    with tempfile.TemporaryDirectory(prefix="mutations-") as tmp:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(pool.map(lambda m: run_mutation(m, Path(tmp)), todo))
    print("| mutation | planted bug | result | seconds | first failing test |")
    print("|---|---|---|---|---|")
    for m, (status, seconds, detail) in zip(todo, results):
        print(f"| {m.name} | {m.what} | {status} | {seconds:.0f} | {detail} |")
    bad = [m.name for m, (status, _, _) in zip(todo, results) if status != "CAUGHT"]
    print(f"{len(todo) - len(bad)} caught, {len(bad)} survived, stale or broken" + (f": {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
