"""Running blocking file work in a thread as a host job, with progress and a real cancel.

A thread cannot be interrupted, so a cancelled job sets :class:`Ctl`'s event and waits
for the thread to notice it (between chunks) and clean up its partial output; the job
ends only then, so "cancelled" means nothing half-written is left behind.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from plexichat_desktop.plugins.jobs import JobHandle

T = TypeVar("T")


class Cancelled(Exception):
    """Raised inside the worker thread when the job was cancelled."""


class Ctl:
    """What the thread sees of its job: a cancel flag and a throttled progress report."""

    def __init__(self, job: JobHandle | None, loop: asyncio.AbstractEventLoop | None):
        self._job = job
        self._loop = loop
        self.cancel_event = threading.Event()
        self._last = 0.0

    def check(self) -> None:
        if self.cancel_event.is_set():
            raise Cancelled("cancelled")

    def progress(self, done: float, total: float | None, message: str | None = None,
                 *, force: bool = False) -> None:
        now = time.monotonic()
        if self._job is None or self._loop is None or (not force and now - self._last < 0.1):
            return
        self._last = now
        # The job's hub belongs to the event loop: report through it, not from this thread.
        self._loop.call_soon_threadsafe(self._job.progress, done, total, message)


async def run_in_thread(job: JobHandle | None, fn: Callable[..., T], *args: Any) -> T:
    """``fn(ctl, *args)`` in a worker thread; cancelling waits for it to stop cleanly."""
    loop = asyncio.get_running_loop()
    ctl = Ctl(job, loop)
    future = loop.run_in_executor(None, fn, ctl, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        ctl.cancel_event.set()
        try:
            await asyncio.wait([future])
        finally:
            if future.done() and not future.cancelled():
                future.exception()  # a Cancelled from the thread is the expected end
        raise
