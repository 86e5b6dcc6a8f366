"""Shared set-up of the Development Tools suite.

The test manager runs this suite with the plugin folder on ``PYTHONPATH``; run directly
(``pytest plugins/dev_tools/tests``) it is put there here, with the tests folder for the
helpers module. Async tests carry ``pytest.mark.asyncio`` and take no async fixture (the
plugin comes from ``devtools_helpers.open_env``), so they run under pytest-asyncio and
under the test manager's own runner alike. Workspaces are real folders under
``tmp_path``; git, ruff, make and pytest run for real.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
for folder in (PLUGIN_ROOT, PLUGIN_ROOT / "tests"):
    if str(folder) not in sys.path:
        # Appended: first on the path, the plugin folder's "tests" would shadow the
        # project's "tests" package when both suites run in one session.
        sys.path.append(str(folder))

from devtools_helpers import GIT_ENV  # noqa: E402


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    # Commits in tests need an author, and the user's own git config must not apply.
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
