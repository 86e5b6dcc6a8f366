"""Shared set-up of the Data Visualizer's tests: the plugin folder on the path, and a
factory of real files written into the test's temporary folder."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from plexichat_desktop.testing.shared_ssl import share_default_ssl_context

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
# The layer's folder for api_integration_layer.testing, which a test may import before any
# app has loaded the layer (and put it on the path).
LAYER_ROOT = PLUGIN_ROOT.parent / "api_integration_layer"
for _folder in (PLUGIN_ROOT, LAYER_ROOT):
    if str(_folder) not in sys.path:
        # Appended: first on the path, a plugin folder's "tests" would shadow the project's.
        sys.path.append(str(_folder))


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str | bytes], Path]:
    """``write_file(name, content)``: a real file in the test's folder."""

    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8", newline="")
        else:
            path.write_bytes(content)
        return path

    return write


# The app's and the tests' httpx clients, all to plain http on loopback: one CA load, not
# one each.
share_default_ssl_context()
