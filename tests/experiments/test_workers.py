"""Sweep and generator workers exit when their parent process is killed (kill -9)."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # field 4 of /proc/PID/stat: the parent pid
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_sweep_workers_exit_when_the_parent_is_killed(tmp_path):
    (tmp_path / "slow_train.py").write_text(textwrap.dedent("""
        import time
        def train(spec, data_dir, run_dir):
            time.sleep(120)
            return {"params": 1, "train_flops": 1.0, "val_loss": 1.0, "test_loss": 1.0, "test_e3_loss": 1.0}
    """))
    script = textwrap.dedent(f"""
        from experiments.scaling.runner import run_study
        cfg = {{"families": [{{"name": "m", "family": "mlp"}}], "model_sizes": [{{"width": 2, "depth": 1}}],
               "steps": [1, 2, 3, 4], "train_trajectories": [4], "data": {{"num_trajectories": 8}}}}
        run_study(cfg, {str(tmp_path / "out")!r}, train_fn="slow_train.train", generate_fn=None,
                  progress=False, jobs=2)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=tmp_path)
    workers = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(list((tmp_path / "out" / "runs").glob("*/spec.json"))) < 2:
            time.sleep(0.2)
        assert len(list((tmp_path / "out" / "runs").glob("*/spec.json"))) >= 2, "the workers never started"
        workers = [p for p in _children(parent.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]
        assert len(workers) == 2, workers
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.time() + 15
        while time.time() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.2)
        assert not any(_alive(p) for p in workers), "workers kept running after their parent died"
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in workers:  # never leave sleeping workers behind, whatever happened above
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _visible_devices(_):
    time.sleep(0.2)  # keep the worker busy so that every worker takes a task
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def test_each_sweep_worker_gets_its_own_gpu():
    """`--jobs K` on a multi-GPU node: worker k sees only its GPU (no GPU is needed to check the
    assignment: it is the environment each worker starts with)."""
    from experiments.workers import device_slots, worker_pool

    assert device_slots(4, visible="0,1,2,3") == ["0", "1", "2", "3"]
    assert device_slots(3, visible="2,5") == ["2", "5", "2"]  # round robin over the GPUs the parent sees
    assert device_slots(4, visible="", count=2) == ["0", "1", "0", "1"]
    assert device_slots(4, visible="0") is None and device_slots(1, visible="0,1") is None
    assert device_slots(2, visible="", count=0) is None  # CPU only: nothing to assign
    with worker_pool(2, devices=["3", "7"]) as pool:
        seen = set(pool.map(_visible_devices, range(6)))
    assert seen == {"3", "7"}
