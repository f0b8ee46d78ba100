"""Dataset generation: determinism, resume, errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from experiments.rigid_body.generate import ConfigMismatchError, generate_dataset, main
from experiments.rigid_body.storage import ARRAY_KEYS, ShardError, load_arrays, load_shard

SMALL = dict(num_trajectories=7, bodies=3, seed=11, shard_size=3, frames=8, progress=False)


def _same(a, b):
    for k in ARRAY_KEYS:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = generate_dataset(tmp_path_factory.mktemp("ref"), workers=1, **SMALL)
    return load_arrays(out)


def test_layout_and_manifest(reference):
    arrays, manifest = reference
    assert manifest["complete"] is True
    assert manifest["config"]["seed"] == 11 and manifest["config"]["sim"]["bodies"] == 3
    assert manifest["counts"]["trajectories"] == 7 and "rejected" in manifest["counts"]
    assert isinstance(manifest["version"], str) and manifest["version"]
    assert [s["file"] for s in manifest["shards"]] == [f"shard_{k:05d}.npz" for k in range(3)]
    assert arrays["positions"].shape == (7, 8, 3, 3)
    assert arrays["orientations"].shape == (7, 8, 3, 4)
    np.testing.assert_array_equal(arrays["index"], np.arange(7))
    assert (arrays["contacts"].max(axis=1) > 0).all()


def test_deterministic_across_workers(tmp_path, reference):
    out = generate_dataset(tmp_path / "w2", workers=2, **SMALL)
    _same(load_arrays(out)[0], reference[0])


def test_seed_changes_data(tmp_path, reference):
    out = generate_dataset(tmp_path / "s", workers=1, **{**SMALL, "seed": 12})
    assert not np.array_equal(load_arrays(out)[0]["positions"], reference[0]["positions"])


def test_resume_after_interruption(tmp_path, reference):
    out = generate_dataset(tmp_path / "r", workers=1, **SMALL)
    (out / "shard_00001.npz").unlink()  # never written (killed midway)
    data = (out / "shard_00002.npz").read_bytes()
    (out / "shard_00002.npz").write_bytes(data[: len(data) // 2])  # truncated
    m = json.loads((out / "manifest.json").read_text())
    m["complete"] = False
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ShardError, match="incomplete"):
        load_arrays(out)
    with pytest.warns(RuntimeWarning, match="shard_00002.npz"):
        generate_dataset(out, workers=1, **SMALL)
    _same(load_arrays(out)[0], reference[0])
    assert not list(out.glob(".*tmp*"))


def test_rerun_skips_complete(tmp_path):
    out = generate_dataset(tmp_path / "k", workers=1, **SMALL)
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("shard_*.npz")}
    generate_dataset(out, workers=1, **SMALL)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard_*.npz")} == mtimes
    assert json.loads((out / "manifest.json").read_text())["last_run"]["simulated"] == 0


def test_config_mismatch(tmp_path):
    out = generate_dataset(tmp_path / "c", workers=1, **SMALL)
    with pytest.raises(ConfigMismatchError, match=r"sim\.frames.*seed|seed.*sim\.frames"):
        generate_dataset(out, workers=1, **{**SMALL, "frames": 9, "seed": 1})
    # also detected from the shards alone when the manifest is gone
    (out / "manifest.json").unlink()
    with pytest.raises(ConfigMismatchError, match="bodies"):
        generate_dataset(out, workers=1, **{**SMALL, "bodies": 4})


def test_corrupted_shard_error_names_file(tmp_path):
    out = generate_dataset(tmp_path / "x", workers=1, **SMALL)
    bad = out / "shard_00000.npz"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(ShardError, match="shard_00000.npz"):
        load_shard(bad)
    with pytest.raises(ShardError, match="shard_00000.npz"):
        load_arrays(out)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--bodies", "1"], "between 2 and 16"),
        (["--bodies", "17"], "between 2 and 16"),
        (["--num-trajectories", "0"], "positive integer"),
        (["--workers", "-1"], "positive integer"),
        (["--shard-size", "x"], "positive integer"),
        (["--frames", "1"], "at least 2"),
    ],
)
def test_bad_arguments(tmp_path, capsys, args, message):
    base = {"--num-trajectories": "2", "--out": str(tmp_path)}
    argv = [x for k, v in base.items() if k not in args for x in (k, v)] + args
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_python_api_rejects_bad_values(tmp_path):
    with pytest.raises(ValueError):
        generate_dataset(tmp_path, 0)
    with pytest.raises(ValueError):
        generate_dataset(tmp_path, 3, bodies=1)


def test_cli_module(tmp_path):
    cmd = [sys.executable, "-m", "experiments.rigid_body.generate", "--num-trajectories", "4",
           "--bodies", "2", "--out", str(tmp_path / "cli"), "--frames", "6", "--workers", "2",
           "--shard-size", "2", "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "traj/s" in r.stdout
    arrays, _ = load_arrays(tmp_path / "cli")
    assert arrays["positions"].shape == (4, 6, 2, 3)
    r = subprocess.run(cmd[:-5] + ["--frames", "7", "--workers", "2", "--shard-size", "2", "--no-progress"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "sim.frames" in r.stderr


def test_cli_mistakes_are_one_line_errors(tmp_path, capsys):
    from experiments.rigid_body.generate import main
    from experiments.scaling.__main__ import main as scaling_main

    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    with pytest.raises(SystemExit) as exit_info:  # argparse: exit 2 with a usage line
        main(["--num-trajectories", "2", "--out", str(tmp_path / "d"), "--seed", "-1"])
    assert exit_info.value.code == 2 and "non-negative integer" in capsys.readouterr().err
    for out in (a_file, a_file / "below"):
        assert main(["--num-trajectories", "2", "--out", str(out), "--workers", "1", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: cannot write the dataset") and "Traceback" not in err
        assert scaling_main(["run", "--preset", "quick", "--out", str(out), "--no-progress"]) == 2
        assert capsys.readouterr().err.startswith("error:")
