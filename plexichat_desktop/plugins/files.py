"""A plugin's own data files: what to do with one that can no longer be read.

A settings or state file a user edited by hand (or a crash cut short) must not stop the
plugin, and what it held must not be lost: ``keep_aside`` moves it out of the way under a
name of its own, and the plugin starts from what it could read, saying where the file
went.
"""

from __future__ import annotations

import time
from pathlib import Path


def keep_aside(path: Path) -> Path:
    """Move ``path`` to ``<name>.broken-<unix time>`` beside it (``-2``, ``-3``... when
    one was kept aside in the same second: an earlier one is never replaced) and return
    the new path. Raises ``OSError`` when it cannot be moved."""
    stamp, n = int(time.time()), 1
    broken = path.with_name(f"{path.name}.broken-{stamp}")
    while broken.exists():
        n += 1
        broken = path.with_name(f"{path.name}.broken-{stamp}-{n}")
    path.replace(broken)
    return broken
