"""A test session's CPU priority: below the app's, so that a run yields the CPU to the
desktop (the app's window included) when both want it, and takes all of it otherwise.

Each session is a process session of its own (``setsid``: a timeout kills its whole
group). Where Linux groups processes by session for the scheduler (autogroup, on by
default on desktop distributions unless the CPU is shared out by cgroups), each session is
weighed like the whole desktop session, so four running suites took four fifths of a
2-core machine from the window, and a process's own nice value only counts inside its
group: the group's is lowered too. POSIX only (Windows has no nice value).
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from pathlib import Path
from typing import Protocol

AUTOGROUP = Path("/proc/self/autogroup")
# Seconds a session keeps asking for its group's priority: the kernel takes one such change
# every 100 ms machine-wide (without CAP_SYS_ADMIN), and a run of all plugins starts up to
# eight sessions at once, which then take turns.
GROUP_RETRY_FOR = 2.0


class _GroupFile(Protocol):
    def exists(self) -> bool: ...
    def write_text(self, data: str) -> int: ...


def lower_priority(nice: int, group: _GroupFile = AUTOGROUP) -> None:
    """Lower this process's CPU priority by ``nice`` (0-19), and set its scheduler group's
    to ``nice`` when the process leads a session of its own (only then is the group its
    alone). Lowering needs no privileges; where it is not possible at all (no such call,
    a read-only /proc) the session runs as it is. Call once per process: ``os.nice`` adds
    up."""
    if nice <= 0:
        return
    with contextlib.suppress(OSError, AttributeError):
        os.nice(nice)
    try:
        if os.getsid(0) != os.getpid() or not group.exists():
            return
    except (OSError, AttributeError):
        return
    deadline = time.monotonic() + GROUP_RETRY_FOR
    while True:
        try:
            group.write_text(str(nice))
            return
        except BlockingIOError:  # EAGAIN: another session's change came less than 100 ms ago
            if time.monotonic() > deadline:
                return
            time.sleep(random.uniform(0.01, 0.03))
        except OSError:
            return
