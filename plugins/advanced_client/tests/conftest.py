"""Shared set-up of the Advanced Client's tests.

The test manager runs this suite with the plugin folder on ``PYTHONPATH``; run directly
(``pytest plugins/advanced_client/tests``) it is put there here, and the API integration
layer's folder too (its errors and testing helpers).
"""

from __future__ import annotations

import sys
from pathlib import Path

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
for folder in (PLUGIN_ROOT, PLUGIN_ROOT.parent / "api_integration_layer"):
    if str(folder) not in sys.path:
        # Appended: first on the path, the plugin folder's "tests" would shadow the
        # project's "tests" package when both suites run in one pytest session.
        sys.path.append(str(folder))
