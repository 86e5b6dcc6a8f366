"""The plugin inside the real host: routes, bad input, jobs with progress and cancel."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from plexichat_desktop.core.paths import PLUGINS_PATH_ENV, AppPaths
from plexichat_desktop.core.settings import Settings
from plexichat_desktop.runtime import Runtime, RuntimeOptions

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_ID = "code_analyzer"
Files = Callable[[Path, dict[str, str | bytes]], None]


def plugins_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / PLUGIN_ID).symlink_to(PLUGIN_ROOT, target_is_directory=True)
    return folder


class Host:
    def __init__(self, runtime: Runtime, client: httpx.AsyncClient, root: Path):
        self.runtime, self.client, self.root = runtime, client, root

    @property
    def plugin(self) -> Any:
        return self.runtime.plugins.by_id[PLUGIN_ID].instance

    async def finished(self, job: dict[str, Any]) -> dict[str, Any]:
        await self.plugin.ctx.jobs.wait(job["id"])
        answer = await self.client.get(f"_host/jobs/{job['id']}")
        assert answer.status_code == 200
        return answer.json()


@asynccontextmanager
async def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  extra: dict[str, Any] | None = None) -> AsyncIterator[Host]:
    """The real host with only this plugin, its roots set to one temp folder. (A context
    manager, not an async fixture: the test manager runs pytest without pytest-asyncio.)"""
    monkeypatch.delenv(PLUGINS_PATH_ENV, raising=False)
    home = tmp_path / "home"
    root = tmp_path / "projects"
    root.mkdir()
    paths = AppPaths(home / "config", home / "data", home / "cache", home / "logs")
    # The plugin never calls the embedded v1 API: off, the host skips importing it and
    # opening its database on every start.
    settings = Settings(server={"port": 0}, api={"enabled": False},
                        plugin={PLUGIN_ID: {"roots": [str(root)], **(extra or {})}})
    runtime = Runtime(paths, settings, RuntimeOptions(
        bundled=False, include_installed=False, extra_plugin_dirs=[plugins_folder(tmp_path)]))
    url = await runtime.start()
    try:
        record = runtime.plugins.by_id[PLUGIN_ID]
        assert str(record.state) == "active", (record.reason, record.detail)
        async with httpx.AsyncClient(
                base_url=f"{url}plugins/{PLUGIN_ID}/api/", timeout=60,
                headers={"Authorization": f"Bearer {runtime.token}"}) as client, \
                asyncio.timeout(60):
            yield Host(runtime, client, root)
    finally:
        await runtime.stop()


@pytest.mark.asyncio
async def test_bad_input_is_a_4xx_naming_the_field(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with running(tmp_path, monkeypatch) as host:
        c = host.client
        outside = tmp_path / "elsewhere"
        outside.mkdir()
        cases: list[tuple[Any, int, str]] = [
            ({"folder": str(outside)}, 403, "folder"),
            ({"folder": "../elsewhere"}, 403, "folder"),
            ({"folder": "a\x00b"}, 403, "folder"),
            ({"folder": "missing"}, 404, "folder"),
            ({}, 422, "folder"),
            ({"folder": "."}, 202, ""),
            ({"folder": ".", "extra": 1}, 422, "extra"),
            ({"folder": 5}, 422, "folder"),
        ]
        for body, status, field in cases:
            answer = await c.post("scan", json=body)
            assert answer.status_code == status, (body, answer.text)
            if status != 202:
                assert answer.json()["detail"].startswith(field), answer.json()
                assert field in answer.json()["errors"]
        (host.root / "file.py").write_text("x = 1\n")
        answer = await c.post("scan", json={"folder": "file.py"})
        assert answer.status_code == 400 and answer.json()["detail"].startswith("folder")
        answer = await c.post("scan", content=b"{not json")
        assert answer.status_code == 422
        for body, field in (({"folder": ".", "ref": "-x"}, "ref"),
                            ({"folder": ".", "ref": "a..b"}, "ref"),
                            ({"folder": ".", "ref": "HEAD", "max_complexity": 0},
                             "max_complexity"),
                            ({"folder": ".", "ref": "HEAD", "fail_on": "worst"}, "fail_on")):
            answer = await c.post("gate", json=body)
            assert answer.status_code == 422 and answer.json()["detail"].startswith(field)
        answer = await c.post("gate", json={"folder": ".", "ref": "HEAD"})
        assert answer.status_code == 422 and answer.json()["detail"].startswith("folder: ")
        assert "not inside a git repository" in answer.json()["detail"]
        assert (await c.get("scans/999")).status_code == 404
        for huge in ("99999999999999999999999", "-1"):  # past SQLite: was a 500
            assert (await c.get(f"scans/{huge}")).status_code == 404
            assert (await c.get(f"scans/{huge}/export")).status_code == 404
        assert (await c.get("scans", params={"limit": 0})).status_code == 422
        assert (await c.get("scans/abc")).status_code == 422


@pytest.mark.asyncio
async def test_scan_job_result_history_and_exports(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_files: Files,
        four_branches: str) -> None:
    async with running(tmp_path, monkeypatch) as host:
        c = host.client
        make_files(host.root / "proj", {"a.py": four_branches, "b.ts": "let x = 1;\n"})
        roots = (await c.get("roots")).json()
        assert roots["roots"] == [str(host.root)]
        assert roots["tools"] == {"ruff": True, "bandit": True, "vulture": True}
        answer = await c.post("scan", json={"folder": "proj", "run_tools": False})
        assert answer.status_code == 202 and answer.json()["name"] == "scan"
        job = await host.finished(answer.json())
        assert job["state"] == "succeeded", job["error"]
        assert job["fraction"] == 1 and "2 files" in job["message"]
        scan_id = job["result"]["scan_id"]
        assert job["result"]["summary"]["functions"] == 1
        scan = (await c.get(f"scans/{scan_id}")).json()
        assert [f["path"] for f in scan["files"]] == ["a.py", "b.ts"]
        # A second scan: served from the cache, and a second point of the trend.
        job2 = await host.finished((await c.post("scan", json={
            "folder": str(host.root / "proj"), "run_tools": False})).json())
        assert job2["result"]["summary"]["cache_hits"] == 2
        trend = (await c.get("scans", params={"folder": "proj"})).json()["scans"]
        assert [s["id"] for s in trend] == [scan_id, job2["result"]["scan_id"]]
        assert trend[0]["sloc"] == scan["summary"]["sloc"]
        csv = await c.get(f"scans/{scan_id}/export", params={"format": "csv"})
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        assert csv.text.splitlines()[1].startswith("a.py,python,11,10,")
        assert "attachment" in csv.headers["content-disposition"]
        sarif = (await c.get(f"scans/{scan_id}/export", params={"format": "sarif"})).json()
        assert sarif["version"] == "2.1.0"
        assert (await c.get(f"scans/{scan_id}/export", params={"format": "xml"})
                ).status_code == 422


@pytest.mark.asyncio
async def test_a_scan_can_be_cancelled_from_the_page_api(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_files: Files) -> None:
    async with running(tmp_path, monkeypatch) as host:
        make_files(host.root / "big", {f"m{i:04}.py": f"def f{i}(x):\n    return x\n"
                                       for i in range(400)})
        plugin = host.plugin
        started = asyncio.Event()
        real = plugin._run_threaded

        async def spy(job: Any, fn: Any, *args: Any) -> Any:
            started.set()
            return await real(job, fn, *args)

        plugin._run_threaded = spy
        job = (await host.client.post("scan", json={"folder": "big"})).json()
        await started.wait()
        answer = await host.client.post(f"_host/jobs/{job['id']}/cancel")
        assert answer.status_code == 200
        done = await host.finished(job)
        assert done["state"] == "cancelled"
        assert (await host.client.get("scans")).json()["scans"] == []


@pytest.mark.asyncio
async def test_gate_job_through_the_api(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_files: Files,
        run_git: Callable[..., str]) -> None:
    async with running(tmp_path, monkeypatch) as host:
        repo = host.root / "repo"
        make_files(repo, {"app.py": "def ok(x):\n    return x\n"})
        run_git(repo, "init", "-q", "-b", "main")
        run_git(repo, "add", "-A")
        run_git(repo, "commit", "-q", "-m", "base")
        (repo / "app.py").write_text("import subprocess\n\n\ndef ok(x):\n"
                                     "    return subprocess.call(x, shell=True)\n")
        answer = await host.client.post("gate", json={"folder": "repo", "ref": "HEAD",
                                                      "max_complexity": 5})
        assert answer.status_code == 202 and answer.json()["name"] == "gate"
        job = await host.finished(answer.json())
        assert job["state"] == "succeeded", job["error"]
        result = job["result"]
        assert result["passed"] is False and result["new_issues_total"] >= 1
        assert result["conditions"][1]["threshold"] == 5
        assert "gate failed against HEAD" in job["message"]
        bad_ref = await host.client.post("gate", json={"folder": "repo", "ref": "nope"})
        assert bad_ref.status_code == 422
        assert bad_ref.json()["detail"].startswith("ref: 'nope' names no commit")
        assert list(bad_ref.json()["errors"]) == ["ref"]
        history = await host.client.post("history", json={"folder": "repo", "commits": 5})
        assert history.status_code == 202
        job = await host.finished(history.json())
        assert job["state"] == "succeeded", job["error"]
        assert [p["subject"] for p in job["result"]["points"]] == ["base"]
        (host.root / "plain").mkdir()
        (host.root / "empty").mkdir()
        subprocess.run(["git", "init", "-q", str(host.root / "empty")], check=True)
        for body, field in (({"folder": "repo", "commits": 0}, "commits"),
                            ({"folder": "plain"}, "folder"), ({"folder": "empty"}, "folder")):
            answer = await host.client.post("history", json=body)
            assert answer.status_code == 422 and answer.json()["detail"].startswith(field)
        # Audit: a repository without commits was a 202, then a job failing with git's words.
        assert "no commit yet" in answer.json()["detail"]


@pytest.mark.asyncio
async def test_scheduled_scans_feed_the_trend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              make_files: Files) -> None:
    settings = {"scheduled_folders": ["proj", "gone"], "scan_schedule": "every_6_hours"}
    async with running(tmp_path, monkeypatch, settings) as host:
        make_files(host.root / "proj", {"a.py": "def f(x):\n    return x\n"})
        schedules = (await host.client.get("_host/schedules")).json()
        assert "scheduled scan" in str(schedules) and "every_6_hours" in str(schedules)
        outcomes = await host.plugin.scheduled_scan()  # what the schedule runs
        assert [o["state"] for o in outcomes] == ["succeeded", "skipped"]
        assert outcomes[1]["error"].startswith("folder: 'gone' does not exist")
        trend = (await host.client.get("scans", params={"folder": "proj"})).json()["scans"]
        assert len(trend) == 1 and trend[0]["functions"] == 1
