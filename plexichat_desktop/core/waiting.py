"""Waiting on several things at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


async def first_set(*events: asyncio.Event, timeout: float | None = None) -> None:
    """Return once any of ``events`` is set, or after ``timeout`` seconds (never with
    ``None``), whichever comes first; the waits left over are cancelled."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()


async def within(awaitable: Awaitable[T], timeout: float | None) -> T:
    """``asyncio.wait_for`` as Python 3.12 has it: ``awaitable``'s result, or TimeoutError
    after ``timeout`` seconds (it is cancelled then). On Python 3.11, wait_for returned the
    result when a cancel of the caller met an awaitable that had just finished, and the
    caller went on as if never cancelled: a test manager worker stopped while its run's
    child exited waited again for ever, and the app's stop with it."""
    async with asyncio.timeout(timeout):
        return await awaitable


async def wait_set(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until ``event`` is set, or ``timeout`` seconds (never with ``None``); whether
    it is set. A cancel always ends the wait: with ``asyncio.wait_for`` on Python 3.11 a
    cancel that met a wait that had just finished was dropped, and a loop around it (a
    worker, a dispatcher, a timer) waited again, its stop with it."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
    return event.is_set()


async def wait_ended(task: asyncio.Future[Any]) -> None:
    """Wait until ``task`` has ended; its being cancelled is no error here. A cancel of
    the caller meanwhile is raised, not swallowed with the task's own: a timeout around
    a stop that waits so still ends that stop."""
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


async def cancel_and_wait(task: asyncio.Future[Any] | None) -> None:
    """Cancel ``task`` (when there is one) and wait until it has ended (see
    :func:`wait_ended`)."""
    if task is not None:
        task.cancel()
        await wait_ended(task)
