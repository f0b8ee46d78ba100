"""Worker processes that die with their parent.

A ``ProcessPoolExecutor`` worker whose parent is killed (``kill -9``, an OOM kill, a closed terminal)
keeps running the queued work and holds its memory. :func:`worker_pool` gives every worker a daemon
thread that ends it once its parent process is gone (its parent pid changes), within ``poll_s``.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

__all__ = ["worker_pool"]


def _exit_with_parent(parent_pid: int, poll_s: float) -> None:
    def watch():
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent_pid:  # re-parented: the parent died
                os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def worker_pool(max_workers: int, poll_s: float = 1.0) -> ProcessPoolExecutor:
    """A "spawn" process pool (safe with torch and threads loaded) whose workers exit with this process."""
    return ProcessPoolExecutor(max_workers=max_workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_exit_with_parent, initargs=(os.getpid(), poll_s))
