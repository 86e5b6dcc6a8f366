"""``plexichat-desktop dev PATH`` as a real process: a save reloads the plugin, a broken
save shows the failure with its reason, the next good save recovers; page saves and
test reruns reach the bus. Plus the affected-tests rules of watch mode, on real files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from plexichat_desktop.plugins.scaffold import scaffold_plugin
from plexichat_desktop.testing.watch import affected_tests
from tests.conftest import switch_off_bundled

CLI = [sys.executable, "-m", "plexichat_desktop"]
WAIT = 30.0  # the bound on every wait below; how fast it goes is the benchmark's job


def eventually(check: Callable[[], Any], what: str, limit: float = WAIT) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except httpx.HTTPError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {limit} s (last: {last!r})")


class Dev:
    def __init__(self, proc: subprocess.Popen[str], url: str, client: httpx.Client,
                 out: Path):
        self.proc, self.url, self.client, self.out = proc, url, client, out

    def plugin(self, plugin_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.client.get(f"/api/plugins/{plugin_id}").json()
        return body


@pytest.fixture
def env(home: Any) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    out["PLEXICHAT_DESKTOP_HOME"] = str(home.config_dir.parent)
    out.pop("PLEXICHAT_DESKTOP_PLUGINS_PATH", None)
    switch_off_bundled(home)
    return out


@pytest.fixture
def start_dev(env: dict[str, str], home: Any, tmp_path: Path) -> Iterator[Callable[..., Dev]]:
    started: list[Dev] = []

    def start(root: Path, *extra: str) -> Dev:
        out = tmp_path / f"dev-{len(started)}.log"
        handle = out.open("w")
        proc = subprocess.Popen([*CLI, "dev", str(root), "--port", "0", *extra], env=env,
                                stdout=handle, stderr=subprocess.STDOUT, text=True)
        handle.close()

        def served() -> str | None:
            if proc.poll() is not None:
                raise AssertionError(f"dev exited: {out.read_text()}")
            text = out.read_text()
            match = re.search(r"serving at (http://127\.0\.0\.1:\d+/)", text)
            return match.group(1) if match and "Watching " in text else None

        url = eventually(served, "dev prints its URL and starts watching")
        # What `plexichat-desktop token` prints (test_cli.py): no interpreter start for it.
        token = home.token_file.read_text().strip()
        client = httpx.Client(base_url=url, timeout=10,
                              headers={"Authorization": f"Bearer {token}"})
        dev = Dev(proc, url, client, out)
        started.append(dev)
        return dev

    yield start
    for dev in started:
        dev.client.close()
        if dev.proc.poll() is None:
            dev.proc.send_signal(signal.SIGINT)
            try:
                dev.proc.wait(20)
            except subprocess.TimeoutExpired:
                dev.proc.kill()
                dev.proc.wait()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, path)
    path.write_text(text.replace(old, new))


def test_dev_reloads_python_shows_a_broken_save_and_recovers(start_dev, tmp_path: Path):
    root = scaffold_plugin("notes_dev", tmp_path / "work")
    module = root / "notes_dev" / "__init__.py"
    dev = start_dev(root, "--headless", "--no-tests")
    assert "Plugin notes_dev (active)" in dev.out.read_text()
    assert dev.client.get("/plugins/notes_dev/api/hello").json() == {
        "message": "Hello, world!"}
    # Only the plugin at PATH is added: its siblings stay out.
    assert dev.plugin("notes_dev")["path"] == str(root)

    _edit(module, 'f"{greeting}, {who}!"', 'f"{greeting}, {who}! (edited)"')
    eventually(lambda: dev.client.get("/plugins/notes_dev/api/hello").json() == {
        "message": "Hello, world! (edited)"}, "the route answers the edited text")

    good = module.read_text()
    module.write_text(good + "\ndef broken(:\n")
    failed = eventually(lambda: (p := dev.plugin("notes_dev"))["state"] == "failed" and p,
                        "the broken save shows as failed")
    assert "syntax error" in failed["reason"].lower() and "__init__.py" in failed["reason"]
    assert dev.client.get("/plugins/notes_dev/api/hello").status_code >= 400

    module.write_text(good.replace("(edited)", "(fixed)"))
    eventually(lambda: dev.plugin("notes_dev")["state"] == "active", "the fix recovers")
    assert dev.client.get("/plugins/notes_dev/api/hello").json() == {
        "message": "Hello, world! (fixed)"}
    log = dev.out.read_text()
    assert "reloaded notes_dev in" in log and "reload of notes_dev failed" in log


def test_dev_publishes_page_changes_and_reruns_affected_tests(start_dev, tmp_path: Path):
    root = scaffold_plugin("pages_dev", tmp_path / "work")
    dev = start_dev(root, "--headless")
    events: list[dict[str, Any]] = []
    with dev.client.stream("GET", "/events", timeout=WAIT) as stream:
        lines = stream.iter_lines()
        (root / "web" / "style.css").write_text("body { color: teal; }\n")
        for line in lines:
            if line.startswith("data:"):
                event = json.loads(line[5:])
                events.append(event)
                if event["topic"] == "plugin.reloaded":
                    break
    reloaded = events[-1]
    assert reloaded["plugin_id"] == "pages_dev" and reloaded["kind"] == "page"
    assert reloaded["files"] == ["web/style.css"] and reloaded["state"] == "active"

    test_file = root / "tests" / "test_pages_dev.py"
    test_file.write_text(test_file.read_text()
                         + "\n\ndef test_added_by_the_author() -> None:\n    assert 1 + 1 == 2\n")

    def watch_run() -> dict[str, Any] | None:
        runs = dev.client.get("/tests/runs", params={"plugin_name": "pages_dev"}).json()["runs"]
        done = [r for r in runs if r["trigger"] == "watch"
                and r["status"] not in ("queued", "running")]
        return done[0] if done else None

    run = eventually(watch_run, "the saved test file reruns through the test manager")
    assert run["selection"] == ["tests/test_pages_dev.py"], run
    assert run["status"] == "passed" and run["counts"]["passed"] == 4, run  # 3 + 1
    assert re.search(rf"tests #{run['id']} passed", dev.out.read_text())

    # A failing one is named with its message (audit: a count alone was said).
    test_file.write_text(test_file.read_text().replace("1 + 1 == 2", "1 + 1 == 3"))

    def failed_run() -> dict[str, Any] | None:
        latest = watch_run()
        return latest if latest and latest["id"] != run["id"] else None

    bad = eventually(failed_run, "the broken test reruns")
    assert bad["status"] == "failed", bad
    said = eventually(lambda: "details: plexichat-desktop results" in dev.out.read_text()
                      and dev.out.read_text(), "the failure is listed")
    assert "FAILED tests/test_pages_dev.py::test_added_by_the_author: assert" in said, said


def _plugin(tmp_path: Path) -> Path:
    root = tmp_path / "demo"
    files = {
        "plugin.toml": "",
        "demo/__init__.py": "from demo.core import add\n",
        "demo/core.py": "def add(a, b):\n    return a + b\n",
        "demo/util.py": "from .core import add\n\ndef twice(a):\n    return add(a, a)\n",
        "demo/lonely.py": "X = 1\n",
        "tests/conftest.py": "",
        "tests/test_core.py": "from demo.core import add\n",
        "tests/test_util.py": "from demo import util\n",
        "tests/test_app.py": "def test_x(plexichat_app):\n    pass\n",
        "tests/test_other.py": "import json\n",
        "tests/data.json": "{}",
        "web/index.html": "",
        "web/app.js": "",
        "README.md": "",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "tests" / "test_other.py").write_text("import json\nDATA = 'data.json'\n")
    return root


@pytest.mark.parametrize(("changed", "expected"), [
    (["tests/test_other.py"], ["tests/test_other.py"]),
    (["demo/core.py"], ["tests/test_app.py", "tests/test_core.py", "tests/test_util.py"]),
    (["demo/util.py"], ["tests/test_app.py", "tests/test_util.py"]),
    (["demo/lonely.py"], ["tests/test_app.py"]),
    (["tests/conftest.py"], None),
    (["plugin.toml"], None),
    (["web/app.js"], []),
    (["tests/data.json"], ["tests/test_other.py"]),
    (["README.md"], None),
    (["tests/test_core.py", "web/index.html"], ["tests/test_core.py"]),
    (["4913", "tests/test_core.py"], ["tests/test_core.py"]),  # vim's probe, gone again
    (["."], []),  # the plugin folder itself (touched): no IndexError, no test
])
def test_affected_tests_of_a_save(tmp_path: Path, changed: list[str],
                                  expected: list[str] | None):
    root = _plugin(tmp_path)
    assert affected_tests(root, "tests", [root / c for c in changed]) == expected


def test_tests_on_a_module_wide_app_or_a_conftests_fixture_are_affected(tmp_path: Path):
    """Audit: only a file naming plexichat_app counted as running the plugin in the app:
    a test on plexichat_shared_app (README's advice) or on a conftest.py fixture built
    from start_app was skipped by a save that broke the route it checks (a false green).
    So was one whose conftest.py imports the changed module."""
    root = _plugin(tmp_path)
    (root / "tests" / "test_app.py").write_text("def test_x(plexichat_shared_app):\n    pass\n")
    (root / "tests" / "sub").mkdir()
    (root / "tests" / "sub" / "conftest.py").write_text(
        "from plexichat_desktop.testing.harness import start_app\n")
    (root / "tests" / "sub" / "test_page.py").write_text("def test_page(app):\n    pass\n")
    (root / "tests" / "helpers").mkdir()
    (root / "tests" / "helpers" / "conftest.py").write_text("from demo import lonely\n")
    (root / "tests" / "helpers" / "test_it.py").write_text("def test_it(thing):\n    pass\n")
    assert affected_tests(root, "tests", [root / "demo" / "lonely.py"]) == [
        "tests/helpers/test_it.py", "tests/sub/test_page.py", "tests/test_app.py"]
    # A helper module beside the tests, imported by its own name, that reaches the
    # changed module (left by an audit: helpers were not in the import graph).
    (root / "tests" / "shared_steps.py").write_text("from demo import util\n")
    (root / "tests" / "test_steps.py").write_text("import shared_steps\n")
    assert "tests/test_steps.py" in affected_tests(root, "tests", [root / "demo" / "util.py"])
    assert "tests/test_steps.py" not in affected_tests(root, "tests",
                                                       [root / "demo" / "lonely.py"])
    # A conftest.py at the plugin's root is loaded for every test (review: it was taken
    # for a plugin module named "conftest").
    (root / "conftest.py").write_text("import pytest\n")
    assert affected_tests(root, "tests", [root / "conftest.py"]) is None


def test_a_plugin_module_no_test_reaches_means_the_whole_suite(tmp_path: Path):
    root = _plugin(tmp_path)
    (root / "tests" / "test_app.py").unlink()
    assert affected_tests(root, "tests", [root / "demo" / "lonely.py"]) is None
    # A deleted test file has nothing left to run.
    (root / "tests" / "test_core.py").unlink()
    assert affected_tests(root, "tests", [root / "tests" / "test_core.py"]) == []


def test_test_watch_reruns_what_a_save_affects(env: dict[str, str], tmp_path: Path):
    root = scaffold_plugin("watched", tmp_path / "work")
    out = tmp_path / "watch.log"
    with out.open("w") as handle:
        proc = subprocess.Popen(
            [*CLI, "test", "watched", "--watch"], stdout=handle, stderr=subprocess.STDOUT,
            env={**env, "PLEXICHAT_DESKTOP_PLUGINS_PATH": str(tmp_path / "work")}, text=True)
    try:
        eventually(lambda: "Watching " in out.read_text(), "test --watch starts watching")
        test_file = root / "tests" / "test_watched.py"
        good = test_file.read_text()
        test_file.write_text(good + "\n\ndef test_new() -> None:\n    assert 'a' == 'b'\n")
        eventually(lambda: "FAILED watched tests/test_watched.py::test_new"
                   in out.read_text(), "the failing new test is reported")
        assert "running tests/test_watched.py" in out.read_text()
        assert "AssertionError" in out.read_text()  # the diff, not only the test's name
        (root / "web" / "app.js").write_text("// only the page\n")
        test_file.write_text(good + "\n\ndef test_new() -> None:\n    assert 'a' == 'a'\n")
        eventually(lambda: "4 passed" in out.read_text(), "the fixed test passes")
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, out.read_text()


def test_unknown_plugin_hint_names_the_running_apps_folder(env: dict[str, str],
                                                          tmp_path: Path):
    target = tmp_path / "elsewhere"
    scaffold_plugin("far_away", target)
    server = subprocess.Popen([*CLI, "serve", "--port", "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True,
                              env={**env, "PLEXICHAT_DESKTOP_PLUGINS_PATH": str(target)})
    try:
        assert server.stdout is not None
        for line in server.stdout:
            if "serving at" in line:
                break
        result = subprocess.run([*CLI, "test", "far_away"], env=env, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 2
        assert "unknown plugin 'far_away'" in result.stderr
        assert f"PLEXICHAT_DESKTOP_PLUGINS_PATH={target}" in result.stderr, result.stderr
        assert f"plexichat-desktop dev {target / 'far_away'}" in result.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(20) == 0
    alone = subprocess.run([*CLI, "test", "far_away"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert alone.returncode == 2 and "through PLEXICHAT_DESKTOP_PLUGINS_PATH" in alone.stderr


@pytest.mark.asyncio
async def test_every_reload_publishes_plugin_reloaded_for_it_and_its_dependents(
        home: Any, tmp_path: Path):
    from plexichat_desktop.core.events import EventBus, PluginReloaded
    from plexichat_desktop.core.settings import Settings
    from plexichat_desktop.plugins.manager import PluginManager

    base = scaffold_plugin("base_one", tmp_path / "plugins")
    needs = tmp_path / "plugins" / "needs_base"
    (needs / "needs_base_pkg").mkdir(parents=True)
    (needs / "plugin.toml").write_text(
        'id = "needs_base"\nname = "Needs base"\nversion = "1.0.0"\n'
        'entry = "needs_base_pkg:P"\n\n[requires]\nbase_one = ">=0.1"\n')
    (needs / "needs_base_pkg" / "__init__.py").write_text(
        "from plexichat_desktop.plugins.api import Plugin\n\n\nclass P(Plugin):\n"
        "    def setup(self, ctx):\n        pass\n")
    bus = EventBus()
    manager = PluginManager(paths=home, settings=Settings(), bus=bus, bundled_dir=None,
                            extra_dirs=[tmp_path / "plugins"], include_installed=False)
    manager.discover()
    await manager.start()
    sub = bus.subscribe(PluginReloaded)
    try:
        await manager.reload("base_one", files=["base_one/__init__.py"])
        first, second = sub.queue.get_nowait(), sub.queue.get_nowait()
        assert (first.plugin_id, first.kind, first.state, first.files) == (
            "base_one", "code", "active", ["base_one/__init__.py"])
        assert (second.plugin_id, second.state, second.files) == ("needs_base", "active", [])

        module = base / "base_one" / "__init__.py"
        module.write_text(module.read_text() + "\ndef broken(:\n")
        await manager.reload("base_one")  # as plugins reload / the API do: no file list
        failed = sub.queue.get_nowait()
        assert failed.plugin_id == "base_one" and failed.state == "failed"
        assert "syntax error" in (failed.reason or "")
    finally:
        sub.close()
        await manager.stop()


def test_dev_survives_its_folder_going_away_and_coming_back(start_dev, tmp_path: Path):
    """Deleting the plugin folder (or touching it) raised IndexError in the watcher's
    handler, and after the folder came back no save was seen again: only a restart of
    dev helped."""
    import shutil

    root = scaffold_plugin("moving_dev", tmp_path / "work")
    module = root / "moving_dev" / "__init__.py"
    dev = start_dev(root, "--headless")  # with tests: their watch sees the folder too
    root.touch()  # the folder itself changes: nothing to reload, no traceback
    backup = tmp_path / "backup"
    shutil.copytree(root, backup)
    shutil.rmtree(root)
    eventually(lambda: "is gone" in dev.out.read_text(), "dev says the folder is gone")
    shutil.copytree(backup, root)
    eventually(lambda: "is back" in dev.out.read_text(), "dev sees the folder again")
    _edit(module, 'f"{greeting}, {who}!"', 'f"{greeting}, {who}! (after the move)"')
    eventually(lambda: dev.client.get("/plugins/moving_dev/api/hello").json() == {
        "message": "Hello, world! (after the move)"}, "a save after the folder came back")
    # Deleted and copied back within one burst (a script, a checkout): the folder is
    # there at every look, but it is another folder, which the old watch never sees.
    reloads = dev.out.read_text().count("reloaded moving_dev")
    shutil.rmtree(root)
    shutil.copytree(backup, root)
    eventually(lambda: dev.out.read_text().count("reloaded moving_dev") > reloads,
               "dev reloads the replaced folder")
    _edit(module, 'f"{greeting}, {who}!"', 'f"{greeting}, {who}! (replaced)"')
    eventually(lambda: dev.client.get("/plugins/moving_dev/api/hello").json() == {
        "message": "Hello, world! (replaced)"}, "a save in the replaced folder")
    # Swapped by renames: the old watch hears only that its folder is gone; the folder
    # in its place is read as it is (reloaded), and watched.
    swapped = tmp_path / "swapped"
    shutil.copytree(backup, swapped)
    _edit(swapped / "moving_dev" / "__init__.py", 'f"{greeting}, {who}!"',
          'f"{greeting}, {who}! (renamed in)"')
    root.rename(tmp_path / "old")
    swapped.rename(root)
    eventually(lambda: dev.client.get("/plugins/moving_dev/api/hello").json() == {
        "message": "Hello, world! (renamed in)"}, "the folder renamed in is reloaded")
    _edit(module, "(renamed in)", "(saved after)")
    eventually(lambda: dev.client.get("/plugins/moving_dev/api/hello").json() == {
        "message": "Hello, world! (saved after)"}, "a save in the folder renamed in")
    assert "Traceback" not in dev.out.read_text()


def test_dev_of_a_plugin_whose_id_is_taken_says_so_and_reloads_nothing(
        start_dev, tmp_path: Path):
    """A plugin folder declaring a bundled plugin's id reloaded that bundled plugin on
    every save, and said "reloaded file_manager"."""
    root = scaffold_plugin("clash_dev", tmp_path / "work")
    manifest = root / "plugin.toml"
    _edit(manifest, 'id = "clash_dev"', 'id = "file_manager"')
    dev = start_dev(root, "--headless", "--no-tests")
    module = root / "clash_dev" / "__init__.py"
    module.write_text(module.read_text() + "\n# a save\n")
    eventually(lambda: "give it an id of its own" in dev.out.read_text(),
               "dev names the clash on a save")
    assert "reloaded file_manager" not in dev.out.read_text()
