"""Shared set-up of the User Manager's tests: the plugin folder (and the API integration
layer's, whose client the plugin uses) on the path when run with plain pytest."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from plexichat_desktop.server.v1 import mfa
from plexichat_desktop.testing.harness import PlexiChatApp, start_app, v1_user
from plexichat_desktop.testing.shared_ssl import share_default_ssl_context

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
LAYER_ROOT = PLUGIN_ROOT.parent / "api_integration_layer"
for folder in (PLUGIN_ROOT, LAYER_ROOT):
    if folder.is_dir() and str(folder) not in sys.path:
        # Appended: first on the path, a plugin folder's "tests" would shadow the
        # project's "tests" package.
        sys.path.append(str(folder))

_accounts = itertools.count(1)


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlexiChatApp]:
    # Starting the app (and its embedded v1 server) was most of each test's time; every
    # test works on an account of its own (below), so one app serves the whole module.
    with start_app(PLUGIN_ROOT, tmp_path_factory.mktemp("plexichat-home")) as app:
        yield app


@pytest.fixture
def plexichat_app(shared_app: PlexiChatApp,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[PlexiChatApp]:
    """The shared app with a new v1 account of this test's own, which the API layer (so
    the plugin's ``ctx.api``) is signed in as: what the harness's fixture gives, without
    starting an app per test."""
    # A recovery code's digest is memory-hard on purpose (some 50 ms each, and a wizard
    # makes tens of them); the tests check what is done with the codes, not the cost,
    # as the harness's cheap scrypt_cost does for passwords.
    monkeypatch.setattr(mfa, "RECOVERY_SCRYPT_LOG_N", 4)
    # The name starts with its own number: the administrators' search by a prefix of it
    # finds this account alone among the module's.
    name = f"um{next(_accounts):04d}harness"
    clients: list[Any] = []
    try:
        yield replace(shared_app, user=v1_user(shared_app, clients, name))
    finally:
        for client in clients:
            client.close()


# Dozens of httpx clients, all to plain http on loopback: one CA load, not one each.
share_default_ssl_context()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """The server's TOTP clock stands still at ``T0`` of test_account_console (a code is
    refused once used: a test that needs more codes moves it on a step)."""
    from tests.test_account_console import T0

    state = {"now": T0}
    monkeypatch.setattr(mfa, "current_time", lambda: state["now"])
    return state
