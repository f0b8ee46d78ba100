"""Small callbacks for training diagnostics."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

__all__ = ["ParameterChecksum", "parameter_checksum", "FinalModelCheckpoint", "SaveAtStep"]


class FinalModelCheckpoint(ModelCheckpoint):
    """:class:`ModelCheckpoint` that also writes ``last.ckpt`` at the final optimiser step.

    Lightning's checkpoint only saves after validation / at epoch ends / every N steps, so a run
    stopped by ``max_steps`` between those points would otherwise leave a stale ``last.ckpt``.
    The extra save happens in ``on_train_batch_end`` of the step that reaches ``max_steps``, NOT in
    ``on_train_end``: by then Lightning has marked the (unfinished) epoch as completed, and a
    run resumed from such a checkpoint would start the next epoch's data order (inexact resume).
    Runs that stop otherwise (``max_time``, early stopping) get ``last.ckpt`` in ``on_train_end``
    as a fallback; resuming those mid-epoch is not exact.
    """

    _final_step: int | None = None

    def _may_save(self, trainer: L.Trainer) -> bool:
        return bool(self.save_last) and not trainer.fast_dev_run and not trainer.sanity_checking

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        step = trainer.global_step
        if 0 < trainer.max_steps <= step and self._may_save(trainer) and self._last_global_step_saved != step:
            previous = self._last_global_step_saved
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            # leave the bookkeeping alone so a validation at this same step still saves top-k
            self._last_global_step_saved = previous
            self._final_step = step

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        step = trainer.global_step
        if self._may_save(trainer) and step not in (self._final_step, self._last_global_step_saved):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


def parameter_checksum(module: torch.nn.Module) -> str:
    """SHA-256 of all parameters (names, shapes and float32 bytes), independent of device."""
    h = hashlib.sha256()
    for name, p in sorted(module.named_parameters()):
        h.update(name.encode())
        h.update(str(tuple(p.shape)).encode())
        h.update(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


class ParameterChecksum(L.Callback):
    """At the end of training, every rank writes ``out_dir/rank{R}.json`` with a parameter checksum.

    Under DDP the gradient-synchronised weights must be identical on all ranks, so the files must
    agree (used by the DDP test; also handy to check multi-node runs).
    """

    def __init__(self, out_dir: str | os.PathLike = "checksums"):
        self.out_dir = Path(out_dir)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        info = {"rank": trainer.global_rank, "world_size": trainer.world_size, "global_step": trainer.global_step,
                "checksum": parameter_checksum(pl_module),
                "train_loss": float(trainer.callback_metrics.get("train/loss", float("nan")))}
        (self.out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(info))


class SaveAtStep(L.Callback):
    """Checkpoint to ``path`` (atomically) in ``on_train_batch_end`` of optimiser step ``step``.

    Saved there, not at the end of training, so that resuming from it continues the epoch's data
    order exactly (see :class:`FinalModelCheckpoint`); the WSD trunk's branch points use it.
    """

    def __init__(self, path: str | os.PathLike, step: int):
        self.path, self.step = Path(path), int(step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step and trainer.is_global_zero:
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            trainer.save_checkpoint(tmp)
            os.replace(tmp, self.path)
