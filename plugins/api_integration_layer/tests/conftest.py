"""Shared set-up of the API integration layer's tests.

The test manager runs this suite with the plugin folder on ``PYTHONPATH``; run directly
(``pytest plugins/api_integration_layer/tests``) it is put there here. Async tests carry
``pytest.mark.asyncio`` and take no async fixtures, so they run both under pytest-asyncio
and under the test manager's own runner; servers are started inside each test with
``api_integration_layer.testing.embedded_server``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
if str(PLUGIN_ROOT) not in sys.path:
    # Appended: first on the path, the plugin folder would make its "tests" folder shadow
    # the project's "tests" package when both suites run in one pytest session.
    sys.path.append(str(PLUGIN_ROOT))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A folder for one test's server homes."""
    return tmp_path / "home"
