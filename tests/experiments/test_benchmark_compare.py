"""The benchmark's regression guard: ``--compare-to PATH`` times another checkout's GATr in the same rounds."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from experiments.benchmark import Entry, main, time_rounds
from experiments.benchmark_compare import CompareError, add_old_twins, ratio_cells

REPO = Path(__file__).resolve().parents[2]
TINY = ["--items", "4", "--batch", "2", "--blocks", "1", "--mv-channels", "2", "--s-channels", "2", "--heads", "1",
        "--steps", "1", "--rounds", "2", "--no-transformer", "--no-lgatr"]


@pytest.fixture(scope="module")
def old_tree(tmp_path_factory):
    """A copy of this tree's packages in a folder of their own (like an installed older release)."""
    root = tmp_path_factory.mktemp("old_release")
    for package in ("gatr", "algebras"):
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _rows(out: str) -> dict[str, list[str]]:
    return {cells[0]: cells[1:] for line in out.splitlines() if line.startswith("| ") and not line.startswith("| model")
            for cells in [[c.strip() for c in line.strip("|").split("|")]]}


@pytest.mark.parametrize("modes", [["eager"], pytest.param(["eager", "compiled"], marks=pytest.mark.slow)])
def test_compare_to_prints_a_finite_new_old_ratio_for_every_backend_and_mode(old_tree, modes, capsys):
    """Each of ours is followed by the old tree's same model (built there, in its own process, with the
    same single torch thread: the worker refuses a different count) and gets median and min new/old."""
    assert main(["--compare-to", str(old_tree), "--algebras", "euclidean", "projective", "--modes", *modes,
                 "--threads", "1", *TINY]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert f"old = {old_tree}" in out and "new/old (median) | new/old (min) |" in out
    labels = list(rows)
    for algebra in ("euclidean", "projective"):
        for mode in modes:
            label = f"ours {algebra}" + (" compiled" if mode == "compiled" else "")
            assert labels[labels.index(label) + 1] == f"old {label}"  # alternating: the twin right after
            median, low = (float(c) for c in rows[label][-2:])
            assert math.isfinite(median) and math.isfinite(low) and 0 < low <= median
            assert rows[f"old {label}"][0] == rows[label][0]  # same parameter count: the same model
            assert rows[f"old {label}"][-2:] == ["–", "–"]


@pytest.mark.parametrize("make, message", [
    (lambda root: root / "missing", "no such directory"),
    (lambda root: root, "not a checkout of this project (no gatr/ or algebras/ package)"),
    (lambda root: (root / "gatr").mkdir() or (root / "gatr" / "__init__.py").touch() or root,
     "not a checkout of this project (no algebras/ package)"),  # e.g. the reference GATr's tree
])
def test_a_path_that_is_not_this_project_is_one_line_and_exit_code_2(tmp_path, make, message, capsys):
    assert main(["--compare-to", str(make(tmp_path)), "--algebras", "euclidean", "--modes", "eager", *TINY]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("init, message", [
    ("", "has no gatr.GATr or algebras.get_algebra"),
    ("raise ImportError('this release is broken')", "ImportError: this release is broken"),
])
def test_a_tree_whose_packages_do_not_load_is_one_line_from_its_worker(tmp_path, init, message, capsys):
    """The packages exist but the worker cannot use them: its one-line reason, before anything compiles."""
    for package in ("gatr", "algebras"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(init if package == "gatr" else "")
    assert main(["--compare-to", str(tmp_path), "--algebras", "euclidean", "--modes", "eager", *TINY]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert [line for line in err.splitlines() if not line.startswith("#")] == [err.splitlines()[-1]]


class FakeTree:
    """Stands in for the worker: records what is built, times every model at 0.5 s."""

    path = Path("/old")

    def __init__(self, known=("a",)):
        self.known, self.asked = known, []

    def prepare(self, spec, compiled):
        self.asked.append((spec, compiled))
        if spec not in self.known:
            return {"skip": f"unknown algebra {spec!r}"}
        return {"index": len(self.asked) - 1, "params": 7, "flops": None, "compile_s": 1.0}

    def timer(self, index):
        return lambda steps: 0.5 * steps


def _entry(label, spec=None, compiled=False, seconds=0.25):
    return Entry(label, None, (), None, spec=spec, compiled=compiled, timer=lambda steps: seconds * steps)


def test_twins_follow_their_model_in_its_mode_and_get_per_round_ratios():
    ours, ours_c = _entry("ours a", "a"), _entry("ours a compiled", "a", True, seconds=0.125)
    peer, newer = _entry("peer"), _entry("ours b", "b")
    tree = FakeTree()
    order = add_old_twins([ours, ours_c, peer, newer], tree, Entry)
    assert tree.asked == [("a", False), ("a", True), ("b", False)]  # the mode travels; peers are not asked
    assert [e.label for e in order] == ["ours a", "old ours a", "ours a compiled", "old ours a compiled", "peer",
                                        "ours b"]  # b is new: no twin, still timed
    assert ours.twin.params == 7 and newer.twin is None
    time_rounds(order, rounds=3, steps=2, tokens=10, device=torch.device("cpu"))
    assert all(len(e.rates) == 3 for e in order)
    assert ratio_cells(ours) == ["2.00", "2.00"] and ratio_cells(ours_c) == ["4.00", "4.00"]
    assert ratio_cells(peer) == ratio_cells(newer) == ratio_cells(ours.twin) == ["–", "–"]


def test_ratios_pair_rounds_and_report_median_and_min():
    ours = _entry("ours a", "a")
    ours.twin = _entry("old ours a")
    ours.rates, ours.twin.rates = [10.0, 30.0, 20.0], [10.0, 10.0, 20.0]
    assert ratio_cells(ours) == ["1.00", "1.00"]
    ours.rates = [9.0, 30.0, 40.0]
    assert ratio_cells(ours) == ["2.00", "0.90"]


def test_a_tree_that_knows_none_of_the_models_is_an_error():
    with pytest.raises(CompareError, match="none of these models could be built there"):
        add_old_twins([_entry("ours b", "b")], FakeTree(), Entry)
