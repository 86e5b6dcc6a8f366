"""Shared set-up of the Advanced Client's tests.

The test manager runs this suite with the plugin folder on ``PYTHONPATH``; run directly
(``pytest plugins/advanced_client/tests``) it is put there here, and the API integration
layer's folder too (its errors and testing helpers).

One app serves the whole session (``app``): starting it is the slow part, and every test
works on chats, users and clips of its own.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from plexichat_desktop.testing.harness import PlexiChatApp, start_app
from plexichat_desktop.testing.shared_ssl import share_default_ssl_context

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
for folder in (PLUGIN_ROOT, PLUGIN_ROOT.parent / "api_integration_layer"):
    if str(folder) not in sys.path:
        # Appended: first on the path, the plugin folder's "tests" would shadow the
        # project's "tests" package when both suites run in one pytest session.
        sys.path.append(str(folder))

# The built-in provider streams a token every 20 ms, so that "stop" has an answer to
# interrupt (test_app.full_speed turns that off for a test; no test asserts a duration);
# recordings may be 10 s long.
SETTINGS = {"api": {"ai_builtin_token_delay": 0.02, "ai_requests_per_minute": 0},
            "plugin": {"advanced_client": {"default_model": "builtin/plexi-echo",
                                           "max_audio_seconds": 10}}}


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlexiChatApp]:
    """The app with this plugin (and the API layer signed in as a v1 user), for every
    test module: test_app.py and test_voice.py each started one with their settings."""
    with start_app(PLUGIN_ROOT, tmp_path_factory.mktemp("home"), SETTINGS) as running:
        yield running


# Dozens of httpx clients (the tests', the app's own), all to plain http on loopback:
# one CA load, not one each.
share_default_ssl_context()
