"""Small callbacks for training diagnostics."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

__all__ = ["ParameterChecksum", "parameter_checksum", "FinalModelCheckpoint"]


class FinalModelCheckpoint(ModelCheckpoint):
    """:class:`ModelCheckpoint` that also writes ``last.ckpt`` when training ends.

    Lightning's checkpoint only saves after validation / at epoch ends / every N steps, so a run
    stopped by ``max_steps`` between those points would otherwise leave a stale ``last.ckpt``.
    """

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if (self.save_last and not trainer.fast_dev_run and not trainer.sanity_checking
                and self._last_global_step_saved != trainer.global_step):
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
