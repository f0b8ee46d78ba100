"""A run's settings: one definition with its defaults and one validator, for the CLI, the module, the data
module, the sweep and the shipped configs."""

from __future__ import annotations

import inspect
from dataclasses import asdict, fields
from pathlib import Path

import pytest
import yaml

from experiments.rigid_body.dataset import RigidBodyDataModule
from experiments.settings import (DATA_DEFAULTS, MODEL_DEFAULTS, SPEC_DEFAULTS, SPEC_KEYS, DataSettings, ModelSettings,
                                  check_data_settings, check_model_settings, check_spec, spec_data_settings,
                                  spec_module_settings, spec_settings)
from experiments.training import BodyDynamicsModule, TrainingDataModule

REPO = Path(__file__).resolve().parents[2]


def _defaults(cls) -> dict:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return {p.name: p.default for p in params}


@pytest.mark.parametrize("cls, settings", [(BodyDynamicsModule, ModelSettings), (TrainingDataModule, DataSettings)])
def test_the_modules_take_their_arguments_and_defaults_from_the_settings(cls, settings):
    assert _defaults(cls) == asdict(settings())  # the same names, in the same order, with the same defaults
    assert list(_defaults(cls)) == [f.name for f in fields(settings)]
    for name in _defaults(cls):  # the command line's --help describes every option (the settings' docstring)
        assert f"\n    {name} : " in cls.__doc__, name
    base = _defaults(RigidBodyDataModule)
    assert {k: v for k, v in base.items() if k != "data_dir"} == {k: getattr(DATA_DEFAULTS, k) for k in base
                                                                   if k != "data_dir"}


def test_a_sweep_run_has_the_settings_defaults(tmp_path):
    """A spec that names nothing builds the module and the data module of the defaults, but for what the
    sweep decides itself (steps, warm-up, split and shuffle seeds, no workers)."""
    from experiments.training.run import build_from_spec

    s = spec_settings({"algebra": "pga"})
    module, dm, _ = build_from_spec({"algebra": "pga"}, tmp_path)
    expected = {**asdict(MODEL_DEFAULTS), "algebra": "projective", "total_steps": SPEC_DEFAULTS["steps"],
                "warmup_steps": 5}  # 5% of 100 steps
    assert dict(module.hparams) == expected
    assert s["warmup_steps"] == 5 and spec_settings({"scheduler": "wsd"})["warmup_steps"] == 50
    data = {k: getattr(dm, k) for k in spec_data_settings(s)}
    assert data == {**{k: getattr(DATA_DEFAULTS, k) for k in data}, "shuffle_seed": 0}
    assert set(spec_module_settings(s)) == {f.name for f in fields(ModelSettings)}
    assert {"compile", "betas", "lr", "bodies", "steps", "num_threads", "name"} <= SPEC_KEYS


def test_model_settings_are_checked_and_canonicalised():
    s = check_model_settings({"family": " GATR ", "algebra": "PGA", "betas": [0.9, 0.95]})
    assert (s["family"], s["algebra"], s["betas"]) == ("gatr", "projective", (0.9, 0.95))
    assert check_model_settings({"family": "mlp", "algebra": "none"})["algebra"] is None
    with pytest.raises(ValueError, match=r"unknown model setting\(s\) 'widht'; valid: family, algebra, width"):
        check_model_settings({"widht": 3})


@pytest.mark.parametrize("settings, message", [
    ({"family": "resnet"}, r"unknown model family 'resnet'; valid families: gatr, transformer, mlp"),
    ({"family": "mlp", "algebra": "pga"}, r"family 'mlp' takes no algebra .* only valid for the families \['gatr'\]"),
    ({"algebra": None}, r"family 'gatr' needs an algebra; valid algebras: .*conformal"),
    ({"algebra": 3}, r"algebra must be a name, an alias or a factory"),
    ({"algebra": "pga", "width": 0}, r"width must be a positive integer, got 0"),
    ({"algebra": "pga", "depth": 1.5}, r"depth must be a positive integer, got 1.5"),
    ({"algebra": "pga", "augment": "yes"}, r"augment must be true or false, got 'yes'"),
    ({"algebra": "pga", "compile": 1}, r"compile must be true or false"),
    ({"algebra": "pga", "scheduler": "cos"}, r"unknown scheduler 'cos'; valid schedulers: cosine, linear"),
    ({"algebra": "pga", "lr": float("nan")}, r"lr must be finite"),
    ({"algebra": "pga", "lr": 0.0}, r"need lr > 0"),
    ({"algebra": "pga", "cooldown_fraction": 0.0}, r"cooldown_fraction must be in \(0, 1\]"),
    ({"algebra": "pga", "warmup_steps": -1}, r"warmup_steps must be an integer >= 0"),
    ({"algebra": "pga", "model_kwargs": {"compile": True}}, r"give compile as a setting of its own"),
])
def test_bad_model_settings_are_named(settings, message):
    with pytest.raises(ValueError, match=message):
        check_model_settings(settings)
    with pytest.raises(ValueError, match=message):  # the module and a sweep run: the same check
        BodyDynamicsModule(**settings)
    with pytest.raises(ValueError, match=message):
        check_spec(settings)


@pytest.mark.parametrize("settings, message", [
    ({"batch_size": 0}, r"batch_size must be a positive integer, got 0"),
    ({"frames": 0}, r"frames must be a positive integer or null, got 0"),
    ({"min_contact_fraction": 1.5}, r"min_contact_fraction must be in \[0, 1\] or null"),
    ({"split_fractions": (0.5, -0.1, 0.6)}, r"split_fractions must be three shares >= 0"),
    ({"auto_generate": "true"}, r"auto_generate must be true or false"),
    ({"num_workers": -1}, r"num_workers must be an integer >= 0"),
])
def test_bad_data_settings_are_named(settings, message):
    with pytest.raises(ValueError, match=message):
        check_data_settings(settings)
    with pytest.raises(ValueError, match=message):
        TrainingDataModule("unused", **settings)


def test_sweep_settings_are_checked():
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        check_spec({"algebra": "pga", "steps": 0})
    with pytest.raises(ValueError, match="gradient_clip_val must be a finite number >= 0"):
        check_spec({"algebra": "pga", "gradient_clip_val": -1.0})
    with pytest.raises(ValueError, match="num_threads must be an integer >= 0"):
        check_spec({"algebra": "pga", "num_threads": -2})


def test_the_shipped_configs_set_only_what_they_choose():
    """A config names its run (family, algebra, size) and what it sets differently from the defaults; a
    repeated default is a second definition that drifts (the loggers, seed and precision are the CLI's)."""
    from experiments.train import TRAINER_DEFAULTS

    kept = {"family", "width", "depth", "lr"}  # the run's identity, its size and the rate a pilot chose for it
    for path in sorted((REPO / "experiments/configs").glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        assert set(cfg) == {"trainer", "model", "data"}, path.name
        for section, defaults in (("model", MODEL_DEFAULTS), ("data", DATA_DEFAULTS)):
            repeated = {k for k, v in cfg[section].items() if k not in kept and getattr(defaults, k) == v}
            assert not repeated, (path.name, section, repeated)
        repeated = {k for k, v in cfg["trainer"].items() if k in TRAINER_DEFAULTS and TRAINER_DEFAULTS[k] == v}
        assert not repeated, (path.name, "trainer", repeated)
        assert "logger" not in cfg["trainer"], path.name
