"""Smoke test of the built desktop bundle (not part of the default test run: the build
takes minutes). `./bootstrap.sh bundle-smoke` builds the bundle, then runs this.

    .venv/bin/python packaging/smoke.py [dist/plexichat-desktop]

With a fresh home and no display: --version; the headless server starts and prints its
ready line; /healthz answers with the version; the bundled plugin is active; its tests
run through the bundle's own executable as the pytest child (over the /tests API and with
the `test` command); SIGTERM stops it with exit code 0. Exit code 0 when all of that held.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from plexichat_desktop import __version__  # noqa: E402

PLUGIN = "performance_monitor"


def check(condition: bool, what: str) -> None:
    print(("ok   " if condition else "FAIL ") + what, flush=True)
    if not condition:
        raise SystemExit(1)


def start(exe: Path, args: list[str], env: dict[str, str]
          ) -> tuple[subprocess.Popen[bytes], Path]:
    """The app with its output in a file: a pipe nobody reads would fill up and block it."""
    output = Path(tempfile.mkstemp(prefix="plexichat-smoke-", suffix=".log")[1])
    with output.open("wb") as sink:
        proc = subprocess.Popen([str(exe), *args], env=env, stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return proc, output


def wait_ready(proc: subprocess.Popen[bytes], output: Path, started: float) -> str | None:
    """The URL of the ready line, or None when the app exits or 90 s pass first."""
    while time.monotonic() - started < 90:
        found = re.search(r"serving at (http://127\.0\.0\.1:\d+/)",
                          output.read_text(errors="replace"))
        if found:
            return found.group(1)
        if proc.poll() is not None:
            print(output.read_text(errors="replace")[-3000:])
            return None
        time.sleep(0.1)
    return None


def menu_check(bundle: Path, home: Path) -> None:
    """install.sh puts a valid menu entry pointing at this bundle, --remove takes it away."""
    data = home / "xdg-data"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "XDG_DATA_HOME": str(data)}
    done = subprocess.run([str(bundle / "install.sh")], env=env, text=True,
                          capture_output=True, timeout=60)
    entry = data / "applications" / "plexichat-desktop.desktop"
    check(done.returncode == 0 and entry.is_file(), "install.sh adds the menu entry")
    text = entry.read_text()
    check(f'Exec="{bundle.resolve()}/plexichat-desktop"' in text, "it starts this bundle")
    icons = list((data / "icons" / "hicolor").glob("*/apps/plexichat-desktop.*"))
    check(len(icons) >= 8, f"{len(icons)} icon sizes installed")
    validator = shutil.which("desktop-file-validate")
    if validator:
        valid = subprocess.run([validator, str(entry)], capture_output=True, text=True)
        check(valid.returncode == 0, f"desktop-file-validate accepts it {valid.stdout.strip()}")
    subprocess.run([str(bundle / "install.sh"), "--remove"], env=env, capture_output=True,
                   timeout=60, check=True)
    check(not entry.exists(), "install.sh --remove takes it away")


def gui_check(exe: Path, env: dict[str, str]) -> None:
    """The desktop window offscreen: it starts, Chromium's helper processes come up from
    the bundle, it keeps running, and SIGTERM closes it cleanly."""
    import psutil

    gui_env = {**env, "QT_QPA_PLATFORM": "offscreen", "LANG": "C.UTF-8"}
    started = time.monotonic()
    proc, output = start(exe, ["--port", "0"], gui_env)
    try:
        ready = wait_ready(proc, output, started) is not None
        check(ready, f"the desktop app (offscreen) is ready in {time.monotonic() - started:.1f} s")
        deadline = time.monotonic() + 30
        helpers: list[str] = []
        while not helpers and time.monotonic() < deadline:
            helpers = [c.name() for c in psutil.Process(proc.pid).children(recursive=True)
                       if "QtWebEngine" in c.name()]
            time.sleep(0.5)
        check(bool(helpers), f"QtWebEngine's helper processes run from the bundle ({len(helpers)})")
        time.sleep(3)
        check(proc.poll() is None, "the window keeps running")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=60)
    check(code == 0, "SIGTERM closes the desktop app with exit code 0")


def main() -> int:
    bundle = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "dist" / "plexichat-desktop")
    exe = bundle / "plexichat-desktop"
    check(exe.is_file(), f"the bundle's executable exists ({exe})")
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PLEXICHAT_DESKTOP", "PYTHON", "VIRTUAL_ENV"))
               and k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
        env["PLEXICHAT_DESKTOP_HOME"] = home
        env["PATH"] = "/usr/bin:/bin"  # no project venv, no pyenv: the bundle stands alone

        def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
            return subprocess.run([str(exe), *args], env=env, text=True, capture_output=True,
                                  timeout=timeout)

        version = run("--version")
        check(version.stdout.strip().endswith(__version__), f"--version says {__version__}")
        # What plugin tests may do with sys.executable inside the bundle.
        stdlib = run("-c", "import unittest.mock, html.parser, email.mime.text, timeit; "
                     "print('stdlib ok')")
        check(stdlib.stdout.strip() == "stdlib ok",
              f"the bundle runs `-c` code using the standard library {stdlib.stderr[-300:]}")
        spawn = run("-u", "-c", "import multiprocessing as m\n"
                    "if __name__ == '__main__':\n"
                    "    p = m.get_context('spawn').Process(target=print, args=('child',))\n"
                    "    p.start(); p.join(); print('exit', p.exitcode)")
        check(spawn.stdout.split() == ["child", "exit", "0"],
              f"multiprocessing (spawn) works from the bundle {spawn.stdout!r} "
              f"{spawn.stderr[-300:]}")

        started = time.monotonic()
        proc, output = start(exe, ["serve", "--port", "0"], env)
        try:
            url = wait_ready(proc, output, started)
            check(url is not None, f"headless server ready in {time.monotonic() - started:.1f} s")
            token = run("token").stdout.strip()
            client = httpx.Client(base_url=url or "", timeout=300,
                                  headers={"Authorization": f"Bearer {token}"})
            health = client.get("/healthz").json()
            check(health.get("version") == __version__, "/healthz answers with the version")
            # Plugins start in the background once the server answers.
            deadline = time.monotonic() + 120
            while not health.get("plugins_started") and time.monotonic() < deadline:
                time.sleep(0.2)
                health = client.get("/healthz").json()
            check(bool(health.get("plugins_started")),
                  f"every plugin started {time.monotonic() - started:.1f} s after launch")
            states = {p["id"]: p["state"] for p in client.get("/api/plugins").json()["plugins"]}
            unhappy = {pid: state for pid, state in states.items()
                       if state not in ("active", "degraded")}
            check(not unhappy, f"every bundled plugin is active or degraded {unhappy or ''}")
            plugins = {p["id"]: p for p in client.get("/api/plugins").json()["plugins"]}
            check(plugins.get(PLUGIN, {}).get("state") == "active", f"{PLUGIN} is active")
            t0 = time.monotonic()
            body = client.post("/tests/run?wait=true", json={"plugin_name": PLUGIN}).json()
            statuses = [r["status"] for r in body.get("results", [])]
            for result in body.get("results", []):
                if result["status"] not in ("passed", "skipped"):
                    print(f"     {result['test_name']}: {result['status']}: {result['message']}")
            check(body.get("run", {}).get("status") == "passed" and statuses
                  and set(statuses) <= {"passed", "skipped"},
                  f"{len(statuses)} tests of {PLUGIN} passed through the bundle's pytest child "
                  f"in {time.monotonic() - t0:.1f} s")
            # The next run starts in the runner's warm child: the bundle's executable in
            # its --pytest-warm mode.
            t0 = time.monotonic()
            again = client.post("/tests/run?wait=true", json={
                "plugin_name": PLUGIN, "test_name": "test_single_spike_does_not_alert"}).json()
            check([r["status"] for r in again.get("results", [])] == ["passed"],
                  f"a second run (warm child) passed in {time.monotonic() - t0:.2f} s")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            code = proc.wait(timeout=60)
        check(code == 0, "SIGTERM stops the server with exit code 0")
        menu_check(bundle, Path(home))

        gui_check(exe, env)

        cli = run("test", PLUGIN, "--json", timeout=300)
        summary = json.loads(cli.stdout) if cli.stdout.strip().startswith("{") else {}
        check(cli.returncode == 0, f"`plexichat-desktop test {PLUGIN}` passes "
              f"({summary.get('summary', summary) if summary else cli.stderr[-300:]})")
    print("The bundle works.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
