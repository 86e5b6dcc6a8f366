"""Shared set-up of the Network Scanner's tests.

NETWORK SAFETY: every test here reaches only 127.0.0.0/8. The autouse ``no_escape``
fixture patches ``socket.connect`` and ``getaddrinfo`` so that an attempt to connect
to, or look up, anything else fails the test (and is listed) instead of being sent.
Async tests take no async fixtures (the test manager's runner and pytest-asyncio both
run them); listeners and the app start inside each test.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
LAYER_ROOT = PLUGIN_ROOT.parent / "api_integration_layer"
for _folder in (PLUGIN_ROOT, LAYER_ROOT):
    if str(_folder) not in sys.path:
        # Appended, so a plugin folder's "tests" cannot shadow the project's "tests".
        sys.path.append(str(_folder))

from network_scanner.testing import loopback_only  # noqa: E402


@pytest.fixture(autouse=True)
def no_escape(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every test: anything but loopback fails; the attempts are checked afterwards too
    (an attempt swallowed by code under test still fails the test)."""
    with loopback_only(monkeypatch) as attempts:
        yield attempts
    assert not attempts, f"tried to leave loopback: {attempts}"
