"""Worker processes that die with their parent.

A ``ProcessPoolExecutor`` worker whose parent is killed (``kill -9``, an OOM kill, a closed terminal)
keeps running the queued work and holds its memory. :func:`worker_pool` gives every worker a daemon
thread that ends it once its parent process is gone (its parent pid changes), within ``poll_s``.

On a machine with several GPUs, ``devices`` gives each worker its own: the worker's
``CUDA_VISIBLE_DEVICES`` is set to one entry before anything imports torch, so ``--jobs K`` sweeps put
one run on each GPU instead of all of them on the first (:func:`device_slots` spreads K workers over
the visible GPUs).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

__all__ = ["worker_pool", "device_slots"]


def device_slots(workers: int, visible: str | None = None, count: int | None = None) -> list[str] | None:
    """The GPU each of ``workers`` workers gets (round robin), or None with fewer than two GPUs.

    Parameters
    ----------
    workers : number of worker processes
    visible : the parent's ``CUDA_VISIBLE_DEVICES`` (default: read from the environment); its entries
        are the GPUs handed out, in order
    count : GPUs visible when ``CUDA_VISIBLE_DEVICES`` is unset (default: ``torch.cuda.device_count()``)
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    if visible is not None and visible.strip() != "":
        ids = [v.strip() for v in visible.split(",") if v.strip()]
    else:
        if count is None:
            import torch

            count = torch.cuda.device_count()
        ids = [str(i) for i in range(count)]
    if len(ids) < 2 or workers < 2:
        return None
    return [ids[k % len(ids)] for k in range(workers)]


def _init_worker(parent_pid: int, poll_s: float, slots) -> None:
    if slots is not None:  # before the task's unpickling imports torch
        os.environ["CUDA_VISIBLE_DEVICES"] = slots.get()
    _exit_with_parent(parent_pid, poll_s)


def _exit_with_parent(parent_pid: int, poll_s: float) -> None:
    def watch():
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent_pid:  # re-parented: the parent died
                os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def worker_pool(max_workers: int, poll_s: float = 1.0, devices: list[str] | None = None) -> ProcessPoolExecutor:
    """A "spawn" process pool (safe with torch and threads loaded) whose workers exit with this process;
    with ``devices`` (one entry per worker, e.g. from :func:`device_slots`), worker k sees only GPU
    ``devices[k]``."""
    ctx = multiprocessing.get_context("spawn")
    slots = None
    if devices:
        if len(devices) != max_workers:
            raise ValueError(f"devices: expected one per worker ({max_workers}), got {devices!r}")
        slots = ctx.Queue()
        for d in devices:
            slots.put(str(d))
    return ProcessPoolExecutor(max_workers=max_workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(os.getpid(), poll_s, slots))
