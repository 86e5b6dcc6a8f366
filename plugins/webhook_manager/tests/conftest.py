"""Shared set-up of the webhook manager's tests.

The test manager runs this suite with the plugin folder on ``PYTHONPATH``; run directly
(``pytest plugins/webhook_manager/tests``) it is put there here, and the API integration
layer's folder too (its testing helpers: a loopback receiver, signature checks).
"""

from __future__ import annotations

import sys
from pathlib import Path

from plexichat_desktop.testing.shared_ssl import share_default_ssl_context

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
for folder in (PLUGIN_ROOT, PLUGIN_ROOT.parent / "api_integration_layer"):
    if str(folder) not in sys.path:
        # Appended: first on the path, the plugin folder's "tests" would shadow the
        # project's "tests" package when both suites run in one pytest session.
        sys.path.append(str(folder))


# Dozens of httpx clients (the tests', the app's own), all to plain http on loopback:
# one CA load, not one each.
share_default_ssl_context()
