"""What every GATr layer shares: one input check and one execution plan at the outermost layer, its own FLOP count."""

from __future__ import annotations

import torch
from torch import nn

from ..kernels.plan import ExecutionPlan, prepare, resolve_plan


class EquiModule(nn.Module):
    """Base of the GATr layers, each mapping ``(mv (..., items, c, dim), scalars (..., items, s))`` pairs.

    * ``validate_inputs``: a layer called on its own checks its inputs (shapes, dtypes, masks) and
      raises clear errors; a composite layer (block, network) turns the checks of its sub-layers off
      with :meth:`nest_children`, so one forward checks once, at its boundary.
    * :meth:`flops_per_token`: this layer's own forward FLOPs (:meth:`own_flops_per_token`, the
      convention of :mod:`gatr.flops`) plus those of its sub-layers.
    * the execution plan (:mod:`gatr.kernels.plan`): every forward takes ``plan=None``. The outermost layer
      resolves one for its blade-ordered inputs (:meth:`own_plan`) and hands it to its sub-layers, whose
      multivectors then travel in the plan's layout; a layer only reads the layout through the plan.
    * the algebra's constants and kernel data are built when a layer is built and after every ``.to()``
      (:meth:`prepare_constants`), so a compiled forward only reads cached tensors.
    """

    validate_inputs: bool = True
    #: ``"linear"`` or ``"bilinear"`` for a layer whose ``kernel`` attribute names a kernel of that kind.
    kernel_role: str | None = None

    def __init__(self) -> None:
        super().__init__()

    def kernel_names(self) -> tuple[str, str | None]:
        """The (linear, bilinear) kernel names this layer runs with when called on its own.

        Those of this layer and its first sub-layers that name one (their :attr:`runs_on`: ``EquiLinear.kernel``,
        ``GeometricBilinear.kernel``); ``"auto"`` for the linear maps and None for the bilinears by default.

        Returns
        -------
        (str, str or None)
        """
        names = {"linear": None, "bilinear": None}
        for module in self.modules():
            role = getattr(module, "kernel_role", None)
            if role is not None and names[role] is None:
                names[role] = module.runs_on
        return names["linear"] or "auto", names["bilinear"]

    @property
    def runs_on(self) -> str | None:
        """The kernel this layer's products run on (its ``kernel``; for layers with a ``kernel_role``)."""
        return self.kernel

    def own_plan(self, mv: torch.Tensor, compiled: bool | None = None) -> ExecutionPlan:
        """The execution plan of a forward of this layer on its own, for blade-ordered inputs ``mv``.

        Parameters
        ----------
        mv : Tensor, shape (..., channels, dim)
        compiled : bool, optional
            Whether the layers will run compiled (:func:`~gatr.kernels.plan.resolve_plan`); default: whether
            ``torch.compile`` is tracing now.

        Returns
        -------
        ExecutionPlan
        """
        return resolve_plan(self.algebra, mv, *self.kernel_names(), compiled=compiled)

    def prepare_constants(self) -> None:
        """Build the algebra's constants and the data of this layer's kernels where its parameters live (see
        :func:`gatr.kernels.prepare`); called when a layer is built and after every ``.to()``."""
        algebra = getattr(self, "algebra", None)
        if algebra is not None:
            param = next(self.parameters(), None)
            prepare(algebra, param.device if param is not None else torch.device("cpu"), *self.kernel_names())

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self.prepare_constants()
        return out

    def nest_children(self) -> None:
        """Mark every sub-layer as nested: its inputs come from this layer, which checks its own."""
        for module in self.modules():
            if module is not self and isinstance(module, EquiModule):
                module.validate_inputs = False

    def own_flops_per_token(self, num_items: int) -> int:
        """Forward FLOPs per token of this layer's own products (sub-layers excluded); 0 by default.

        Parameters
        ----------
        num_items : int
            Items per sequence (attention cost grows with it).

        Returns
        -------
        int
        """
        return 0

    def flops_per_token(self, num_items: int) -> int:
        """Forward FLOPs per token (item) of this layer and its sub-layers.

        Parameters
        ----------
        num_items : int
            Items per sequence.

        Returns
        -------
        int
        """
        return self.own_flops_per_token(num_items) + sum(layer.flops_per_token(num_items) for layer in sub_layers(self))


def sub_layers(module: nn.Module):
    """The outermost :class:`EquiModule` s below ``module`` (looking through containers like ``ModuleList``).

    Parameters
    ----------
    module : torch.nn.Module

    Yields
    ------
    EquiModule
    """
    for child in module.children():
        if isinstance(child, EquiModule):
            yield child
        else:
            yield from sub_layers(child)
