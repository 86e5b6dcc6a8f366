"""The plexichat-desktop command, run as a real subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import FIXTURE_PLUGINS, run_many, switch_off_bundled

CLI = [sys.executable, "-m", "plexichat_desktop"]


@pytest.fixture
def env(home, tmp_path) -> dict[str, str]:
    out = dict(os.environ)
    out["PLEXICHAT_DESKTOP_HOME"] = str(home.config_dir.parent)
    out.pop("PLEXICHAT_DESKTOP_PLUGINS_PATH", None)
    switch_off_bundled(home)
    return out


def run(args: list[str], env: dict[str, str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60,
                          **kw)


class Served:
    def __init__(self, proc: subprocess.Popen[str], url: str, lines: list[str]):
        self.proc, self.url, self.lines = proc, url, lines


def start_serve(env: dict[str, str], *args: str, command: tuple[str, ...] = ("serve",)
                ) -> Served:
    proc = subprocess.Popen([*CLI, *command, "--port", "0", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if match := re.search(r"serving at (http://127\.0\.0\.1:\d+/)", line):
            lines.append(proc.stdout.readline())
            return Served(proc, match.group(1), lines)
    proc.wait(10)
    raise AssertionError(f"serve exited early: rc={proc.returncode} "
                         f"stderr={proc.stderr.read() if proc.stderr else ''}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_url_answers_refuses_a_second_and_stops_cleanly(env, sig):
    served = start_serve(env)
    try:
        printed, *links, second = run_many(
            [["token"], ["login-link"], ["login-link"], ["serve", "--port", "0"]], env)
        token = printed.stdout.strip()
        r = httpx.get(served.url + "healthz", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["status"] == "ok"
        # The terminal shows a one-time sign-in link, never the token itself.
        assert "/login?code=" in served.lines[1] and token not in served.lines[1]
        fresh = [link.stdout.strip() for link in links]
        assert all("/login?code=" in link and token not in link for link in fresh)
        assert fresh[0] != fresh[1]
    finally:
        served.proc.send_signal(sig)
        rc = served.proc.wait(15)
    stderr = served.proc.stderr.read() if served.proc.stderr else ""
    assert rc == 0, stderr
    assert "Traceback" not in stderr
    assert "stopped" in stderr
    # A second server on the same home is refused, naming the first.
    assert second.returncode == 1
    assert f"already running at {served.url}" in second.stderr
    assert "PLEXICHAT_DESKTOP_HOME" in second.stderr
    if sig == signal.SIGTERM:  # one more start is enough to show it
        # Once the first has stopped, the home is free again.
        third = start_serve(env)
        third.proc.send_signal(signal.SIGTERM)
        assert third.proc.wait(15) == 0




def test_bad_settings_stop_before_anything_starts(env, home):
    home.config_dir.mkdir(parents=True, exist_ok=True)
    home.settings_file.write_text("[server]\nport = 'x'\n")
    result = run(["serve", "--port", "0"], env)
    assert result.returncode == 2
    assert "bad settings, nothing was started" in result.stderr
    assert str(home.settings_file) in result.stderr and "server.port" in result.stderr
    assert not (home.log_dir / "plexichat-desktop.log").exists()


def test_token_prints_only_the_token_and_a_taken_port_is_a_clear_error(env, home):
    # One batch (see run_many) for the two: each alone was an interpreter and the CLI's
    # imports for a few ms of work.
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        first, again, taken = run_many([["token"], ["token"], ["serve", "--port", str(port)]],
                                        env)
    finally:
        blocker.close()
    assert first.returncode == 0
    assert re.fullmatch(r"[A-Za-z0-9_-]{40,}\n", first.stdout)
    assert again.stdout == first.stdout
    assert home.token_file.read_text() == first.stdout

    assert taken.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in taken.stderr
    assert "--port 0" in taken.stderr
    assert "Traceback" not in taken.stderr


def test_version_help_and_the_module_entry_point(env):
    from plexichat_desktop import __version__

    version = run(["--version"], env)  # python -m plexichat_desktop
    assert version.stdout.strip() == f"plexichat-desktop {__version__}"
    commands = [[*args, "--help"] for args in (
        [], ["serve"], ["token"], ["plugins"], ["plugins", "list"], ["plugins", "new"],
        ["plugins", "validate"], ["plugins", "enable"], ["plugins", "disable"])]
    for args, result in zip(commands, run_many(commands, env), strict=True):
        assert result.returncode == 0 and "usage: plexichat-desktop" in result.stdout, args
    # The console script answers as the module does.
    script = Path(sys.executable).with_name("plexichat-desktop")
    assert script.exists()
    a = subprocess.run([str(script), "--version"], env=env, capture_output=True, text=True)
    assert a.stdout == version.stdout


def test_scaffolded_plugin_is_found_valid_its_test_passes_and_it_serves(env, home, tmp_path):
    target = tmp_path / "my_plugins"
    root = target / "weather_station"
    # The path variable changes nothing for new and validate, which name their folders.
    result, valid, listed, again, bad = run_many([
        ["plugins", "new", "weather_station", "--dir", str(target)],
        ["plugins", "validate", str(root)],
        ["plugins", "list"],
        ["plugins", "new", "weather_station", "--dir", str(target)],
        ["plugins", "new", "Bad-Name", "--dir", str(target)],
    ], {**env, "PLEXICHAT_DESKTOP_PLUGINS_PATH": str(target)})
    assert result.returncode == 0, result.stderr
    assert {p.name for p in root.iterdir()} >= {"plugin.toml", "weather_station", "web", "tests"}
    assert valid.stdout.startswith("OK: weather_station")
    assert re.search(r"^weather_station\s+validated\s+0\.1\.0\s+path", listed.stdout, re.M)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert bad.returncode == 2 and "not a valid plugin id" in bad.stderr

    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--import-mode=importlib", "--rootdir", str(root), str(root / "tests")],
        env={**env, "PYTHONPATH": str(root)}, capture_output=True, text=True,
        timeout=300)  # it starts the app: a minute was seen going by on a loaded machine
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout  # one of them runs the plugin in the app (harness)

    # The scaffolded plugin, found through the path variable, serves its page and route,
    # from the server the default command runs when there is no display (the same as
    # serve's: one server start for both checks).
    headless = {k: v for k, v in env.items()
                if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    served = start_serve({**headless, "PLEXICHAT_DESKTOP_PLUGINS_PATH": str(target)},
                         command=())
    try:
        assert any("serving at http://127.0.0.1:" in line for line in served.lines)
        token = home.token_file.read_text().strip()  # what `token` prints (tested above)
        with httpx.Client(base_url=served.url,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            # Plugins start right after the server answers: the route waits for its plugin.
            assert client.get("/plugins/weather_station/api/hello?who=you").json() == {
                "message": "Hello, you!"}
            assert client.get("/api/plugins/weather_station").json()["state"] == "active"
            assert "<h1>Weather Station</h1>" in client.get("/plugins/weather_station/").text
    finally:
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(15) == 0
    assert "no display found" in (served.proc.stderr.read() if served.proc.stderr else "")


def test_validate_list_enable_and_disable(env):
    """The plugin commands on the fixture plugins, in one batch (see run_many): validate's
    exit codes, list's states and reasons, enable and disable persisting. validate names
    its folder, so the path variable changes nothing for it."""
    env = {**env, "PLEXICHAT_DESKTOP_PLUGINS_PATH": str(FIXTURE_PLUGINS)}
    wrong, result, first_list, disabled, listed, enabled, relisted, missing = run_many([
        ["plugins", "validate", str(FIXTURE_PLUGINS / "wrong_types")],
        ["plugins", "validate", str(FIXTURE_PLUGINS / "unknown_fields" / "plugin.toml")],
        ["plugins", "list"],
        ["plugins", "disable", "good_plugin"], ["plugins", "list", "--json"],
        ["plugins", "enable", "good_plugin"], ["plugins", "list", "--json"],
        ["plugins", "disable", "ghost"]], env)
    # validate reports errors with its exit code
    assert wrong.returncode == 1
    assert "tests.timeout" in wrong.stdout
    assert result.returncode == 0 and "warning: " in result.stdout and "colour" in result.stdout
    # list shows states and reasons
    out = first_list.stdout
    assert first_list.returncode == 0
    assert re.search(r"^incompatible\s+incompatible", out, re.M)
    assert "-> requires plugin 'nothing_here', which is not installed" in out
    assert "-> dependency cycle: " in out
    assert "-> invalid manifest: " in out
    assert "not_a_plugin" not in out
    # enable and disable persist
    assert disabled.returncode == 0
    states = {p["id"]: p for p in json.loads(listed.stdout)["plugins"]}
    assert states["good_plugin"]["state"] == "disabled"
    assert states["depends_on_good"]["state"] == "failed"
    assert enabled.returncode == 0
    states = {p["id"]: p for p in json.loads(relisted.stdout)["plugins"]}
    assert states["good_plugin"]["state"] == "validated"
    assert missing.returncode == 1 and "no plugin with id 'ghost'" in missing.stderr


GC_AFTER_START = r"""
import gc, os, signal, threading, time
from plexichat_desktop.cli import main

