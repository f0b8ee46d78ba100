"""Study configs: presets, validation errors, run ids, shards."""

import copy

import pytest

from experiments.scaling import grid
from experiments.scaling.grid import (ConfigError, StudyConfig, estimate_flops, load_config, parse_shard, run_id,
                                      shard_specs)

BASE = {
    "name": "t",
    "families": [
        {"name": "gatr-pga", "family": "gatr", "algebra": "pga"},
        {"name": "tf", "family": "transformer", "augment": True},
    ],
    "model_sizes": [{"width": 4, "depth": 1}, {"width": 8, "depth": 2}],
    "steps": [10, 20],
    "train_trajectories": [16],
    "seeds": [0, 1],
    "data_sweep": {"train_trajectories": [4, 8, 16]},
    "fixed": {"batch_size": 8, "lr": 1e-3},
    "data": {"num_trajectories": 32, "bodies": 3},
}


def cfg(**changes):
    d = copy.deepcopy(BASE)
    d.update(changes)
    return d


def test_expand_deterministic_and_unique():
    c = StudyConfig.from_dict(cfg())
    specs = c.expand()
    # main grid 2 fam x 2 sizes x 2 steps x 1 n x 2 seeds = 16; sweep adds n=4,8 (n=16 duplicate) x 2 fam x 2 seeds
    assert len(specs) == 16 + 8
    ids = [run_id(s) for s in specs]
    assert len(set(ids)) == len(ids)
    assert ids == [run_id(s) for s in StudyConfig.from_dict(cfg()).expand()]
    s = specs[0]
    for k in grid.SPEC_KEYS + ("batch_size", "lr", "bodies"):
        assert k in s
    assert s["algebra"] == "projective" and s["bodies"] == 3
    assert ids[0].startswith("gatr-pga_w4_d1_s10_n16_seed0-") and len(ids[0].split("-")[-1]) == 8
    tf = [s for s in specs if s["family"] == "transformer"][0]
    assert tf["algebra"] is None and tf["augment"] is True
    # sweep runs use the largest size and steps by default
    sweep = [s for s in specs if s["train_trajectories"] == 4]
    assert all(s["width"] == 8 and s["depth"] == 2 and s["steps"] == 20 for s in sweep)
    # the id depends on every spec value
    s2 = dict(s, lr=2e-3)
    assert run_id(s2) != run_id(s)


@pytest.mark.parametrize("preset", ["quick", "quick-cosine", "paper", "standard"])
def test_presets_load(preset):
    c = load_config(preset=preset)
    lrs = None
    if c.pilot is not None:  # a stand-in choice: the grid's shape does not depend on the rates chosen
        lrs = {grid.pilot_key(f["name"], z["width"], z["depth"]): 1e-3 for f, z in c.pilot_sizes()}
    specs = c.expand(lrs)
    assert len(specs) == len({run_id(s) for s in specs})
    assert c.to_dict() and StudyConfig.from_dict(c.to_dict()).expand(lrs) == specs


def test_standard_preset_requirements():
    """Issue: >= 3 model sizes >= 8x apart in parameters for GATr-iPGA, GATr-Euclidean and the centred
    transformer, budgets spanning >= 30x, 3 seeds, WSD, a learning-rate pilot, and a data sweep."""
    from experiments.models import build_model

    c = load_config(preset="standard")
    lrs = {grid.pilot_key(f["name"], z["width"], z["depth"]): 1e-3 for f, z in c.pilot_sizes()}
    specs = c.expand(lrs)
    assert c.pilot is not None and c.fixed["scheduler"] == "wsd" and c.seeds == [0, 1, 2]
    main = [s for s in specs if s["train_trajectories"] == max(c.train_trajectories)]
    for name in ("gatr-ipga", "gatr-ega", "transformer-centred"):
        runs = [s for s in main if s["name"] == name]
        sizes = sorted({(s["width"], s["depth"]) for s in runs})
        assert len(sizes) >= 3
        fam = next(f for f in c.families if f["name"] == name)
        params = [build_model(fam["family"], fam["algebra"], width=w, depth=d, num_heads=4, num_bodies=4,
                              **(fam["hparams"].get("model_kwargs") or {})).num_parameters() for w, d in sizes]
        assert max(params) >= 8 * min(params), (name, params)
        budgets = sorted({s["budget"] for s in runs})
        assert budgets[-1] >= 30 * budgets[0]
        # iso-FLOP profiles: at least three budgets that every size of the family reaches
        full = [b for b in budgets if len({(s["width"], s["depth"]) for s in runs if s["budget"] == b}) == len(sizes)]
        assert len(full) >= 3, (name, full)
        assert all(s["steps"] >= c.min_steps for s in runs)
        assert {s["seed"] for s in runs} == {0, 1, 2}
    sweep = {s["name"] for s in specs if s["train_trajectories"] != max(c.train_trajectories)}
    assert {"gatr-ipga", "transformer-centred", "transformer-aug"} <= sweep


