"""Red-team finding 2: everything but the token file was world-readable. After a session
that used every feature, no file or folder of the app grants anything to group or others;
files of older versions are tightened at start; another uid really cannot read them."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from plexichat_desktop.core.logs import setup_logging
from plexichat_desktop.core.paths import AppPaths
from plexichat_desktop.core.settings import ApiSettings, Settings
from plexichat_desktop.runtime import Runtime, RuntimeOptions
from tests.conftest import FIXTURES, RunningCore, wait_for_run

# The session that used every feature is made once (``used_home``) and both its checks,
# the modes and another uid's reads, look at it: it starts the app, the v1 API, a backup
# and a pytest run, which cost more than the checks.
pytestmark = pytest.mark.asyncio(loop_scope="module")
PASSWORD = "Corr3ct-Horse-Battery"
NOBODY = 65534


@pytest.fixture(autouse=True)
def keep_umask() -> Iterator[None]:
    """The runtime sets the process umask (it is the app); give the next tests theirs."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield
    os.umask(previous)


@contextlib.contextmanager
def open_home() -> Iterator[AppPaths]:
    """A home below a folder other users may enter (0755), unlike pytest's tmp_path, so
    that only the app's own modes stand between another user and the files."""
    parent = Path(tempfile.mkdtemp(prefix="plexichat-perms-", dir="/tmp"))
    parent.chmod(0o755)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("PLEXICHAT_DESKTOP_HOME", str(parent / "home"))
        for name in list(os.environ):
            if name.startswith("PLEXICHAT_DESKTOP_") and "__" in name:
                monkeypatch.delenv(name)
        try:
            yield AppPaths.from_env()
        finally:
            shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def shared_home() -> Iterator[AppPaths]:
    with open_home() as paths:
        yield paths


def settings() -> Settings:
    cfg = Settings()
    cfg.server.port = 0
    cfg.api = ApiSettings(scrypt_cost=4, performance_interval=3600.0)
    return cfg


def exposed(paths: AppPaths) -> list[str]:
    """Every entry below the app's folders that group or others may use."""
    found = []
    for root in paths.roots:
        for entry in [root, *root.rglob("*")]:
            info = entry.lstat()
            if not stat.S_ISLNK(info.st_mode) and stat.S_IMODE(info.st_mode) & 0o077:
                found.append(f"{entry} {stat.S_IMODE(info.st_mode):o}")
    return found


async def use_every_feature(core: RunningCore) -> None:
    v1 = core.url + "api/v1"
    owner = {"X-PlexiChat-App-Token": core.token}
    r = await core.anonymous.post(f"{v1}/auth/register", headers=owner, json={
        "username": "ann", "email": "ann@example.org", "password": PASSWORD})
    assert r.status_code == 201
    login = (await core.anonymous.post(f"{v1}/auth/login", json={
        "username": "ann", "password": PASSWORD})).json()
    auth = {"Authorization": f"Bearer {login['access_token']}"}
    r = await core.anonymous.post(f"{v1}/files/upload", headers=auth,
                                  files={"file": ("secret.txt", b"private words")})
    assert r.status_code == 201
    r = await core.anonymous.post(f"{v1}/backup/create", headers=auth,
                                  params={"wait": "true"})
    assert r.status_code == 201 and r.json()["status"] == "completed"
    r = await core.client.post("/tests/run", json={"plugin_name": "mixed_suite",
                                                   "test_name": "test_passes"})
    assert r.status_code == 202
    done = await wait_for_run(core, r.json()["run_id"])
    assert done["run"]["status"] == "passed"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def used_home() -> AsyncIterator[AppPaths]:
    """The home of a session that used every feature (and wrote its log file), stopped."""
    previous = os.umask(0o022)  # what a desktop session usually starts with
    try:
        with open_home() as home:
            home.ensure()
            setup_logging(home.log_dir, "INFO", console=False)
            runtime = Runtime(home, settings(), RuntimeOptions(
                bundled=False, include_installed=False,
                extra_plugin_dirs=[FIXTURES / "suites"]))
            try:
                core = RunningCore(runtime, await runtime.start())
                try:
                    await use_every_feature(core)
                    logging.getLogger("plexichat_desktop.test").warning(
                        "a line for the log file")
                finally:
                    await core.client.aclose()
                    await core.anonymous.aclose()
                    await runtime.stop()
            finally:
                root = logging.getLogger()
                for handler in list(root.handlers):
                    if getattr(handler, "baseFilename", "").startswith(str(home.log_dir)):
                        root.removeHandler(handler)
                        handler.close()
            yield home
    finally:
        os.umask(previous)


async def test_every_file_of_a_session_is_private(used_home: AppPaths) -> None:
    shared_home = used_home
    made = {p.relative_to(shared_home.data_dir.parent).as_posix()
            for root_dir in shared_home.roots for p in root_dir.rglob("*")}
    for expected in ("config/token", "data/tests.sqlite3", "data/api_v1/plexichat.sqlite3",
                     "data/api_v1/backups", "logs/plexichat-desktop.log"):
        assert expected in made, sorted(made)
    assert any(p.startswith("data/api_v1/files/") and not p.endswith("/") for p in made)
    assert any(p.endswith(".zip") for p in made)
    assert exposed(shared_home) == []


async def test_older_files_are_tightened_at_start(shared_home: AppPaths, caplog) -> None:
    os.umask(0o022)
    for folder in shared_home.roots:
        folder.mkdir(parents=True, mode=0o755)
        folder.chmod(0o755)
    (shared_home.data_dir / "api_v1").mkdir(mode=0o755)
    old = [shared_home.settings_file, shared_home.log_dir / "plexichat-desktop.log",
           shared_home.data_dir / "api_v1" / "old-notes.json"]
    for path in old:
        path.write_text("[server]\n" if path.suffix == ".toml" else "{}")
        path.chmod(0o644)
    assert len(exposed(shared_home)) == 8
    caplog.set_level(logging.WARNING)
    runtime = Runtime(shared_home, settings(), RuntimeOptions(bundled=False,
                                                              include_installed=False))
    try:
        assert exposed(shared_home) == []
        assert "restricted 8 existing file(s) and folder(s)" in caplog.text
    finally:
        await runtime.stop()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="switching to another uid needs root")
async def test_another_user_cannot_read_the_apps_files(used_home: AppPaths) -> None:
    shared_home = used_home
    # Control: a file the test leaves world-readable next to the home is readable by
    # nobody, so a refusal below comes from the app's modes and from nothing else.
    control = shared_home.data_dir.parent.parent / "control.txt"
    control.write_text("readable")
    control.chmod(0o644)

    def as_nobody(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, user=NOBODY, group=NOBODY, capture_output=True,
                              text=True, timeout=30, check=False)

    assert as_nobody("cat", str(control)).stdout == "readable"
    targets = [shared_home.data_dir / "api_v1" / "plexichat.sqlite3",
               shared_home.data_dir / "tests.sqlite3", shared_home.config_dir / "token",
               *sorted((shared_home.data_dir / "api_v1" / "backups").glob("*.zip")),
               *[p for p in (shared_home.data_dir / "api_v1" / "files").rglob("*")
                 if p.is_file()]]
    assert len(targets) >= 5
    for target in targets:
        result = as_nobody("cat", str(target))
        assert result.returncode != 0 and "Permission denied" in result.stderr, target
    for folder in shared_home.roots:
        result = as_nobody("ls", str(folder))
        assert result.returncode != 0 and "Permission denied" in result.stderr, folder
