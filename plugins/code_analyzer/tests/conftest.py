"""Shared helpers: real git repositories and small source trees made in temp dirs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from plexichat_desktop.testing.shared_ssl import share_default_ssl_context

# The test manager puts the plugin folder on PYTHONPATH; a plain pytest run needs this.
PLUGIN_ROOT = Path(__file__).resolve().parents[1]
if str(PLUGIN_ROOT) not in sys.path:
    sys.path.insert(0, str(PLUGIN_ROOT))

GIT_ENV = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env={**os.environ, **GIT_ENV}).stdout


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


@pytest.fixture
def run_git() -> Callable[..., str]:
    """``run_git(repo, "commit", ...)`` with a fixed identity and no user config."""
    return git


@pytest.fixture(scope="session")
def make_files() -> Callable[[Path, dict[str, str | bytes]], None]:
    return write


@pytest.fixture
def four_branches() -> str:
    return FOUR_BRANCHES


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty git repository with one commit-ready identity."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    return root


# A function with four decisions: cyclomatic complexity 5.
FOUR_BRANCHES = '''\
def grade(score):
    """Letter for a score."""
    if score > 90:
        return "A"
    elif score > 80:
        return "B"
    elif score > 70:
        return "C"
    for _ in range(1):
        pass
    return "F"
'''


# The app's and the tests' httpx clients, all to plain http on loopback: one CA load, not
# one each.
share_default_ssl_context()
