"""Shared set-up of the Security Toolkit's tests.

Argon2 runs with tiny costs here (a setting, ``FAST_KDF``); the app's defaults are the
real ones. Async tests carry ``pytest.mark.asyncio`` and take no async fixtures (the test
manager's runner and pytest-asyncio both run them); the app starts inside a test through
the ``app`` fixture's async context manager.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from plexichat_desktop.testing.shared_ssl import share_default_ssl_context

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_ID = "security_toolkit"
LAYER_ROOT = PLUGIN_ROOT.parent / "api_integration_layer"
for _folder in (PLUGIN_ROOT, LAYER_ROOT):
    if str(_folder) not in sys.path:
        # Appended, so a plugin folder's "tests" cannot shadow the project's "tests".
        sys.path.append(str(_folder))

FAST_KDF = {"kdf_time_cost": 1, "kdf_memory_kib": 64, "kdf_parallelism": 1}


@pytest.fixture(scope="session")
def rage_passphrase_file() -> tuple[str, bytes]:
    """A passphrase and the age file ``files.encrypt`` made with it, checked to be a
    passphrase file that opens with it.

    rage gives the files it makes the work factor of about a second of scrypt here (some
    1.5 s of CPU), and opening one costs as much again, so the suite makes and opens one
    such file once: test_tools' round trip and test_age_work_factor's real-factor cases
    share it."""
    from security_toolkit import files

    passphrase = "long enough phrase"
    sealed = files.encrypt(b"diary", passphrase=passphrase)
    assert files.is_passphrase_file(sealed)
    assert files.decrypt(sealed, passphrase=passphrase) == b"diary"
    return passphrase, sealed


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``async with app(**settings) as (client, plugin, server)``: the real app core with
    this plugin and the API integration layer; ``client`` is an httpx client on this
    plugin's routes with the app token. ``with_v1=True`` serves the embedded v1 API too
    (secure messages need it; the rest of the plugin does not, and it is a good part of
    a core's start)."""
    import httpx
    from api_integration_layer.testing import embedded_server, plugin_folder

    from plexichat_desktop.core.paths import PLUGINS_PATH_ENV

    monkeypatch.delenv(PLUGINS_PATH_ENV, raising=False)

    @contextlib.asynccontextmanager
    async def start(*, with_v1: bool = False, **settings: Any) -> AsyncIterator[Any]:
        folder = plugin_folder(tmp_path, PLUGIN_ROOT, LAYER_ROOT)
        async with embedded_server(tmp_path / "apphome", plugin_dirs=[folder],
                                   plugin_settings={PLUGIN_ID: {**FAST_KDF, **settings}},
                                   enabled=with_v1) as server:
            record = server.runtime.plugins.by_id[PLUGIN_ID]
            assert str(record.state) == "active", (record.reason, record.detail)
            async with httpx.AsyncClient(
                    base_url=f"{server.url}plugins/{PLUGIN_ID}/api/", timeout=60,
                    headers=server.app_headers) as client:
                yield client, record.instance, server

    return start


# Dozens of httpx clients, all to plain http on loopback: one CA load, not one each.
share_default_ssl_context()
