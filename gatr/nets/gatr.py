"""The Geometric Algebra Transformer: EquiLinear in, GATr blocks, EquiLinear out, on any algebra."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint as torch_checkpoint

from algebras import algebra_spec, get_algebra

from ..flops import training_flops
from ..kernels.plan import ExecutionPlan, check_kernel_names
from ..layers import EquiLinear, GATrBlock, reference_from_inputs
from ..layers._checks import check_inputs, check_mask_shape
from ..layers.base import EquiModule
from ..layers.bilinear import GeometricBilinear


#: ``torch.compile``'s options for the blocks of ``GATrConfig(compile=True)`` (tests trace with ``aot_eager``).
BLOCK_COMPILE_OPTIONS: dict = {"fullgraph": True}
_COMPILED_BLOCKS: dict = {}


def _call_block(block, *args, **kwargs):
    """``block.forward(*args, **kwargs)``; its code is copied once per kind of block (:func:`compiled_block_forward`)."""
    return GATrBlock.forward(block, *args, **kwargs)


def compiled_block_forward(kind: str = ""):
    """:meth:`GATrBlock.forward` through ``torch.compile(**BLOCK_COMPILE_OPTIONS)``, one per kind of block and
    process.

    Every block of a kind, in every network of the process, calls the same function with itself as the first
    argument. Dynamo keeps compiled code on the function's code object and lifts the block's parameters to
    graph inputs, so such blocks reuse one compiled graph: a network compiles one block, however deep it is,
    and the runs of a sweep that share a worker process compile a network shape once. Each kind gets a copy
    of the code of its own, because dynamo's recompile limit (8 graphs) counts per code object: one shared
    function would run out of it in a process that trains several algebras (train and eval, static and
    dynamic shapes each), and ``fullgraph=True`` turns that into an error.

    Parameters
    ----------
    kind : str
        What decides a block's graph apart from the input shapes (the network's settings other than its input
        and output channels and its depth, :attr:`GATr.block_kind`).

    Returns
    -------
    callable
        ``(block, mv, scalars, attention_mask, key_padding_mask, reference_mv, plan=plan) -> (mv, scalars)``.
    """
    key = (kind, repr(sorted(BLOCK_COMPILE_OPTIONS.items())))
    if key not in _COMPILED_BLOCKS:
        code = _call_block.__code__.replace(co_name=f"gatr_block_{len(_COMPILED_BLOCKS)}")
        fn = types.FunctionType(code, _call_block.__globals__, code.co_name)
        _COMPILED_BLOCKS[key] = torch.compile(fn, **BLOCK_COMPILE_OPTIONS)
    return _COMPILED_BLOCKS[key]


@dataclass
class GATrConfig:
    """Every setting of a :class:`GATr`, the one place its parameters and defaults are defined.

    Plain types, so YAML / jsonargparse can fill it; field order is :class:`GATr`'s positional order.

    Every field is checked for its type when a :class:`GATr` is built (booleans must be booleans, not
    strings such as ``"false"``); unknown fields are refused, naming the valid ones.

    Parameters
    ----------
    algebra : str
        Registered name, alias or ``"module:attribute"`` factory. A :class:`GATr` also takes an algebra
        object: its config then holds the name and options the registry built it from
        (:func:`algebras.algebra_spec`), or, for an algebra constructed directly, the object itself.
    in_mv_channels, out_mv_channels, hidden_mv_channels : int
        Multivector channels in, out and in the blocks.
    in_s_channels, out_s_channels, hidden_s_channels : int
        Scalar channels in, out and in the blocks.
    num_blocks, num_heads : int
    dropout : float
        Whole-multivector dropout on both residual branches, and attention dropout.
    checkpoint : bool
        Gradient checkpointing of every block (saves activation memory, costs one extra forward).
    multi_query : bool
        One key/value head shared by all query heads.
    head_mv_channels, head_s_channels : int, optional
        Channels per attention head; default ``max(1, hidden_mv // num_heads)`` and ``hidden_s // num_heads``.
    activation : str
        Gate of the scalar-gated nonlinearity (:data:`gatr.primitives.ACTIVATIONS`).
    linear_kernel, bilinear_kernel : str
        Execution kernels (:mod:`gatr.kernels`), ``"auto"`` by default: the network's execution plan
        (:meth:`GATr.execution_plan`). With bilinear kernel ``"xor"`` (and ``"auto"`` under
        ``torch.compile`` on CPUs where the linear maps run sparse) the hidden multivectors travel in the
        label layout (:mod:`gatr.kernels.label_layout`).
    compile : bool
        Run the blocks through ``torch.compile(fullgraph=True)``, one block's forward compiled once and
        shared by every block (regional compilation: the blocks are alike, so the compile time is one
        block's, not the depth's); inputs are still checked eagerly, with the same errors, and the input
        and output maps run eagerly. The module, its state dict and its config are unchanged.
    algebra_options : dict, optional
        Options of the algebra's factory, e.g. ``{"group": "Pin(4,1)"}`` (they decide the equivariant
        maps, hence the parameters): ``get_algebra(algebra, **algebra_options)``.
    bilinears : {"fixed", "derived"}
        ``"fixed"`` (default): the algebra's bilinears (geometric product; the join in the projective
        backends). ``"derived"``: each a learned combination of every equivariant bilinear map of the group
        (up to ``det`` for the join), initialised at the fixed one (:class:`~gatr.layers.GeometricBilinear`);
        they run on the dense table kernel.

    """

    algebra: Any = "projective"
    in_mv_channels: int = 1
    out_mv_channels: int = 1
    hidden_mv_channels: int = 16
    in_s_channels: int = 0
    out_s_channels: int = 0
    hidden_s_channels: int = 0
    num_blocks: int = 4
    num_heads: int = 8
    dropout: float = 0.0
    checkpoint: bool = False
    multi_query: bool = False
    head_mv_channels: Optional[int] = None
    head_s_channels: Optional[int] = None
    activation: str = "gelu"
    linear_kernel: str = "auto"
    bilinear_kernel: str = "auto"
    compile: bool = False
    algebra_options: Optional[dict] = None
    bilinears: str = "fixed"


#: What a config field's type is called in errors.
_TYPE_NAMES = {bool: "a boolean (true or false)", int: "an integer", float: "a number", str: "a string",
               dict: "a mapping", type(None): "null"}


def _has_type(value, kind: type) -> bool:
    """``isinstance`` without the surprises: a bool is not an integer, an integer is a number."""
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    return isinstance(value, (int, float) if kind is float else kind)


class _SettingTypeError(TypeError, ValueError):
    """A setting of the wrong type: a TypeError, and a ValueError for command lines that report bad values."""


def _check_config_types(config: GATrConfig) -> None:
    """Refuse a field of the wrong type, naming it and the expected type (``algebra`` is checked by the registry).

    Parameters
    ----------
    config : GATrConfig

    Returns
    -------
    None

    Raises
    ------
    TypeError
        E.g. for ``multi_query="false"`` (a string, not a boolean) or ``dropout="0.1"``.
    """
    for name, hint in typing.get_type_hints(GATrConfig).items():
        if hint is Any:
            continue
        kinds = typing.get_args(hint) or (hint,)  # Optional[int] -> (int, NoneType)
        value = getattr(config, name)
        if not any(_has_type(value, kind) for kind in kinds):
            expected = " or ".join(_TYPE_NAMES[kind] for kind in kinds)
            raise _SettingTypeError(f"GATr: {name} must be {expected}, got {value!r} ({type(value).__name__})")


def _make_config(*args, **kwargs) -> GATrConfig:
    """``GATrConfig(*args, **kwargs)``, refusing unknown fields by name.

    Parameters
    ----------
    *args, **kwargs
        Fields of :class:`GATrConfig`, positionally in its field order or by name.

    Returns
    -------
    GATrConfig

    Raises
    ------
    ValueError
        For a field :class:`GATrConfig` does not have, listing the valid ones.
    """
    names = [f.name for f in dataclasses.fields(GATrConfig)]
    unknown = [key for key in kwargs if key not in names]
    if unknown:
        raise ValueError(f"GATr: unknown setting {unknown[0]!r}; valid settings: {', '.join(names)}")
    return GATrConfig(*args, **kwargs)


def _algebra_fields(alg) -> dict:
    """``algebra`` / ``algebra_options`` of a config that rebuilds ``alg``: the name and options the registry
    built it from (options ``None`` when there are none), or the object itself if the registry did not build it."""
    spec = algebra_spec(alg)
    if spec is None:
        return {"algebra": alg, "algebra_options": None}
    name, options = spec
    return {"algebra": name, "algebra_options": options or None}


def _zero_padding(key_padding_mask, mv, scalars=None, reference_mv=None):
    """The inputs with every padded item's multivectors, scalars and (per-item) reference set to zero.

    Attention keeps padded items away from real ones in the forward pass, but a NaN or inf held by a
    padded item would still reach the gradients (``0 * NaN`` is NaN in every backward through them);
    replaced by zeros before anything else, they influence neither outputs nor gradients of real items.

    Parameters
    ----------
    key_padding_mask : Tensor of bool, shape (..., items), or None
        True for real items.
    mv : Tensor, shape (..., items, channels, dim)
    scalars : Tensor, shape (..., items, s_channels), optional
    reference_mv : Tensor, optional
        Broadcastable to ``(..., items, 1, dim)``; zeroed only where it has an item axis.

    Returns
    -------
    mv, scalars, reference_mv
        Unchanged when ``key_padding_mask`` is None.
    """
    if key_padding_mask is None:
        return mv, scalars, reference_mv
    real = key_padding_mask[..., None]  # (..., items, 1)
    zero = torch.zeros((), dtype=mv.dtype, device=mv.device)
    mv = torch.where(real[..., None], mv, zero)
    if scalars is not None:
        scalars = torch.where(real, scalars, zero.to(scalars.dtype))
    if reference_mv is not None and reference_mv.ndim >= 3 and reference_mv.shape[-3] != 1:
        reference_mv = torch.where(real[..., None], reference_mv, zero.to(reference_mv.dtype))
    return mv, scalars, reference_mv


class GATr(EquiModule):
    """Geometric Algebra Transformer over a pluggable Clifford algebra.

    Parameters
    ----------
    *args, **kwargs
        The fields of :class:`GATrConfig` (positionally in its field order, or by name).
    config : GATrConfig, optional
        Instead of ``args`` / ``kwargs``.
    """

    def __init__(self, *args, config: GATrConfig | None = None, **kwargs):
        super().__init__()
        if config is not None and (args or kwargs):
            raise TypeError("GATr: give either a config or its fields, not both")
        c = config if config is not None else _make_config(*args, **kwargs)
        _check_config_types(c)
        for name, low in (("num_heads", 1), ("num_blocks", 1), ("hidden_mv_channels", 1), ("in_mv_channels", 1),
                          ("out_mv_channels", 1), ("in_s_channels", 0), ("out_s_channels", 0),
                          ("hidden_s_channels", 0)):
            value = getattr(c, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"GATr: {name} must be an integer >= {low}, got {value!r}")
        if not 0.0 <= c.dropout < 1.0:
            raise ValueError(f"GATr: dropout must be in [0, 1), got {c.dropout!r}")
        if c.bilinears not in ("fixed", "derived"):
            raise ValueError(f"GATr: bilinears must be 'fixed' or 'derived', got {c.bilinears!r}")
        self.algebra = alg = get_algebra(c.algebra, **(c.algebra_options or {}))
        self.config = dataclasses.replace(c, **_algebra_fields(alg))
        self.head_mv_channels = c.head_mv_channels or max(1, c.hidden_mv_channels // c.num_heads)
        self.head_s_channels = c.hidden_s_channels // c.num_heads if c.head_s_channels is None else c.head_s_channels
        self.linear_in = EquiLinear(alg, c.in_mv_channels, c.hidden_mv_channels, c.in_s_channels, c.hidden_s_channels)
        self.blocks = nn.ModuleList(
            GATrBlock(alg, c.hidden_mv_channels, c.hidden_s_channels, c.num_heads, self.head_mv_channels,
                      self.head_s_channels, c.multi_query, c.dropout, c.activation, c.bilinears)
            for _ in range(c.num_blocks)
        )
        self.linear_out = EquiLinear(alg, c.hidden_mv_channels, c.out_mv_channels, c.hidden_s_channels,
                                     c.out_s_channels)
        self.nest_children()
        self.set_kernels(c.linear_kernel, c.bilinear_kernel)

    def kernel_names(self) -> tuple[str, str]:
        """The (linear, bilinear) kernel names of the network's plan: its config's.

        Returns
        -------
        (str, str)
        """
        bilinear = "dense" if self.config.bilinears == "derived" else self.config.bilinear_kernel
        return self.config.linear_kernel, bilinear

    def execution_plan(self, mv: torch.Tensor, compiled: bool | None = None) -> ExecutionPlan:
        """How a forward on ``mv`` executes: kernels and the hidden layout (:mod:`gatr.kernels.plan`).

        Parameters
        ----------
        mv : Tensor, shape (..., items, in_mv_channels, dim)
        compiled : bool, optional
            Whether the blocks run compiled; default: whether ``torch.compile`` is tracing now.

        Returns
        -------
        ExecutionPlan
            Decided by the config's kernel names, ``mv``'s device, dtype and size, and whether
            ``torch.compile`` is tracing.
        """
        return self.own_plan(mv, compiled)

    @classmethod
    def from_config(cls, config: GATrConfig | dict) -> "GATr":
        """A GATr from a :class:`GATrConfig` or a dict of its fields.

        Parameters
        ----------
        config : GATrConfig or dict
            The settings; a dict is passed to ``GATrConfig(**config)`` (unknown keys are refused).

        Returns
        -------
        GATr
            With ``net.config`` naming everything that decides its parameters (algebra, its options), so
            ``GATr.from_config(net.config)`` rebuilds a network that loads ``net.state_dict()``.
        """
        return cls(config=_make_config(**config) if isinstance(config, dict) else config)

    def set_kernels(self, linear: str | None = None, bilinear: str | None = None) -> "GATr":
        """Run every EquiLinear with kernel ``linear`` and every bilinear with ``bilinear`` (None: unchanged).

        Both names are checked before anything changes; :attr:`config` records the new kernels.

        Parameters
        ----------
        linear : str, optional
            A name of :data:`gatr.kernels.LINEAR_KERNELS` or ``"auto"``.
        bilinear : str, optional
            A name of :data:`gatr.kernels.BILINEAR_KERNELS` or ``"auto"``.

        Returns
        -------
        GATr
            ``self``, for chaining.

        Raises
        ------
        ValueError
            For an unknown kernel name.
        """
        check_kernel_names(linear, bilinear)  # clear errors for unknown names, before any change
        if bilinear not in (None, "auto", "dense") and self.config.bilinears == "derived":
            raise ValueError(f"GATr: derived (learned) bilinears run on the dense table kernel, not {bilinear!r}")
        for module in self.modules():
            if linear is not None and isinstance(module, EquiLinear):
                module.kernel = linear
            if bilinear is not None and isinstance(module, GeometricBilinear):
                module.kernel = bilinear
        self.config = dataclasses.replace(self.config, linear_kernel=linear or self.config.linear_kernel,
                                          bilinear_kernel=bilinear or self.config.bilinear_kernel)
        for module in self.modules():  # the data of the new kernels, built ahead of a compiled forward
            if isinstance(module, EquiModule):
                module.prepare_constants()
        return self

    def _check(self, mv, scalars, attention_mask, key_padding_mask, reference_mv):
        c = self.config
        scalars = check_inputs(self, mv, scalars, c.in_mv_channels, c.in_s_channels)
        items = mv.shape[-3]
        if key_padding_mask is not None and key_padding_mask.shape[-1] != items:
            raise ValueError(f"GATr: expected key_padding_mask (..., {items}) (items), "
                             f"got {tuple(key_padding_mask.shape)}")
        check_mask_shape("key_padding_mask", key_padding_mask, tuple(mv.shape[:-2]))
        check_mask_shape("attention_mask", attention_mask, (*mv.shape[:-3], c.num_heads, items, items))
        if reference_mv is not None and reference_mv.shape[-1] != self.algebra.dim:
            raise ValueError(f"reference_mv must have last axis {self.algebra.dim}, got {tuple(reference_mv.shape)}")
        return scalars

    def forward(self, mv: torch.Tensor, scalars: torch.Tensor | None = None, attention_mask=None,
                key_padding_mask=None, reference_mv: torch.Tensor | None = None):
        """EquiLinear in, the blocks (checkpointed if ``config.checkpoint`` and gradients are on), EquiLinear out.

        Parameters
        ----------
        mv : Tensor, shape (..., items, in_mv_channels, dim)
            Multivector inputs.
        scalars : Tensor, shape (..., items, in_s_channels), optional
            Scalar inputs; None only when ``in_s_channels == 0``.
        attention_mask : Tensor, optional
            Bool or integer (nonzero = attend) or additive float, broadcastable to
            ``(..., num_heads, items, items)``.
        key_padding_mask : Tensor of bool, shape (..., items), optional
            True for real items, False for padding.
        reference_mv : Tensor, shape (..., dim), optional
            Reference for reference-scaled bilinears such as the projective join; must broadcast
            against ``(..., items, 1, dim)``. Default: the mean of the input multivectors over
            (unpadded) items and channels (:func:`~gatr.layers.reference_from_inputs`). For inputs
            without a pseudoscalar component (e.g. PGA points) that mean has none either and the
            join is zero: pass a reference (or an input channel) with one.

        Returns
        -------
        mv : Tensor, shape (..., items, out_mv_channels, dim)
        scalars : Tensor, shape (..., items, out_s_channels)
            Always a tensor (0 channels wide when ``out_s_channels == 0``).
        """
        if self.validate_inputs:
            scalars = self._check(mv, scalars, attention_mask, key_padding_mask, reference_mv)
        mv, scalars, reference_mv = _zero_padding(key_padding_mask, mv, scalars, reference_mv)
        if reference_mv is None:
            reference_mv = reference_from_inputs(mv, key_padding_mask)
        compiled = self.config.compile and not torch.compiler.is_compiling()  # else: eager, or traced whole
        plan = self.execution_plan(mv, compiled=True if compiled else None)
        run_block = compiled_block_forward(self.block_kind) if compiled else type(self.blocks[0]).__call__
        h_mv, h_s = self.linear_in(plan.enter(mv), scalars, plan=plan)
        if compiled:
            # every block's inputs tensors of their own, as later blocks' are: once shapes turn dynamic, dynamo
            # guards the base of an input that is a view, which the later blocks would fail, compiling twice
            h_mv, h_s = (t.clone() if t._base is not None else t for t in (h_mv, h_s))
        for block in self.blocks:
            args = (block, h_mv, h_s, attention_mask, key_padding_mask, reference_mv)
            if self.config.checkpoint and torch.is_grad_enabled():
                h_mv, h_s = torch_checkpoint(run_block, *args, plan=plan, use_reentrant=False)
            else:
                h_mv, h_s = run_block(*args, plan=plan)
        out_mv, out_s = self.linear_out(h_mv, h_s, plan=plan)
        return plan.leave(out_mv), out_s

    @property
    def block_kind(self) -> str:
        """What decides the compiled graph of this network's blocks besides the input shapes: its config without
        the input and output channels, the depth and the execution switches (:func:`compiled_block_forward`)."""
        return repr(dataclasses.replace(self.config, in_mv_channels=0, out_mv_channels=0, in_s_channels=0,
                                        out_s_channels=0, num_blocks=0, checkpoint=False, compile=False))

    def nominal_flops_per_token(self, num_items: int) -> float:
        """Forward + backward FLOPs per token (item), summed from the layers' own counts (:mod:`gatr.flops`).

        Parameters
        ----------
        num_items : int
            Items per sequence (attention cost grows with it).

        Returns
        -------
        float
            ``3 x`` :meth:`flops_per_token`.
        """
        return training_flops(self.flops_per_token(num_items))
