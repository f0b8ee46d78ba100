"""Resuming a run from a checkpoint: the one comparison of the saved settings with the requested ones.

Resuming restores weights, optimiser state and schedule, so a setting given anew would be dropped
silently. :func:`check_resume` refuses that, naming every setting that differs, for the training command
line (``--ckpt_path``, before the checkpoint's settings replace the requested ones) and for
:meth:`~experiments.training.BodyDynamicsModule.on_load_checkpoint` alike. Exempt: the
:data:`~experiments.settings.EXECUTION_SETTINGS` (``compile``), and ``total_steps`` where the checkpoint
is a branch point of the requested WSD schedule.
"""

from __future__ import annotations

from typing import Mapping

from experiments.settings import EXECUTION_SETTINGS, wsd_cooldown_start

__all__ = ["resume_exemptions", "resume_conflicts", "check_resume"]


def _differs(a, b) -> bool:
    """Settings compared as saved (tuples and lists alike)."""
    norm = (lambda x: list(x) if isinstance(x, (tuple, list)) else x)  # noqa: E731
    return norm(a) != norm(b)


def _resolved(settings: Mapping) -> dict:
    """``settings`` with ``family`` and ``algebra`` named canonically (an alias resolved); left as given where
    they are invalid (building the model then says why)."""
    from experiments.models import validate_family_algebra

    out = dict(settings)
    if "family" in out:
        try:
            out["family"], out["algebra"] = validate_family_algebra(out["family"], out.get("algebra"))
        except ValueError:
            pass
    return out


def _same_schedule_until(saved: Mapping, requested: Mapping, step: int) -> bool:
    """Whether a checkpoint at ``step`` of a WSD run with ``saved`` settings is a branch point of a run with
    ``requested`` settings: both are WSD with the same warm-up, and neither has started its cooldown before
    ``step``."""
    if requested.get("scheduler") != "wsd" or saved.get("scheduler") != "wsd" or saved.get("total_steps") is None \
            or requested.get("total_steps") is None:
        return False
    same = all(not _differs(saved.get(k), requested.get(k)) for k in ("warmup_steps", "cooldown_fraction"))
    fraction = requested["cooldown_fraction"]
    return same and step <= min(wsd_cooldown_start(int(saved["total_steps"]), fraction),
                                wsd_cooldown_start(int(requested["total_steps"]), fraction))


def resume_exemptions(saved: Mapping, requested: Mapping, step: int) -> set[str]:
    """The settings a resume may change: the :data:`EXECUTION_SETTINGS`, and ``total_steps`` where the
    checkpoint is a branch point of the requested WSD schedule.

    Parameters
    ----------
    saved : mapping
        The checkpoint's hyper-parameters.
    requested : mapping
        The model settings of the resumed run.
    step : int
        The checkpoint's global step.

    Returns
    -------
    set of str
    """
    exempt = set(EXECUTION_SETTINGS)
    if _same_schedule_until(saved, requested, step):
        exempt.add("total_steps")  # a WSD cooldown branch: both schedules agree up to the checkpoint
    return exempt


def resume_conflicts(saved: Mapping, requested: Mapping, step: int) -> dict:
    """The settings a resume would silently drop: resuming restores weights, optimiser and schedule, so
    every setting both name must agree, except those of :func:`resume_exemptions`. Family and algebra
    are compared after resolving aliases (``ega`` is ``euclidean``).

    Parameters
    ----------
    saved : mapping
        The checkpoint's hyper-parameters.
    requested : mapping
        The model settings of the resumed run.
    step : int
        The checkpoint's global step.

    Returns
    -------
    dict
        ``{setting: (checkpoint value, requested value)}``, empty when the run may resume.
    """
    exempt = resume_exemptions(saved, requested, step)
    saved, resolved = _resolved(saved), _resolved(requested)
    return {k: (saved[k], resolved[k]) for k in sorted(resolved)
            if k in saved and k not in exempt and _differs(saved[k], resolved[k])}


def check_resume(saved: Mapping, requested: Mapping, step: int, source: str = "the checkpoint") -> set[str]:
    """The one resume check, of the training command line (``--ckpt_path``) and of
    :meth:`~experiments.training.BodyDynamicsModule.on_load_checkpoint`.

    Parameters
    ----------
    saved : mapping
        The checkpoint's hyper-parameters.
    requested : mapping
        The model settings of the resumed run.
    step : int
        The checkpoint's global step.
    source : str
        How the checkpoint is named in the error.

    Returns
    -------
    set of str
        The settings the resumed run may set differently (:func:`resume_exemptions`).

    Raises
    ------
    ValueError
        Naming every setting that differs (:func:`resume_conflicts`), with both values.
    """
    changed = resume_conflicts(saved, requested, step)
    if changed:
        detail = "; ".join(f"{k}: checkpoint {a!r}, requested {b!r}" for k, (a, b) in changed.items())
        raise ValueError(f"{source} was trained with other model settings ({detail}); resume with the "
                         "checkpoint's settings, or start a new run")
    return resume_exemptions(saved, requested, step)
