"""Enable is a real reload, and PluginManager.reload restarts a running plugin: the
manifest and the code are read again from disk (real files, a real server)."""

from __future__ import annotations

import pytest

from plexichat_desktop.plugins.scaffold import scaffold_plugin
from tests.conftest import run_many, switch_off_bundled

CODE = '''from plexichat_desktop.plugins.api import Plugin

MARK = {mark!r}


class {cls}(Plugin):
    def setup(self, ctx):
        async def mark():
            return {{"mark": MARK, "version": ctx.manifest.version}}

        ctx.add_route("/mark", mark)
'''


def write_code(root, pid, mark):
    cls = "".join(part.capitalize() for part in pid.split("_")) + "Plugin"
    (root / pid / "__init__.py").write_text(CODE.format(mark=mark, cls=cls))


def bump_version(root, version):
    manifest = root / "plugin.toml"
    text = manifest.read_text()
    current = text.split('version = "', 1)[1].split('"', 1)[0]
    manifest.write_text(text.replace(f'version = "{current}"', f'version = "{version}"', 1))


@pytest.mark.asyncio
async def test_enable_after_an_edit_runs_the_new_code_and_manifest(start_core, tmp_path):
    root = scaffold_plugin("reloader", tmp_path)
    write_code(root, "reloader", "first")
    core = await start_core(tmp_path)
    assert (await core.client.get("/plugins/reloader/api/mark")).json() == {
        "mark": "first", "version": "0.1.0"}
    await core.client.post("/api/plugins/reloader/disable")
    write_code(root, "reloader", "second, edited while disabled")
    bump_version(root, "0.2.0")
    r = await core.client.post("/api/plugins/reloader/enable")
    assert r.status_code == 200 and r.json()["version"] == "0.2.0"
    assert (await core.client.get("/plugins/reloader/api/mark")).json() == {
        "mark": "second, edited while disabled", "version": "0.2.0"}


@pytest.mark.asyncio
async def test_a_failed_plugin_fixed_on_disk_starts_on_enable(start_core, tmp_path):
    root = scaffold_plugin("fixme", tmp_path)
    (root / "fixme" / "__init__.py").write_text("raise RuntimeError('not yet')\n")
    core = await start_core(tmp_path)
    rec = (await core.client.get("/api/plugins/fixme")).json()
    assert rec["state"] == "failed" and "not yet" in rec["reason"]
    write_code(root, "fixme", "fixed")
    r = await core.client.post("/api/plugins/fixme/enable")
    assert r.status_code == 200 and r.json()["state"] == "active"
    assert (await core.client.get("/plugins/fixme/api/mark")).json()["mark"] == "fixed"


@pytest.mark.asyncio
async def test_reload_restarts_a_running_plugin_and_its_dependents(start_core, tmp_path):
    base = scaffold_plugin("base_lib", tmp_path)
    write_code(base, "base_lib", "v1")
    user = scaffold_plugin("base_user", tmp_path)
    write_code(user, "base_user", "user")
    manifest = user / "plugin.toml"
    manifest.write_text(manifest.read_text() + '\n[requires]\nbase_lib = ">=0.1"\n')
    core = await start_core(tmp_path)
    manager = core.runtime.plugins
    write_code(base, "base_lib", "v2")
    rec = await manager.reload("base_lib")
    assert rec.state == "active"
    assert (await core.client.get("/plugins/base_lib/api/mark")).json()["mark"] == "v2"
    assert manager.get("base_user").state == "active"
    # A manifest that breaks on disk fails the plugin with the validator's reason, and the
    # plugin that needs it says why it cannot run.
    (base / "plugin.toml").write_text((base / "plugin.toml").read_text().replace(
        'entry = "', 'entyr = "'))
    rec = await manager.reload("base_lib")
    assert rec.state == "failed" and "did you mean 'entry'?" in rec.reason
    dependent = manager.get("base_user")
    assert (dependent.state, dependent.reason) == ("failed",
                                                   "requires 'base_lib', which is failed")


@pytest.mark.asyncio
async def test_reload_over_http(start_core, tmp_path):
    root = scaffold_plugin("http_reloaded", tmp_path)
    write_code(root, "http_reloaded", "before")
    core = await start_core(tmp_path)
    write_code(root, "http_reloaded", "after the edit")
    r = await core.client.post("/api/plugins/http_reloaded/reload")
    assert r.status_code == 200 and r.json()["state"] == "active"
    assert (await core.client.get("/plugins/http_reloaded/api/mark")).json()["mark"] == (
        "after the edit")
    (root / "http_reloaded" / "__init__.py").write_text("raise ValueError('broken edit')\n")
    r = await core.client.post("/api/plugins/http_reloaded/reload")
    assert r.status_code == 409 and "broken edit" in r.json()["reason"]
    assert (await core.client.post("/api/plugins/nobody/reload")).status_code == 404


def test_plugins_reload_command_reloads_in_the_running_app(home, tmp_path):
    import os
    import re
    import subprocess
    import sys

    import httpx

    root = scaffold_plugin("cli_reloaded", tmp_path)
    write_code(root, "cli_reloaded", "one")
    env = {**os.environ, "PLEXICHAT_DESKTOP_HOME": str(home.config_dir.parent),
           "PLEXICHAT_DESKTOP_PLUGINS_PATH": str(tmp_path)}
    cli = [sys.executable, "-m", "plexichat_desktop"]
    switch_off_bundled(home)
    idle = subprocess.run([*cli, "plugins", "reload", "cli_reloaded"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert idle.returncode == 1 and "is not running" in idle.stderr
    proc = subprocess.Popen([*cli, "serve", "--port", "0"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:
            if match := re.search(r"serving at (http://127\.0\.0\.1:\d+/)", line):
                url = match.group(1)
                break
        assert url is not None, "serve did not start"
        token = home.token_file.read_text().strip()  # what `token` prints (test_cli.py)
        write_code(root, "cli_reloaded", "two, reloaded from the command line")
        done, missing = run_many([["plugins", "reload", "cli_reloaded"],
                                  ["plugins", "reload", "ghost"]], env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "Plugin 'cli_reloaded' reloaded: active"
        answer = httpx.get(f"{url}plugins/cli_reloaded/api/mark",
                           headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert answer.json()["mark"] == "two, reloaded from the command line"
        assert missing.returncode == 1 and "ghost" in missing.stderr
    finally:
        proc.terminate()
        proc.wait(30)
