"""A test session's CPU priority: below the app's, so that a run yields the CPU to the
desktop (the app's window included) when both want it, and takes all of it otherwise.

Each session is a process session of its own (``setsid``: a timeout kills its whole
group). Where Linux groups processes by session for the scheduler (autogroup, on by
default on desktop distributions), each session is weighed like the whole desktop
session, so four running suites took four fifths of a 2-core machine from the window, and
a process's own nice value only counts inside its group: the group's is lowered too.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

AUTOGROUP = Path("/proc/self/autogroup")


def lower_priority(nice: int) -> None:
    """Lower this process's CPU priority by ``nice`` (0-19), and its scheduler group's when
    the process leads a session of its own (only then is the group its alone). Raising a
    priority needs privileges, lowering never does; where neither is possible (no such
    call, a sandbox refusing it) the session runs as it is."""
    if nice <= 0:
        return
    with contextlib.suppress(OSError, AttributeError):
        os.nice(nice)
    with contextlib.suppress(OSError, AttributeError):
        if os.getsid(0) == os.getpid() and AUTOGROUP.exists():
            AUTOGROUP.write_text(str(nice))
