"""One running app per home: a lock file in the data dir that also says where it serves.

Two instances on one data dir would run every schedule twice and fight over the port,
so a second launch finds the first through this file instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class InstanceLock:
    """An advisory lock on ``<data dir>/instance.lock``, released when the process ends."""

    def __init__(self, data_dir: Path):
        self.path = data_dir / "instance.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> bool:
        """Take the lock; False when another live process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held while running
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                return False
        self._file = handle
        self._write({"pid": os.getpid(), "url": None})
        return True

    def publish(self, url: str) -> None:
        """Record the URL the holder serves, for the next launch to find."""
        self._write({"pid": os.getpid(), "url": url})

    def _write(self, data: dict[str, Any]) -> None:
        assert self._file is not None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(json.dumps(data))
        self._file.flush()

    def holder(self) -> dict[str, Any]:
        """What the current holder wrote: {"pid", "url"} (url None while it starts)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def release(self) -> None:
        if self._file is not None:
            if fcntl is not None:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