def test_budgets_place_each_size_by_its_flops():
    d = cfg(budgets=[2e8, 8e8], min_steps=5, data_sweep=None,
            families=[{"name": "m", "family": "mlp", "model_sizes": [{"width": 4, "depth": 1}, {"width": 64, "depth": 2}]}])
    del d["steps"]
    c = StudyConfig.from_dict(d)
    specs = c.expand()
    expected = set()
    for w, dd in ((4, 1), (64, 2)):
        per_step = estimate_flops({**specs[0], "width": w, "depth": dd, "steps": 1})
        expected |= {(w, b) for b in (2e8, 8e8) if round(b / per_step) >= 5}
    assert {(s["width"], s["budget"]) for s in specs} == expected and len(expected) == 3  # the wide model: 8e8 only
    for s in specs:
        assert s["steps"] >= 5 and estimate_flops(s) == pytest.approx(s["budget"], rel=0.1)
    assert StudyConfig.from_dict(c.to_dict()).expand() == specs


@pytest.mark.parametrize("change, match", [
    ({"budgets": [1e9], "steps": [10]}, r"steps or budgets, not both"),
    ({"budgets": [-1.0]}, r"budgets\[0\]: expected a positive number"),
    ({"pilot": {"lrs": {"gatr": [1e-3]}, "steps": 5}}, r"at least 2 positive"),
    ({"pilot": {"lrs": {"gatr": [1e-3, 3e-3]}, "steps": 5}}, r"no learning rates for family 'tf'"),
    ({"pilot": {"lrs": {"gatr": [1e-3, 3e-3], "transformer": [1e-3, 1e-2]}}}, r"exactly one of budget"),
    ({"pilot": {"lrs": {"gatr": [1e-3, 3e-3], "tf": [1e-3, 1e-2]}, "steps": 5, "sed": 1}}, r"unknown key 'sed'"),
])
def test_bad_budget_and_pilot_configs(change, match):
    d = cfg(**change)
    if "budgets" in change and "steps" not in change:
        del d["steps"]
    with pytest.raises(ConfigError, match=match):
        StudyConfig.from_dict(d)


def test_a_pilot_study_needs_its_choice_to_expand():
    c = StudyConfig.from_dict(cfg(pilot={"lrs": {"gatr": [1e-3, 3e-3], "transformer": [1e-3, 1e-2]}, "steps": 5}))
    with pytest.raises(ConfigError, match="pilot"):
        c.expand()
    lrs = {grid.pilot_key(f["name"], z["width"], z["depth"]): 0.5 for f, z in c.pilot_sizes()}
    assert {s["lr"] for s in c.expand(lrs)} == {0.5}


def test_quick_preset_requirements():
    """All four algebras and every baseline variant, >= 3 seeds per main-grid config, and compute ranges
    that overlap so families can be compared at equal compute (exact FLOP counts of the models)."""
    c = load_config(preset="quick")
    specs = c.expand()
    assert len(specs) <= 60  # a proxy for its time budget (<= 15 min on 2 cores; measured in the README)
    names = {f["name"]: f for f in c.families}
    assert {f["algebra"] for f in c.families if f["family"] == "gatr"} == {
        "euclidean", "projective", "projective-distance", "conformal"}
    tf = [f for f in c.families if f["family"] == "transformer"]
    assert {(f["augment"], (f["hparams"].get("model_kwargs") or {}).get("centre", False)) for f in tf} == {
        (False, False), (False, True), (True, False)}
    assert any(f["family"] == "mlp" for f in c.families)
    main = [s for s in specs if s["train_trajectories"] == max(c.train_trajectories)]
    seeds, ranges = {}, {}
    for s in main:
        seeds.setdefault((s["name"], s["width"], s["depth"], s["steps"]), set()).add(s["seed"])
        lo, hi = ranges.get(s["name"], (float("inf"), 0.0))
        ranges[s["name"]] = (min(lo, estimate_flops(s)), max(hi, estimate_flops(s)))
    assert min(len(v) for v in seeds.values()) >= 3
    assert set(ranges) == set(names)
    assert max(lo for lo, _ in ranges.values()) * 2 <= min(hi for _, hi in ranges.values())  # a shared decade part
    sweep = {s["name"] for s in specs if s["train_trajectories"] != max(c.train_trajectories)}
    assert any(names[n]["family"] == "gatr" for n in sweep)
    assert {names[n]["augment"] for n in sweep if names[n]["family"] == "transformer"} == {False, True}


