"""Which process owns a row that several processes share (a test run in the result store):
a process id with when that process started, so a reused id is not taken for the owner
still running.

On Linux "when" is the process's start in clock ticks since boot (``/proc/<pid>/stat``),
which no change of the wall clock moves; elsewhere psutil's start time, which derives from
the boot time and moves with the clock, so readings within ``START_TOLERANCE`` count as
the same process."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

START_TOLERANCE = 5.0  # seconds, for psutil's wall-clock start times


def _started(pid: int) -> str | None:
    """When ``pid`` started: ``"t<ticks>"`` (Linux) or ``"<unix time>"``; None when no
    such process runs (ended, a zombie, or never there)."""
    if sys.platform.startswith("linux"):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        fields = stat[stat.rindex(")") + 2:].split()  # the name may hold spaces and ')'
        return None if fields[0] in ("Z", "X") else f"t{fields[19]}"
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return f"{process.create_time():.2f}"
    except psutil.Error:
        return None


@functools.cache
def this_process() -> str:
    """This process as an owner: ``"<pid>@<start>"``."""
    return f"{os.getpid()}@{_started(os.getpid())}"


def is_running(owner: str | None) -> bool:
    """Whether the process ``owner`` names (see :func:`this_process`) still runs; False
    for None, anything that names no process, and a process that has ended but was not
    yet reaped by its parent (a zombie)."""
    pid, _, started = (owner or "").partition("@")
    try:
        now = _started(int(pid)) if int(pid) > 0 else None
    except ValueError:
        return False
    if now is None or not started:
        return False
    if started.startswith("t") or now.startswith("t"):
        return now == started
    try:
        return abs(float(now) - float(started)) <= START_TOLERANCE
    except ValueError:
        return False
