"""Training-side data module: the rigid-body data module plus exact resumption, caching and
optional automatic generation of a small dataset.

:class:`TrainingDataModule` extends :class:`experiments.rigid_body.dataset.RigidBodyDataModule`:

* the training loader uses :class:`ResumableSampler`, a :class:`DistributedSampler` (so Lightning
  keeps it under DDP, and each rank gets its own shard) whose permutation depends only on
  ``(seed, epoch)`` and which skips the batches already consumed in the current epoch when a run
  is resumed from a mid-epoch checkpoint - ``--ckpt_path`` continues with exactly the batches an
  uninterrupted run would have seen;
* batches are made as in every loader of the base class (one vectorised gather per batch,
  :meth:`~experiments.rigid_body.dataset.RigidBodyDataModule._loader`), the training batches in the
  order of that sampler;
* loaded arrays and built datasets are cached in-process (keyed by the resolved data directory
  and the manifest's modification time), so many short runs (scaling sweeps) pay the loading once;
* ``auto_generate=True``: if ``data_dir`` holds no dataset, a small one is generated there (in
  ``prepare_data``, i.e. once per node under DDP) with :func:`generate_dataset` and
  ``auto_generate_trajectories`` trajectories of ``bodies`` bodies; otherwise a missing dataset
  fails with a message giving the generation command.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from torch.utils.data import DataLoader, DistributedSampler

from experiments.rigid_body.dataset import RigidBodyDataModule
from experiments.settings import DATA_DEFAULTS as D, DataSettings, check_data_settings, with_parameters

__all__ = ["ResumableSampler", "ResumableLoader", "TrainingDataModule", "load_cached_arrays", "clear_cache",
           "missing_data_message"]

#: frames per trajectory of the benchmark's task (the scaling presets' ``data.sim.frames``)
BENCHMARK_FRAMES = 16

_ARRAYS: dict = {}
_DATASETS: dict = {}


def clear_cache() -> None:
    """Forget cached arrays and datasets."""
    _ARRAYS.clear()
    _DATASETS.clear()


def _manifest_key(data_dir: Path) -> tuple:
    root = Path(data_dir).resolve()
    m = root / "manifest.json"
    st = m.stat()
    return str(root), st.st_mtime_ns, st.st_size


def missing_data_message(data_dir: Path, bodies: int = 4, frames: int | None = None) -> str:
    return (f"no rigid-body dataset in {data_dir} (missing manifest.json). Generate one with\n"
            f"    python -m experiments.rigid_body.generate --num-trajectories 1000 --bodies {bodies} "
            f"--frames {frames or BENCHMARK_FRAMES} --seed 0 --out {data_dir}\n"
            "or pass --data.auto_generate true to generate a small one automatically.")


def incomplete_data_message(data_dir: Path) -> str:
    return (f"the dataset in {data_dir} is incomplete (its generation was interrupted); rerun the command that "
            f"generated it to resume (python -m experiments.rigid_body.generate ... --out {data_dir}), or pass "
            "--data.auto_generate true to resume the automatic one")


def _regenerate_hint(data_dir: Path) -> str:
    """How to regenerate the dataset in ``data_dir``: the command of its manifest (rerunning it regenerates
    missing or corrupted shards)."""
    from experiments.rigid_body.generate import generation_command
    from experiments.rigid_body.storage import ShardError, read_manifest

    try:
        command = generation_command(data_dir, read_manifest(data_dir)["config"])
    except (ShardError, KeyError, TypeError):  # no readable manifest to take the settings from
        command = f"python -m experiments.rigid_body.generate ... --out {data_dir}"
    return f"rerun the command that generated it to regenerate it: {command}"


def load_cached_arrays(data_dir: str | os.PathLike) -> tuple[dict, dict]:
    """``storage.load_arrays(data_dir)``, cached per process.

    Raises
    ------
    FileNotFoundError
        Without a dataset in ``data_dir``, giving the command that generates one.
    ShardError
        For a missing, corrupted or truncated shard, naming the file and the command that regenerates it.
    """
    from experiments.rigid_body.storage import ShardError, load_arrays

    data_dir = Path(data_dir)
    if not (data_dir / "manifest.json").exists():
        raise FileNotFoundError(missing_data_message(data_dir))
    key = _manifest_key(data_dir)
    if key not in _ARRAYS:
        for k in [k for k in _ARRAYS if k[0] == key[0]]:  # stale versions of the same directory
            del _ARRAYS[k]
        try:
            _ARRAYS[key] = load_arrays(data_dir)
        except ShardError as err:
            raise ShardError(f"{err}; {_regenerate_hint(data_dir)}") from None
    return _ARRAYS[key]


class ResumableSampler(DistributedSampler):
    """Shuffling sampler: permutation a function of ``(seed, epoch)``; one-shot skipping for resume.

    With ``num_replicas=1, rank=0`` it works without a process group.
    """

    def __init__(self, dataset, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self._skip = 0

    def skip(self, n: int) -> None:
        """Skip the first ``n`` indices of the next iteration (only)."""
        self._skip = max(0, int(n))

    def __iter__(self):
        indices = list(super().__iter__())
        skip, self._skip = self._skip, 0
        return iter(indices[skip:])


class ResumableLoader(DataLoader):
    """DataLoader marked resumable for Lightning (``state_dict`` / ``load_state_dict``).

    The resume position is not stored here: :class:`TrainingDataModule` derives it from the
    trainer's restored progress counters and tells the :class:`ResumableSampler` to skip.
    """

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        pass


class TrainingDataModule(RigidBodyDataModule):
    """:class:`RigidBodyDataModule` for training (see the module docstring).

    Parameters
    ----------
    data_dir, horizon, batch_size, num_workers, max_train_trajectories, seed, split_fractions, \
