"""The wheel: built from this checkout, installed with pip into a fresh venv, started.

The fresh venv gets its third-party dependencies from the project's own environment (a
.pth line), so the check needs no download and takes seconds; what it checks is this
project's packaging: the bundled plugins and resources inside the wheel, the console
script, the version, a headless server, and a plugin's tests run from the installed copy.
"""

from __future__ import annotations

import json
import os
import re
import signal
import site
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import httpx
import pytest

from plexichat_desktop import __version__
from plexichat_desktop.core.paths import AppPaths
from tests.conftest import REPO


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    # The PEP 517 backend of pyproject.toml's [build-system], called as pip calls it
    # without build isolation (pip wheel --no-build-isolation): pip's own start and its
    # hook subprocess were a third of the build's CPU, and what is tested is the wheel.
    backend = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"][
        "build-backend"]
    subprocess.run([sys.executable, "-c", "import importlib, sys; "
                    "importlib.import_module(sys.argv[1]).build_wheel(sys.argv[2])",
                    backend, str(root / "dist")], cwd=REPO, check=True, timeout=300)
    wheels = list((root / "dist").glob("plexichat_desktop-*.whl"))
    assert len(wheels) == 1, wheels
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheels[0])], check=True, timeout=300)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print("
                              "sysconfig.get_paths()['purelib'])"], check=True, text=True,
                             capture_output=True, timeout=60).stdout.strip()
    # Dependencies from this environment; a plain path line, so the editable install of
    # the checkout (a .pth *inside* that folder) is not activated in the fresh venv.
    (Path(purelib) / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return venv


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PLEXICHAT_DESKTOP", "PYTHONPATH"))}
    env["PLEXICHAT_DESKTOP_HOME"] = str(home)
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    env.pop("QT_QPA_PLATFORM", None)
    return env


def test_the_wheel_carries_plugins_and_resources(installed: Path) -> None:
    wheel = next(installed.parent.glob("dist/*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "plexichat_desktop/_bundled/plugins/performance_monitor/plugin.toml" in names
    assert "plexichat_desktop/_bundled/resources/templates/base.html" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]


def test_the_installed_app_starts_and_runs_a_plugins_tests(installed: Path,
                                                           tmp_path: Path) -> None:
    script = installed / "bin" / "plexichat-desktop"
    env = env_for(tmp_path / "home")
    # The plugin's suite (the longest step) runs meanwhile, in a home of its own.
    tests = subprocess.Popen([str(script), "test", "performance_monitor", "--json"],
                             env=env_for(tmp_path / "tests-home"), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
    try:
        version = subprocess.run([str(script), "--version"], env=env, text=True,
                                 capture_output=True, timeout=60)
        assert version.stdout.strip().endswith(__version__)

        listed = subprocess.run([str(script), "plugins", "list"], env=env, text=True,
                                capture_output=True, timeout=60)
        line = next(x for x in listed.stdout.splitlines() if x.startswith("performance_monitor"))
        assert str(installed) in line and "_bundled" in line  # the installed copy, not the repo

        proc = subprocess.Popen([str(script), "serve", "--port", "0"], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            url = None
            deadline = time.monotonic() + 60
            assert proc.stdout is not None
            while url is None and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                found = re.search(r"serving at (http://127\.0\.0\.1:\d+/)", line)
                url = found.group(1) if found else None
            assert url, "the installed app never printed its ready line"
            # What `token` prints (test_cli.py): no interpreter start for it.
            token = AppPaths.from_env(env).token_file.read_text().strip()
            health = httpx.get(url + "healthz", timeout=10,
                               headers={"Authorization": f"Bearer {token}"}).json()
            assert health["status"] == "ok" and health["version"] == __version__
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            assert proc.wait(timeout=30) == 0

        out, err = tests.communicate(timeout=300)
    finally:
        if tests.poll() is None:  # a failure above: stop the suite and its pytest child
            os.killpg(tests.pid, signal.SIGKILL)
            tests.communicate()
    assert tests.returncode == 0, _not_passed(out) + err[-2000:]
    assert '"passed"' in out


def _not_passed(json_out: str) -> str:
    """What of a ``test --json`` answer says why it failed: the results that did not pass
    (the whole answer's tail would show the last results, which passed)."""
    try:
        results = json.loads(json_out)["results"]
    except (ValueError, KeyError, TypeError):
        return json_out[-2000:]
    return json.dumps([r for r in results if r.get("outcome") != "passed"], indent=1)[-4000:]


@pytest.mark.parametrize(("argv", "expected"), [
    (["-c", "print(1)"], ("-c", "print(1)", [])),
    (["-u", "-c", "x", "a"], ("-c", "x", ["a"])),
    (["-B", "-s", "-X", "dev", "-m", "pkg.mod", "--flag"], ("-m", "pkg.mod", ["--flag"])),
    (["-Wignore", "-c", "x"], ("-c", "x", [])),
    (["serve", "--port", "0"], None),
    (["-c"], None),
])
def test_the_bundle_reads_interpreter_command_lines(argv: list[str], expected: object) -> None:
    """What the frozen executable answers like Python (tests and multiprocessing start
    ``sys.executable [options] -c CODE``); anything else goes to the app's own CLI."""
    from plexichat_desktop.testing.child import interpreter_args

    assert interpreter_args(argv) == expected
