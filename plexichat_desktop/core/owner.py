"""Which process owns a row that several processes share (a test run in the result store):
a process id with the time that process started, so a reused id is not taken for the
owner still running."""

from __future__ import annotations

import functools
import os

# Seconds two readings of one process's start time may differ by: psutil derives it from
# the boot time, which moves when the clock is stepped (NTP, a manual change), and the
# owner's reading was taken when the row was written.
START_TOLERANCE = 5.0


@functools.cache
def this_process() -> str:
    """This process as an owner: ``"<pid>@<start time>"``."""
    import psutil

    return f"{os.getpid()}@{psutil.Process().create_time():.2f}"


def is_running(owner: str | None) -> bool:
    """Whether the process ``owner`` names (see :func:`this_process`) still runs; False
    for None, anything that names no process, and a process that has ended but was not
    yet reaped by its parent (a zombie)."""
    import psutil

    pid, _, started = (owner or "").partition("@")
    try:
        process = psutil.Process(int(pid))
        return (abs(process.create_time() - float(started)) <= START_TOLERANCE
                and process.status() != psutil.STATUS_ZOMBIE)
    except (ValueError, psutil.Error):
        return False