def watch():
    deadline = time.monotonic() + 60
    paused = False
    while time.monotonic() < deadline:
        if not gc.isenabled():
            paused = True
        elif paused:
            break
        time.sleep(0.005)
    print("paused" if paused else "never paused", "enabled" if gc.isenabled() else "off",
          flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=watch, daemon=True).start()
raise SystemExit(main(["serve", "--port", "0"]))
"""


def test_serve_pauses_garbage_collection_for_its_start_only(env):
    # The start makes objects that live as long as the app: collecting meanwhile is CPU
    # for nothing (core/startup_gc.py). Left paused, a long-running server would never
    # free a reference cycle again.
    done = subprocess.run([sys.executable, "-c", GC_AFTER_START], env=env,
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "paused enabled", done.stdout


def test_schedule_commands_drive_the_running_apps_schedules(env):
    """Audit: schedules had no command: a terminal user needed curl and the token."""
    from tests.conftest import FIXTURES

    env = {**env, "PLEXICHAT_DESKTOP_PLUGINS_PATH": str(FIXTURES / "suites")}
    not_running = run(["schedule", "list"], env)
    assert not_running.returncode == 1 and "not running" in not_running.stderr
    served = start_serve(env)
    # Two batches: the id the first one made goes into the second.
    try:
        empty, added = run_many([
            ["schedule", "list"],
            ["schedule", "add", "mixed_suite", "0 9 * * 1-5", "--test", "test_passes",
             "--timezone", "Europe/Berlin", "--priority", "high"]], env)
        assert empty.returncode == 0 and "No schedules" in empty.stdout
        assert added.returncode == 0, added.stderr
        sid = re.search(r"Scheduled (\w+): mixed_suite::test_passes 0 9 \* \* 1-5, next run ",
                        added.stdout)
        assert sid, added.stdout
        sid = sid.group(1)
        listed, twice, bad, preview, off, as_json, gone, unknown = run_many([
            ["schedule", "list", "mixed_suite"],
            ["schedule", "add", "mixed_suite", "0 9 * * 1-5", "--test", "test_passes",
             "--timezone", "Europe/Berlin", "--priority", "high"],
            ["schedule", "add", "mixed_suite", "60 * * * *"],
            ["schedule", "preview", "every_15_minutes", "--count", "3"],
            ["schedule", "disable", sid],
            ["schedule", "list", "--json"],
            ["schedule", "rm", sid],
            ["schedule", "rm", sid]], env)
        assert listed.returncode == 0
        assert re.search(rf"{sid}\s+mixed_suite::test_passes\s+0 9 \* \* 1-5 \(Europe/Berlin\)"
                         r"\s+\d{4}-\d\d-\d\d .*not run yet\s+high", listed.stdout), listed.stdout
        assert twice.returncode == 1 and f"exists already: {sid}" in twice.stderr
        assert bad.returncode == 1
        assert "'60' in the minute field is out of its range 0-59" in bad.stderr
        assert preview.returncode == 0 and len(preview.stdout.splitlines()) == 3
        assert off.returncode == 0 and off.stdout.strip() == f"Schedule {sid} switched off"
        [record] = json.loads(as_json.stdout)
        assert record["id"] == sid and record["enabled"] is False
        assert gone.returncode == 0 and unknown.returncode == 1
        assert "schedule_id" in unknown.stderr
    finally:
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(15) == 0
