"""Program names and examples shared by the command lines (``python -m ...`` and the ``gatr-*`` scripts).

Each command runs two ways, with the same arguments and exit codes::

    python -m experiments.scaling list --preset quick
    gatr-scaling list --preset quick          # installed by pip ([project.scripts] in pyproject.toml)

:func:`prog` names the program the way it was started, so usage lines and examples in ``--help`` can
be pasted back into the shell.
"""

from __future__ import annotations

import os
import sys

__all__ = ["prog", "examples"]


def prog(module: str, script: str) -> str:
    """The program name for usage lines and examples.

    Parameters
    ----------
    module : str
        The module run by ``python -m``, e.g. ``"experiments.scaling"``.
    script : str
        The installed console script, e.g. ``"gatr-scaling"``.

    Returns
    -------
    str
        ``script`` when this process was started as that script (``sys.argv[0]`` names it),
        ``"python -m <module>"`` otherwise.
    """
    started_as = os.path.splitext(os.path.basename(sys.argv[0]))[0] if sys.argv and sys.argv[0] else ""
    return script if started_as == script else f"python -m {module}"


def examples(program: str, *commands: str) -> str:
    """An argparse epilog listing example commands, each prefixed with ``program``.

    Parameters
    ----------
    program : str
        The program name (from :func:`prog`).
    *commands : str
        Arguments of each example, e.g. ``"run --preset quick --out runs/quick"``.

    Returns
    -------
    str
        ``"examples:\\n  <program> <command>\\n..."``; use it with
        ``argparse.RawDescriptionHelpFormatter`` so the lines are kept.
    """
    return "examples:\n" + "\n".join(f"  {program} {c}".rstrip() for c in commands)
