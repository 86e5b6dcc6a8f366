"""Shared set-up of the API tester's tests: the plugin folder on the path.

Run directly (``pytest plugins/api_tester/tests``) the folder is put on the path here;
the helpers (a loopback server, the real app core) are in ``api_tester.testing``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from plexichat_desktop.testing.shared_ssl import share_default_ssl_context

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
if str(PLUGIN_ROOT) not in sys.path:
    # Appended: first on the path, the plugin folder's "tests" would shadow the project's.
    sys.path.append(str(PLUGIN_ROOT))


# Dozens of httpx clients, all to plain http on loopback: one CA load, not one each.
share_default_ssl_context()
