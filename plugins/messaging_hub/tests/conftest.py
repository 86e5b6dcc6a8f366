"""Shared set-up of the Messaging Hub's tests.

The test manager runs this suite with the plugin folder on ``PYTHONPATH``; run directly
(``pytest plugins/messaging_hub/tests``) it is put there here, and the API integration
layer's folder too (its client drives the second user in the tests).

One app serves the whole session (``app``): starting it is the slow part, and every test
works on people, conversations and outbox items of its own.
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

# A short undo window, so that the undo-send test waits 2 s for a send, not the default.
SETTINGS = {"plugin": {"messaging_hub": {"undo_seconds": 2}}}


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlexiChatApp]:
    """The app with this plugin (and the API layer signed in as a v1 user), for every
    test module: test_app.py and test_outbox_clock.py each started one before."""
    with start_app(PLUGIN_ROOT, tmp_path_factory.mktemp("home"), SETTINGS) as running:
        yield running


# Dozens of httpx clients (the tests', the app's own), all to plain http on loopback:
# one CA load, not one each.
share_default_ssl_context()