def test_family_axes_override_the_top_level_ones():
    c = StudyConfig.from_dict(cfg(families=[
        {"name": "a", "family": "mlp", "model_sizes": [{"width": 3, "depth": 1}], "steps": [7]},
        {"name": "b", "family": "mlp"}], data_sweep={"train_trajectories": [4], "seeds": [5]}))
    specs = c.expand()
    a = [s for s in specs if s["name"] == "a" and s["seed"] != 5]
    assert {(s["width"], s["steps"]) for s in a} == {(3, 7)}
    assert {(s["width"], s["steps"]) for s in specs if s["name"] == "b" and s["seed"] != 5} == {
        (sz["width"], st) for sz in c.model_sizes for st in c.steps}
    sweep = [s for s in specs if s["seed"] == 5]
    assert {(s["name"], s["width"], s["steps"]) for s in sweep} == {
        ("a", 3, 7), ("b", max(c.model_sizes, key=lambda z: z["width"] * z["depth"])["width"], max(c.steps))}
    assert StudyConfig.from_dict(c.to_dict()).expand() == specs


@pytest.mark.parametrize(
    "change, match",
    [
        ({"families": [{"family": "resnet"}]},
         r"families\[0\]\.family: unknown model family 'resnet'.*gatr, transformer, mlp"),
        ({"families": [{"family": "gatr", "algebra": "quaternionic"}]}, r"unknown algebra 'quaternionic'.*conformal"),
        ({"families": [{"family": "gatr"}]}, r"families\[0\]\.algebra: family 'gatr' needs an algebra"),
        ({"families": [{"family": "mlp", "algebra": "pga"}]}, r"only valid for the families \['gatr'\]"),
        ({"families": [{"family": "mlp", "augment": "yes"}]}, r"augment"),
        ({"families": [{"family": "mlp", "colour": 1}]}, r"unknown key 'colour'.*valid keys"),
        ({"familys": []}, r"unknown key 'familys'.*families"),
        ({"steps": [0]}, r"steps\[0\]"),
        ({"model_sizes": [{"width": 4}]}, r"missing key 'depth'"),
        ({"model_sizes": [{"width": 4, "depth": 1, "heads": 2}]}, r"unknown key 'heads'"),
        ({"fixed": {"width": 3}}, r"fixed: key 'width'"),
        ({"data": {"num_trajectories": 8}}, r"exceeds data.num_trajectories"),
        ({"data": {"bodys": 8}}, r"unknown key 'bodys'"),
        ({"data_sweep": {"train_trajectories": [4], "families": ["nope"]}}, r"unknown family name 'nope'"),
        ({"families": [{"family": "mlp"}, {"family": "mlp"}]}, r"duplicate family names"),
        ({"families": [{"family": "mlp", "steps": [0]}]}, r"families\[0\]\.steps\[0\]"),
        ({"families": [{"family": "mlp", "model_sizes": [{"width": 2}]}]}, r"families\[0\]\.model_sizes\[0\]: missing"),
        ({"data_sweep": {"train_trajectories": [4], "width": 3}}, r"both width and depth"),
    ],
)
def test_bad_configs(change, match):
    with pytest.raises(ConfigError, match=match):
        StudyConfig.from_dict(cfg(**change))


def test_algebra_aliases():
    fams = [{"family": "gatr", "algebra": a} for a in ("ega", "pga", "ipga", "cga", "Conformal")]
    fams[-1]["name"] = "gatr-cga2"
    c = StudyConfig.from_dict(cfg(families=fams, data_sweep=None))
    assert [f["algebra"] for f in c.families] == ["euclidean", "projective", "projective-distance", "conformal",
                                                  "conformal"]
    assert c.families[0]["name"] == "gatr-euclidean"


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'huge'.*quick"):
        load_config(preset="huge")


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_shards_partition_grid(n):
    specs = StudyConfig.from_dict(cfg()).expand()
    all_ids = [run_id(s) for s in specs]
    shards = [[run_id(s) for s in shard_specs(specs, f"{i}/{n}")] for i in range(n)]
    union = [x for sh in shards for x in sh]
    assert sorted(union) == sorted(all_ids)  # every run exactly once
    assert len(union) == len(set(union))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


@pytest.mark.parametrize("bad", ["3/3", "1", "a/b", "-1/2", "0/0", "1/2/3"])
def test_bad_shard(bad):
    with pytest.raises(ConfigError, match="shard"):
        parse_shard(bad)


def test_parse_shard_ok():
    assert parse_shard("2/5") == (2, 5) and parse_shard(None) is None
