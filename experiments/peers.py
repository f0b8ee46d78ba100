"""Peers for the benchmark: the reference projective GATr (from its source tree) and lgatr (from PyPI).

Both are optional. The reference package is also called ``gatr``; :func:`load_reference_gatr` imports
it from a source path under its own name without disturbing ours, with a stand-in for its optional
``xformers`` import (only used for block-diagonal masks, which the benchmark does not pass).
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

from torch import nn


#: What :func:`load_reference_gatr` imports from the reference tree.
REFERENCE_FILES = ("gatr/nets/gatr.py", "gatr/layers/attention/config.py", "gatr/layers/mlp/config.py")


def _stub_xformers() -> dict:
    """Minimal ``xformers.ops`` so the reference imports without it (its SDPA path is torch's)."""
    ops = types.ModuleType("xformers.ops")

    class AttentionBias:  # never instantiated by the benchmark
        pass

    def memory_efficient_attention(*args, **kwargs):
        raise RuntimeError("xformers is not installed; the benchmark uses torch's SDPA path")

    ops.AttentionBias, ops.memory_efficient_attention = AttentionBias, memory_efficient_attention
    root = types.ModuleType("xformers")
    root.ops = ops
    return {"xformers": root, "xformers.ops": ops}


def load_reference_gatr(path: str | Path):
    """``(GATr class, SelfAttentionConfig, MLPConfig)`` of the reference implementation at ``path``
    (a checkout of Qualcomm-AI-research/geometric-algebra-transformer); a clear error if it is not one."""
    path = Path(path).resolve()
    # decided from files before anything is imported: importing another tree that registers gatr::* custom
    # operators (this project, or a release of it) makes torch destroy ours, and every later call of them
    # then reads freed memory (torch._library.custom_ops.get_library_allowing_overwrite)
    if (path / "gatr" / "kernels").is_dir() or (path / "algebras" / "__init__.py").is_file():
        raise ValueError(f"--reference-gatr {path}: not a checkout of the reference GATr (a checkout of this "
                         f"project; compare releases with --compare-to)")
    missing = [f for f in REFERENCE_FILES if not (path / f).is_file()]
    if missing:
        raise ValueError(f"--reference-gatr {path}: not a checkout of the reference GATr (no {', '.join(missing)})")
    ours = {k: v for k, v in sys.modules.items() if k == "gatr" or k.startswith("gatr.")}
    for k in ours:
        del sys.modules[k]
    added = {k: v for k, v in _stub_xformers().items() if k not in sys.modules}
    sys.modules.update(added)
    sys.path.insert(0, str(path))
    try:
        nets = importlib.import_module("gatr.nets")
        attention = importlib.import_module("gatr.layers.attention.config")
        mlp = importlib.import_module("gatr.layers.mlp.config")
        return nets.GATr, attention.SelfAttentionConfig, mlp.MLPConfig
    except (ImportError, AttributeError) as err:  # the files exist, but not the reference's classes
        raise ValueError(f"--reference-gatr {path}: not a checkout of the reference GATr ({err})") from None
    finally:  # the reference's modules keep their references to each other; ours come back under "gatr"
        sys.path.remove(str(path))
        for k in [k for k in sys.modules if k == "gatr" or k.startswith("gatr.")]:
            sys.modules[f"reference_{k}"] = sys.modules.pop(k)
        sys.modules.update(ours)


class ReferenceGATr(nn.Module):
    """The reference projective GATr with our call convention ``(mv, scalars) -> (mv, scalars)``."""

    def __init__(self, path, mv_channels: int, s_channels: int, num_blocks: int, num_heads: int):
        super().__init__()
        net_cls, attention_cfg, mlp_cfg = load_reference_gatr(path)
        # its defaults, except activation checkpointing (off, as in ours) so both do one forward
        self.net = net_cls(in_mv_channels=1, out_mv_channels=1, hidden_mv_channels=mv_channels, in_s_channels=1,
                           out_s_channels=1, hidden_s_channels=s_channels, num_blocks=num_blocks,
                           attention=attention_cfg(num_heads=num_heads, checkpoint=False), mlp=mlp_cfg())

    def forward(self, mv, scalars, reference_mv=None):
        return self.net(mv, scalars=scalars)


class LGATrNet(nn.Module):
    """lgatr 2.x (Lorentz GATr, Cl(1,3)) with our call convention; ``mlp_ratio=2`` matches our MLP's width."""

    def __init__(self, mv_channels: int, s_channels: int, num_blocks: int, num_heads: int, compile: bool = False):
        super().__init__()
        from lgatr import LGATr, MLPConfig, SelfAttentionConfig

        self.net = LGATr(num_blocks=num_blocks, in_mv_channels=1, out_mv_channels=1, hidden_mv_channels=mv_channels,
                         in_s_channels=1, out_s_channels=1, hidden_s_channels=s_channels,
                         attention=SelfAttentionConfig(num_heads=num_heads), mlp=MLPConfig(mlp_ratio=2),
                         compile=compile)

    def forward(self, mv, scalars, reference_mv=None):
        return self.net(mv, scalars=scalars)


def lgatr_available() -> bool:
    """Whether lgatr (``pip install lgatr``) can be imported."""
    try:
        importlib.import_module("lgatr")
        return True
    except ImportError:
        return False
