"""The benchmark's step and timer, and the worker that times another checkout's GATr with them.

Imports nothing of this project, only torch and the standard library, so that it runs unchanged in the
process that ``python -m experiments.benchmark --compare-to PATH`` starts for the other tree (whose
``gatr``, ``algebras`` and ``experiments`` packages carry the same names as ours): there ``gatr`` and
``algebras`` come from PATH, while the step that is timed and the clock around it are this file's, so
both trees' models are built and timed by the same code. The benchmark itself uses :func:`build_gatr`,
:func:`make_step` and :func:`time_steps` for its own models.

Protocol (one JSON object per line; the worker writes on its original stdout, and its own stdout goes to
stderr so that a print in the other tree cannot garble it):

* parent -> ``{"path", "threads", "device", "dtype", "batch", "items", "mv", "s", "blocks", "heads"}``;
  worker -> ``{"threads", "gatr", "torch"}`` (what it runs with);
* ``{"op": "prepare", "spec": <algebra>, "compiled": bool}`` -> ``{"index", "params", "flops", "compile_s",
  "name"}``, or ``{"skip": message}`` when that tree does not know the algebra;
* ``{"op": "time", "index": i, "steps": n}`` -> ``{"seconds": t}``;
* any failure -> ``{"error": message}`` (one line), after which the worker exits; end of input ends it.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

import torch


def mv_loss(out):
    """Loss of a GATr output ``(mv, scalars)``: both parts reach the backward pass."""
    return out[0].float().square().mean() + out[1].float().mean()


def make_step(model, inputs: tuple, loss: Callable, compiled: bool, device, dtype,
              kwargs: dict | None = None) -> tuple[Callable[[], None], float]:
    """One forward+backward+SGD step of ``model`` (compiled with ``fullgraph=True`` if asked), run twice.

    Parameters
    ----------
    model : nn.Module
        The network; ``model(*inputs, **kwargs)`` is its forward call.
    inputs : tuple
        Positional inputs.
    loss : callable
        Output -> scalar loss.
    compiled : bool
        Wrap the model in ``torch.compile(fullgraph=True)``.
    device : torch.device
        Where it runs (for autocast).
    dtype : torch.dtype
        Autocast dtype (float32: no autocast).
    kwargs : dict, optional
        Keyword inputs.

    Returns
    -------
    step : callable
        One training step.
    compile_s : float
        Seconds of the first step when compiled (its compilation), else 0.
    """
    run = torch.compile(model, fullgraph=True) if compiled else model
    opt = torch.optim.SGD(model.parameters(), lr=1e-9)
    autocast = torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype != torch.float32)
    kwargs = kwargs or {}

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast:
            out = run(*inputs, **kwargs)
        loss(out).backward()
        opt.step()

    t0 = time.perf_counter()
    step()  # compiles, if compiled
    compile_s = time.perf_counter() - t0 if compiled else 0.0
    step()  # warms caches
    return step, compile_s


def time_steps(step: Callable[[], None], steps: int, device) -> float:
    """Seconds that ``steps`` calls of ``step`` take (synchronising CUDA before and after)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def build_gatr(gatr_cls, spec, cfg: dict, device) -> tuple:
    """The benchmark's GATr on algebra ``spec`` and its inputs (for ours and, in the worker, for the old tree's).

    Parameters
    ----------
    gatr_cls : type
        The tree's ``gatr.GATr``, called ``(algebra, in_mv, out_mv, hidden_mv, in_s, out_s, hidden_s,
        num_blocks, num_heads)``.
    spec : str or algebra
        What ``gatr_cls`` takes as its algebra.
    cfg : dict
        The sizes: ``batch items mv s blocks heads``.
    device : torch.device
        Where the network and its inputs live.

    Returns
    -------
    tuple
        ``(net, positional inputs, keyword inputs)``, from seed 0.
    """
    torch.manual_seed(0)
    net = gatr_cls(spec, 1, 1, cfg["mv"], 1, 1, cfg["s"], cfg["blocks"], cfg["heads"]).to(device)
    b, n, dim = cfg["batch"], cfg["items"], net.algebra.dim
    inputs = (torch.randn(b, n, 1, dim, device=device), torch.randn(b, n, 1, device=device))
    kwargs = {}
    if "reference_mv" in inspect.signature(net.forward).parameters:
        kwargs["reference_mv"] = torch.randn(b, 1, 1, dim, device=device)
    return net, inputs, kwargs


def _import_tree(path: Path):
    """``(GATr, get_algebra, gatr package folder)`` of the tree at ``path``; ValueError when its packages
    come from elsewhere."""
    import algebras
    import gatr

    for module in (gatr, algebras):
        where = Path(module.__file__).resolve().parent
        if where.parent != path:
            raise ValueError(f"`import {module.__name__}` found {where}, not {path / module.__name__}")
    if not hasattr(gatr, "GATr") or not hasattr(algebras, "get_algebra"):
        raise ValueError(f"{path} has no gatr.GATr or algebras.get_algebra: not a checkout of this project")
    return gatr.GATr, algebras.get_algebra, str(Path(gatr.__file__).resolve().parent)


def _prepare(models: list, gatr_cls, get_algebra, request: dict, cfg: dict) -> dict:
    """Build, compile if asked and warm one model; its description for the parent."""
    device, dtype = torch.device(cfg["device"]), getattr(torch, cfg["dtype"])
    try:
        algebra = get_algebra(request["spec"])
    except (ValueError, ImportError) as err:
        return {"skip": str(err).splitlines()[0] if str(err) else type(err).__name__}
    net, inputs, kwargs = build_gatr(gatr_cls, algebra, cfg, device)
    step, compile_s = make_step(net, inputs, mv_loss, request["compiled"], device, dtype, kwargs)
    models.append(step)
    flops = net.nominal_flops_per_token(cfg["items"]) if hasattr(net, "nominal_flops_per_token") else None
    return {"index": len(models) - 1, "params": sum(p.numel() for p in net.parameters()), "flops": flops,
            "compile_s": compile_s, "name": algebra.name}


def serve(inp, out) -> int:
    """Answer the parent's requests (see the module docstring) until its input ends."""
    cfg = json.loads(inp.readline())
    torch.set_num_threads(cfg["threads"])
    models: list = []

    def send(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    try:
        gatr_cls, get_algebra, where = _import_tree(Path(cfg["path"]).resolve())
        send({"threads": torch.get_num_threads(), "gatr": where, "torch": torch.__version__})
        for line in inp:
            request = json.loads(line)
            if request["op"] == "prepare":
                send(_prepare(models, gatr_cls, get_algebra, request, cfg))
            elif request["op"] == "time":
                send({"seconds": time_steps(models[request["index"]], request["steps"], torch.device(cfg["device"]))})
    except Exception as err:  # noqa: BLE001 -- any failure of the other tree becomes one line for the parent
        send({"error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"})
        return 1
    return 0


if __name__ == "__main__":  # the worker: stdout is the protocol channel, anything printed goes to stderr
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.exit(serve(sys.stdin, channel))
