"""Shared set-up of the User Manager's tests: the plugin folder (and the API integration
layer's, whose client the plugin uses) on the path when run with plain pytest."""

from __future__ import annotations

import sys
from pathlib import Path

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
LAYER_ROOT = PLUGIN_ROOT.parent / "api_integration_layer"
for folder in (PLUGIN_ROOT, LAYER_ROOT):
    if folder.is_dir() and str(folder) not in sys.path:
        # Appended: first on the path, a plugin folder's "tests" would shadow the
        # project's "tests" package.
        sys.path.append(str(folder))
