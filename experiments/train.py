"""Command-line training (LightningCLI) of every model family on the rigid-body data.

Examples::

    python -m experiments.train fit --config experiments/configs/gatr_conformal.yaml
    python -m experiments.train fit --config experiments/configs/gatr_conformal.yaml --model.algebra euclidean
    python -m experiments.train fit --config experiments/configs/transformer.yaml --trainer.max_steps 2000 \\
        --trainer.precision bf16-mixed
    python -m experiments.train fit --config experiments/configs/mlp.yaml \\
        --ckpt_path runs/mlp/version_0/checkpoints/last.ckpt          # resume exactly
    python -m experiments.train fit --config experiments/configs/transformer.yaml \\
        --trainer.strategy ddp --trainer.devices 2 --trainer.num_nodes 1 --trainer.accelerator cpu
    python -m experiments.train test --config experiments/configs/mlp.yaml --ckpt_path PATH
    python -m experiments.train fit --print_config                    # all options with defaults

Model options are ``--model.*`` (:class:`experiments.training.BodyDynamicsModule`), data options
``--data.*`` (:class:`experiments.training.TrainingDataModule`); ``--data.bodies`` also sets
``model.num_bodies``.  Defaults: CSV logger (metrics, config and checkpoints in ``runs/NAME/version_K``)
and TensorBoard logger (``runs/tensorboard/NAME``), a
``ModelCheckpoint`` keeping ``last.ckpt`` (also written when training ends) and the best ``val/loss``
one (``--checkpoint.*``; none with ``--trainer.enable_checkpointing false``),
Lightning's progress bar, and after ``fit`` a test on the plain and E(3)-transformed test sets
(``--test_after_fit false`` to skip).  If ``--data.data_dir`` holds no dataset the run fails with
the command that generates one, unless ``--data.auto_generate true`` (the shipped configs set it)
generates a small one there first.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from jsonargparse import DefaultHelpFormatter
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from experiments.cli import examples, prog
from experiments.rigid_body.storage import ShardError
from experiments.training.callbacks import FinalModelCheckpoint
from experiments.training.data import TrainingDataModule
from experiments.resume import check_resume
from experiments.training.module import BodyDynamicsModule

__all__ = ["TrainingCLI", "main", "cli_main", "run_name", "TRAINER_DEFAULTS", "LOGGER_DEFAULTS"]

TRAINER_DEFAULTS = {"max_steps": 1000, "log_every_n_steps": 10, "precision": "32-true"}
LOGGER_DEFAULTS = [
    {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "runs", "name": "auto"}},
    {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
     "init_args": {"save_dir": "runs/tensorboard", "name": "auto"}},
]


def run_name(model) -> str:
    """``family[_algebra][_centred][_aug]`` of a run's model settings (a logger named ``auto`` uses it).

    Parameters
    ----------
    model : mapping
        The ``model`` settings (:class:`BodyDynamicsModule`'s arguments).

    Returns
    -------
    str
    """
    get = model.get if hasattr(model, "get") else (lambda k, d=None: getattr(model, k, d))
    name = str(get("family"))
    if get("algebra"):
        name += "_" + str(get("algebra")).replace(":", "_").replace(".", "_")
    if (get("model_kwargs") or {}).get("centre"):
        name += "_centred"
    if get("augment"):
        name += "_aug"
    return name


class TrainingCLI(LightningCLI):
    """LightningCLI with ``data.bodies -> model.num_bodies`` linked and an optional test after fit.

    Resuming (``--ckpt_path``) takes the model settings saved in the checkpoint; settings given on the
    command line or in a config that differ from them are refused with the differences named, instead of
    being dropped silently (:func:`experiments.resume.check_resume`, the module's check too: aliases are
    resolved, execution settings such as ``compile`` may change and are kept as requested). An unreadable
    checkpoint is a one-line error. ``--trainer.enable_checkpointing false`` trains without the
    ``--checkpoint.*`` callback.
    """

    def _parse_ckpt_path(self) -> None:
        sub = self.config.get("subcommand")
        ckpt_path = self.config[sub].get("ckpt_path") if sub else None
        if not ckpt_path or not Path(ckpt_path).is_file():
            return super()._parse_ckpt_path()
        try:
            checkpoint = torch.load(ckpt_path, weights_only=True, map_location="cpu")
        except Exception as err:  # noqa: BLE001 - truncated, not a checkpoint, ...
            raise ValueError(f"checkpoint {ckpt_path} is unreadable (truncated or not a checkpoint): {err}") from None
        saved, step = checkpoint.get("hyper_parameters") or {}, int(checkpoint.get("global_step", 0))
        requested = self.config[sub]["model"]
        requested = requested.as_dict() if hasattr(requested, "as_dict") else dict(requested)
        exempt = check_resume(saved, requested, step, source=f"--ckpt_path {ckpt_path}")
        super()._parse_ckpt_path()  # the checkpoint's settings, except those a resume may change:
        for key in exempt & set(requested):
            self.config[sub]["model"][key] = requested[key]

    def _instantiate_trainer(self, config: dict, callbacks: list):
        if config.get("enable_checkpointing") is False:  # then Lightning refuses any ModelCheckpoint
            callbacks = [c for c in callbacks if not isinstance(c, ModelCheckpoint)]
        return super()._instantiate_trainer(config, callbacks)

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.bodies", "model.num_bodies")
        parser.set_defaults({"trainer.logger": LOGGER_DEFAULTS})
        # checkpointing on by default, configurable as --checkpoint.* (off: --trainer.enable_checkpointing false)
        parser.add_lightning_class_args(FinalModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.monitor": "val/loss", "checkpoint.mode": "min", "checkpoint.save_last": True,
                             "checkpoint.save_top_k": 1, "checkpoint.filename": "best-{step}"})
        parser.add_argument("--test_after_fit", type=bool, default=True,
                            help="after fit, evaluate the final weights on the test and E(3) test sets")

    def before_instantiate_classes(self) -> None:
        """A logger named ``auto`` takes the run's name from the model: ``--model.algebra euclidean`` on
        the conformal config writes to ``runs/gatr_euclidean``, not ``runs/gatr_conformal``."""
        cfg = self.config.get(self.subcommand) if self.subcommand else self.config
        loggers = cfg["trainer"].get("logger") if cfg is not None else None
        if not isinstance(loggers, list):
            loggers = [loggers] if loggers not in (None, True, False) else []
        for logger in loggers:
            args = getattr(logger, "init_args", None)
            if args is not None and args.get("name") == "auto":
                args["name"] = run_name(cfg["model"])

    def after_fit(self) -> None:
        cfg = self.config.get(self.subcommand, {})
        if cfg.get("test_after_fit", True) and not self.trainer.fast_dev_run and self.trainer.state.stage != "interrupted":
            self.trainer.test(self.model, datamodule=self.datamodule, verbose=True)


EXAMPLES = ("fit --config experiments/configs/gatr_conformal.yaml",
            "fit --config experiments/configs/gatr_conformal.yaml --model.algebra euclidean",
            "fit --config experiments/configs/transformer.yaml --trainer.strategy ddp --trainer.devices 2",
            "fit --config experiments/configs/mlp.yaml --ckpt_path runs/mlp/version_0/checkpoints/last.ckpt",
            "fit --print_config                  # every option with its default")


class _HelpFormatter(DefaultHelpFormatter):
    """jsonargparse's help, with the description and the examples kept line by line."""

    def _fill_text(self, text, width, indent):
        return "".join(indent + line for line in text.splitlines(keepends=True))


def _parser_kwargs() -> dict:
    """The main parser and ``fit``: the program name as started (``python -m`` or ``gatr-train``) and examples."""
    program = prog("experiments.train", "gatr-train")
    return {"prog": program, "epilog": examples(program, *EXAMPLES), "formatter_class": _HelpFormatter,
            "description": "Train a rigid-body model (GATr on any algebra, transformer or MLP) with Lightning.",
            "fit": {"epilog": examples(program, *EXAMPLES[:4]), "formatter_class": _HelpFormatter}}


def main(args: list[str] | None = None, run: bool = True) -> TrainingCLI:
    """Build (and by default run) the CLI.

    Parameters
    ----------
    args : list of str, optional
        Command-line arguments; LightningCLI reads ``sys.argv[1:]`` when None.
    run : bool
        Run the subcommand (``fit``, ``test``...) after parsing.

    Returns
    -------
    TrainingCLI
        The CLI, holding the parsed config, the model, the data module and the trainer.
    """
    return TrainingCLI(
        BodyDynamicsModule,
        TrainingDataModule,
        seed_everything_default=0,
        trainer_defaults=TRAINER_DEFAULTS,
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
        auto_configure_optimizers=False,
        parser_kwargs=_parser_kwargs(),
    )


def cli_main(argv: list[str] | None = None) -> int:
    """Entry point of ``gatr-train`` and ``python -m experiments.train``.

    Parameters
    ----------
    argv : list of str, optional
        Arguments after the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0, or 2 when a user mistake, a diverged run or a damaged dataset (naming the file and the command
        that regenerates it) ended it with one line on stderr.
    """
    try:
        main(argv)
    except (ValueError, FloatingPointError, FileNotFoundError, ShardError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli_main())
