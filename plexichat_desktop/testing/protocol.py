"""The wire protocol between a pytest child and the host.

The child (our pytest plugin, :mod:`plexichat_desktop.testing.reporter`) writes one JSON
object per line to a dedicated pipe, never to the test's stdout. Every object has
``"v"`` (the protocol version) and ``"event"``. Readers ignore unknown events and keys.

Events, in order:
- ``session_start``: pytest_version, python, rootdir, pid
- ``collected``: items = [{nodeid, file, line, name, cls}]
- ``collect_error``: nodeid, file, message, longrepr
- ``collect_skip``: nodeid, file, message (a module skipped while it was collected)
- ``test_start``: nodeid
- ``phase``: nodeid, when (setup|call|teardown|subtest), label (a subtest's ``(i=1)``, else
  null), outcome (passed|failed|skipped), category (pytest's own status word: passed,
  failed, error, skipped, xfailed, xpassed or ""), duration, message, longrepr, stdout,
  stderr, log
- ``test_end``: nodeid, outcome (the test's final outcome), duration, message, phase
- ``warning``: message, category, filename, lineno, nodeid
- ``internal_error``: message, longrepr (pytest's INTERNALERROR report; the session ends)
- ``session_end``: exitstatus (pytest's exit code)

Text fields are truncated to ``MAX_TEXT`` characters with a marker saying how much was cut.
"""

from __future__ import annotations

import json
from typing import Any

PROTOCOL_VERSION = 1
FD_ENV = "PLEXICHAT_REPORT_FD"
MODE_ENV = "PLEXICHAT_REPORT_MODE"      # "run" (default) or "collect"
STACKS_ENV = "PLEXICHAT_STACKS_FILE"    # where the child dumps its stacks on SIGUSR1
NICE_ENV = "PLEXICHAT_TEST_NICE"        # how far the child lowers its CPU priority
MAX_TEXT = 64 * 1024


def truncate(text: str | None, limit: int = MAX_TEXT) -> str:
    """Keep the head and the tail of long text: a traceback's end matters most."""
    if not text:
        return ""
    if len(text) <= limit:
        return text
    head = limit // 4
    tail = limit - head
    cut = len(text) - limit
    return f"{text[:head]}\n... [{cut} characters truncated] ...\n{text[-tail:]}"


# One encoder for every event: json.dumps() builds a new one per call when given options
# (a child encodes five events per test).
_ENCODER = json.JSONEncoder(ensure_ascii=True, default=str)


def encode(event: str, **fields: Any) -> bytes:
    payload = {"v": PROTOCOL_VERSION, "event": event, **fields}
    return (_ENCODER.encode(payload) + "\n").encode("ascii")


def decode(line: bytes) -> dict[str, Any] | None:
    """One event, or None for a line that is not ours (never raises)."""
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or "event" not in data:
        return None
    return data
