"""core.waiting: the helpers every stop uses to end its background tasks."""

import asyncio

import pytest

from plexichat_desktop.core.waiting import (
    cancel_and_wait,
    first_set,
    wait_ended,
    wait_set,
    within,
)

pytestmark = pytest.mark.asyncio


async def slow_to_end(ended: asyncio.Event) -> None:
    """A task that takes a while to end once cancelled (a clean-up of its own)."""
    try:
        await asyncio.sleep(3600)
    finally:
        await asyncio.sleep(0.5)
        ended.set()


async def test_cancel_and_wait_ends_the_task_and_returns():
    ended = asyncio.Event()
    task = asyncio.ensure_future(slow_to_end(ended))
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert task.cancelled() and ended.is_set()
    await cancel_and_wait(None)  # nothing to stop


async def test_a_timeout_around_a_stop_still_ends_the_stop():
    """The caller's own cancel (here its timeout) is raised, not swallowed with the task's:
    a stop given a deadline gives up at the deadline (asyncio passes that cancel on to the
    task too, which ends)."""
    ended = asyncio.Event()
    task = asyncio.ensure_future(slow_to_end(ended))
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await cancel_and_wait(task)
    assert not ended.is_set()
    await wait_ended(task)
    assert task.done()


async def test_wait_ended_raises_what_the_task_raised():
    async def fails() -> None:
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        await wait_ended(asyncio.ensure_future(fails()))


async def test_first_set_returns_on_the_first_event_or_the_timeout():
    first, second = asyncio.Event(), asyncio.Event()
    asyncio.get_running_loop().call_soon(second.set)
    await asyncio.wait_for(first_set(first, second), 5)
    await first_set(asyncio.Event(), timeout=0.01)  # none set: the timeout ends it


async def test_wait_set_says_whether_the_event_came_and_a_cancel_always_ends_it():
    event = asyncio.Event()
    assert await wait_set(event, 0.01) is False
    asyncio.get_running_loop().call_soon(event.set)
    assert await wait_set(event, 5) is True
    # Woken in the turn that cancels it, a loop around the wait still ends (with
    # asyncio.wait_for on Python 3.11 the cancel was dropped and the loop went on).
    event.clear()

    async def loop_until_cancelled() -> None:
        while True:
            event.clear()
            await wait_set(event, 600)

    looping = asyncio.ensure_future(loop_until_cancelled())
    await asyncio.sleep(0.01)
    event.set()
    looping.cancel()
    done, _ = await asyncio.wait([looping], timeout=10)
    assert looping in done and looping.cancelled()


async def test_within_gives_the_result_or_a_timeout_and_never_drops_a_cancel():
    loop = asyncio.get_running_loop()
    assert await within(asyncio.sleep(0, "done"), 5) == "done"
    slow = asyncio.ensure_future(asyncio.sleep(60))
    with pytest.raises(TimeoutError):
        await within(slow, 0.01)
    await asyncio.sleep(0)
    assert slow.cancelled()  # as wait_for: what timed out is cancelled
    # The caller cancelled in the turn its awaitable finishes (a run's child exiting as
    # the manager stops): the cancel is raised. asyncio.wait_for on Python 3.11 returned
    # the result instead, and the stopped worker went on.
    exit_code = loop.create_future()
    waiting = asyncio.ensure_future(within(asyncio.shield(exit_code), 60))
    await asyncio.sleep(0)
    exit_code.set_result(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