translation_scale, bodies, auto_generate, auto_generate_trajectories, frames, drop_last, shuffle_seed, \
min_contact_fraction
        The fields of :class:`experiments.settings.DataSettings`, where they are defined with their defaults
        and checked (:func:`~experiments.settings.check_data_settings`). The command line's ``--data.*``;
        ``--help`` shows the descriptions.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike = D.data_dir,
        horizon: int = D.horizon,
        batch_size: int = D.batch_size,
        num_workers: int = D.num_workers,
        max_train_trajectories: int | None = D.max_train_trajectories,
        seed: int = D.seed,
        split_fractions: tuple[float, float, float] = D.split_fractions,
        translation_scale: float = D.translation_scale,
        bodies: int = D.bodies,
        auto_generate: bool = D.auto_generate,
        auto_generate_trajectories: int = D.auto_generate_trajectories,
        frames: int | None = D.frames,
        drop_last: bool = D.drop_last,
        shuffle_seed: int | None = D.shuffle_seed,
        min_contact_fraction: float | None = D.min_contact_fraction,
    ):
        check_data_settings({k: v for k, v in locals().items() if k not in ("self", "__class__", "data_dir")})
        super().__init__(data_dir, horizon=horizon, batch_size=batch_size, num_workers=num_workers,
                         max_train_trajectories=max_train_trajectories, seed=seed,
                         split_fractions=split_fractions, translation_scale=translation_scale,
                         min_contact_fraction=min_contact_fraction)
        self.bodies, self.auto_generate = int(bodies), bool(auto_generate)
        self.auto_generate_trajectories, self.drop_last = int(auto_generate_trajectories), bool(drop_last)
        self.frames = None if frames is None else int(frames)
        self.shuffle_seed = self.seed if shuffle_seed is None else int(shuffle_seed)
        self.manifest = None
        self._sampler = None

    # ------------------------------------------------------------------ data presence

    def _complete(self) -> bool | None:
        """None: no dataset; False: an interrupted generation; True: a complete dataset."""
        from experiments.rigid_body.storage import read_manifest

        manifest = read_manifest(self.data_dir)
        return None if manifest is None else manifest.get("complete") is True

    def _no_data_error(self, state: bool | None) -> FileNotFoundError:
        return FileNotFoundError(missing_data_message(self.data_dir, self.bodies, self.frames) if state is None else
                                 incomplete_data_message(self.data_dir))

    def prepare_data(self) -> None:
        state = self._complete()
        if state:
            return
        if not self.auto_generate:
            raise self._no_data_error(state)
        from experiments.rigid_body.generate import generate_dataset

        verb = "generating" if state is None else "resuming the interrupted generation of"
        print(f"[experiments.train] no complete dataset in {self.data_dir}: {verb} {self.auto_generate_trajectories} "
              f"trajectories with {self.bodies} bodies (auto_generate=True)", flush=True)
        sim = {"frames": BENCHMARK_FRAMES if self.frames is None else self.frames}
        generate_dataset(self.data_dir, self.auto_generate_trajectories, bodies=self.bodies, seed=self.seed,
                         workers=min(4, os.cpu_count() or 1), progress=True, **sim)

    def setup(self, stage: str | None = None) -> None:
        if self.train is not None:
            return
        state = self._complete()
        if not state:
            # prepare_data runs on local rank 0 only; other ranks (or direct use) end up here
            raise self._no_data_error(state)
        arrays, self.manifest = load_cached_arrays(self.data_dir)
        frames = int(arrays["positions"].shape[1])
        if self.frames is not None and frames != self.frames:
            raise ValueError(f"dataset {self.data_dir} has {frames} frames per trajectory but frames={self.frames}; "
                             f"pass --data.frames {frames} to train on it, or another --data.data_dir")
        found = int(arrays["positions"].shape[2])
        if found != self.bodies:
            raise ValueError(f"dataset {self.data_dir} has {found} bodies per scene but bodies={self.bodies}; "
                             f"set --data.bodies {found}")
        key = (_manifest_key(self.data_dir), self.horizon, self.split_fractions, self.seed,
               self.max_train_trajectories, self.translation_scale, self.min_contact_fraction)
        if key not in _DATASETS:
            _DATASETS[key] = self._build(arrays, self.manifest)
        self._assign(_DATASETS[key])
        for name in ("train", "val", "test"):
            if len(getattr(self, name)) == 0:
                raise ValueError(f"the {name} split of {self.data_dir} is empty; generate more trajectories")

    # ------------------------------------------------------------------ loaders

    def _trainer_state(self) -> tuple[int, int, int]:
        """(world_size, global_rank, training batches already consumed in the current epoch)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0, 0
        consumed = 0
        loop = trainer.fit_loop
        if loop.restarting:
            # `processed` (not `completed`): a checkpoint written in on_train_batch_end has the
            # batch processed but not yet completed; Lightning completes it on restart
            consumed = int(loop.epoch_loop.batch_progress.current.processed)
        return int(trainer.world_size), int(trainer.global_rank), consumed

    def train_dataloader(self) -> DataLoader:
        world, rank, consumed = self._trainer_state()
        self._sampler = ResumableSampler(self.train, num_replicas=world, rank=rank, shuffle=True,
                                         seed=self.shuffle_seed, drop_last=False)
        if consumed:
            per_epoch = len(self._sampler) // self.batch_size if self.drop_last else \
                math.ceil(len(self._sampler) / self.batch_size)
            if consumed < per_epoch:
                self._sampler.skip(consumed * self.batch_size)
        return self._loader(self.train, self._sampler, drop_last=self.drop_last, loader=ResumableLoader)


# the command line's --help reads each option's description from the class docstring: the settings' own
TrainingDataModule.__doc__ = with_parameters(TrainingDataModule.__doc__, DataSettings)
