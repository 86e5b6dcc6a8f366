"""Waiting on several things at once."""

from __future__ import annotations

import asyncio
from typing import Any


async def first_set(*events: asyncio.Event, timeout: float | None = None) -> None:
    """Return once any of ``events`` is set, or after ``timeout`` seconds (never with
    ``None``), whichever comes first; the waits left over are cancelled."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()


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
