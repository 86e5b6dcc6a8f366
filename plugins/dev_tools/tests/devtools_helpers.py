"""Helpers of the dev_tools suite (a uniquely named module: suites share one process)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
from dev_tools import DevToolsPlugin
from dev_tools.config import DevToolsConfig
from fastapi import FastAPI

from plexichat_desktop.core.events import EventBus
from plexichat_desktop.plugins.api import PluginContext
from plexichat_desktop.plugins.manifest import load_manifest
from plexichat_desktop.plugins.settings import validate_settings

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
GIT_ENV = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


class Env:
    """The plugin, its HTTP client, and helpers to make workspaces and wait for jobs."""

    def __init__(self, plugin: DevToolsPlugin, client: httpx.AsyncClient, root: Path):
        self.plugin = plugin
        self.client = client
        self.root = root

    def make(self, name: str, files: dict[str, str]) -> Path:
        folder = self.root / name
        for rel, text in files.items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    async def job(self, started: httpx.Response) -> dict[str, Any]:
        """Wait for the job a 202 answer started; returns its final dict."""
        assert started.status_code == 202, started.text
        body = started.json()
        job_id = body["job"]["id"] if "job" in body else body["id"]
        await self.plugin.ctx.jobs.wait(job_id)
        return self.plugin.ctx.jobs.get(job_id).to_dict()

    async def result(self, started: httpx.Response) -> dict[str, Any]:
        job = await self.job(started)
        assert job["state"] == "succeeded", job["error"]
        return job["result"]


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True,
                          text=True).stdout


def make_repo(folder: Path) -> Path:
    git(folder, "init", "-q", "-b", "main")
    return folder


async def until(predicate: Callable[[], bool], what: str, tries: int = 500) -> None:
    """Poll without a wall-clock assertion: give up after many short sleeps."""
    for _ in range(tries):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


@contextlib.asynccontextmanager
async def open_env(tmp_path: Path) -> AsyncIterator[Env]:
    """The plugin with ``tmp_path/root`` as its only root. A context manager, not an async
    fixture: the test manager runs async tests without pytest-asyncio."""
    root = tmp_path / "root"
    root.mkdir()
    manifest, _ = load_manifest(PLUGIN_ROOT / "plugin.toml")
    settings = dict(manifest.settings) | {"roots": [str(root)], "max_output_bytes": 8192}
    ctx = PluginContext(manifest, PLUGIN_ROOT, tmp_path / "data", EventBus(), settings)
    ctx.config = validate_settings(DevToolsConfig, settings, "dev_tools")
    plugin = DevToolsPlugin()
    plugin.setup(ctx)
    app = FastAPI()
    # The plugin's router itself under /api, as the host's dispatcher calls it; a copy by
    # include_router built every route a second time, in every test.
    app.mount("/api", ctx.router)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test/api/",
                                     timeout=30) as client:
            yield Env(plugin, client, root.resolve())
    finally:
        await ctx.jobs.close()
