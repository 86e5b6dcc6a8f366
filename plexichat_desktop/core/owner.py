"""Which process owns a row that several processes share (a test run in the result store):
a process id with the time that process started, so a reused id is not taken for the
owner still running."""

from __future__ import annotations

import functools
import os


@functools.cache
def this_process() -> str:
    """This process as an owner: ``"<pid>@<start time>"``."""
    import psutil

    return f"{os.getpid()}@{psutil.Process().create_time():.2f}"


def is_running(owner: str | None) -> bool:
    """Whether the process ``owner`` names (see :func:`this_process`) still runs; False
    for None or anything else that names no process."""
    import psutil

    pid, _, started = (owner or "").partition("@")
    try:
        return f"{psutil.Process(int(pid)).create_time():.2f}" == started
    except (ValueError, psutil.Error):
        return False
