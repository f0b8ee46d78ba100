"""Milliseconds per training step of the quick preset's models, from one checkout of this project.

One step = forward, loss, backward and the training module's own optimiser (``configure_optimizers``), at one
torch thread (what each run of ``--jobs 2`` gets), on eight batches of the quick preset's data; the median of
five passes. Prints one JSON line, so two releases can be compared in alternating processes:

    git worktree add /tmp/prev <commit>
    for tree in /tmp/prev . /tmp/prev .; do python docs/scripts/small_step_time.py $tree; done

(``--data`` is a dataset folder, by default the quick study's ``runs/quick/data``; ``--batch-size`` scales the
batch, e.g. 192 to see what training three seeds as one batched model could save: the step's fixed cost is
what a larger batch does not multiply.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

#: The quick preset's model of each family (experiments/scaling/presets).
FAMILIES = {
    "gatr-pga": dict(family="gatr", algebra="projective", width=8, depth=2),
    "gatr-ipga": dict(family="gatr", algebra="projective-distance", width=8, depth=2),
    "gatr-ega": dict(family="gatr", algebra="euclidean", width=16, depth=2),
    "gatr-cga": dict(family="gatr", algebra="conformal", width=8, depth=1),
    "transformer-centred": dict(family="transformer", width=32, depth=2, model_kwargs={"centre": True}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tree", help="a checkout of this project (its experiments/ and gatr/ are imported)")
    ap.add_argument("--data", default="runs/quick/data", help="dataset folder (default: runs/quick/data)")
    ap.add_argument("--batch-size", type=int, default=64, help="scenes per batch (default: 64, the preset's)")
    args = ap.parse_args()
    if args.batch_size < 1:
        ap.error(f"--batch-size: expected a positive integer, got {args.batch_size}")
    data = Path(args.data).resolve()
    sys.path.insert(0, str(Path(args.tree).resolve()))
    import torch

    from experiments.training.data import TrainingDataModule
    from experiments.training.module import BodyDynamicsModule, keypoint_mse

    torch.set_num_threads(1)
    dm = TrainingDataModule(data, batch_size=args.batch_size, max_train_trajectories=1600)
    dm.setup("fit")
    loader = iter(dm.train_dataloader())
    batches = [next(loader) for _ in range(8)]
    out = {"tree": args.tree, "batch_size": args.batch_size}
    for name, kwargs in FAMILIES.items():
        torch.manual_seed(0)
        module = BodyDynamicsModule(lr=1e-3, **kwargs)
        opt = module.configure_optimizers()["optimizer"]

        def step(batch):
            opt.zero_grad(set_to_none=True)
            keypoint_mse(module(batch), batch["target_keypoints"]).backward()
            opt.step()

        for batch in batches[:4]:  # warm-up
            step(batch)
        passes = []
        for _ in range(5):
            t0 = time.perf_counter()
            for batch in batches:
                step(batch)
            passes.append((time.perf_counter() - t0) / len(batches) * 1000)
        out[name] = round(sorted(passes)[2], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
