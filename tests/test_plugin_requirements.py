"""[requires_python] and [requires_system]: checked without importing plugin code; a
missing required entry makes the plugin incompatible, a missing optional one degraded
(it still runs). Real distributions of this venv and real programs on a real PATH."""

from __future__ import annotations

import importlib.metadata
import json
import os
import stat
from pathlib import Path

import pytest

from plexichat_desktop.core.validation import ConfigError
from plexichat_desktop.plugins.checks import check_plugin_folder
from plexichat_desktop.plugins.manifest import load_manifest
from plexichat_desktop.plugins.requirements import check_binary, check_python
from plexichat_desktop.plugins.scaffold import scaffold_plugin
from tests.conftest import run_many

MINIMAL = 'id = "hello"\nname = "Hello"\nversion = "1.0.0"\nentry = "hello:HelloPlugin"\n'
NOWHERE = "plexichat-no-such-distribution"
PACKAGING = importlib.metadata.version("packaging")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plugin.toml"
    path.write_text(text)
    return path


def add_requirements(root: Path, text: str) -> None:
    manifest = root / "plugin.toml"
    manifest.write_text(manifest.read_text() + "\n" + text)


def make_program(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / name
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return program


# -- the manifest -------------------------------------------------------------------------

def test_manifest_reads_both_tables(tmp_path):
    manifest, warnings = load_manifest(write(tmp_path, MINIMAL + '''
[requires_python]
packages = ["radon>=6", "lizard"]
optional = ["semgrep>=1.100; python_version >= '3.9'"]
[requires_system]
binaries = ["git"]
optional = ["nmap"]
'''))
    assert warnings == []
    assert manifest.requires_python.packages == ["radon>=6", "lizard"]
    assert manifest.requires_python.optional == ["semgrep>=1.100; python_version >= '3.9'"]
    assert manifest.requires_system.binaries == ["git"]
    assert manifest.requires_system.optional == ["nmap"]


@pytest.mark.parametrize(("snippet", "field", "words"), [
    ('[requires_python]\npackages = ["radon >>= 6"]', "requires_python.packages",
     "is not a requirement"),
    ('[requires_python]\noptional = [3]', "requires_python.optional[0]", "string"),
    ('[requires_system]\nbinaries = ["/usr/bin/git"]', "requires_system.binaries",
     "program name"),
    ('[requires_system]\noptional = ["git --version"]', "requires_system.optional",
     "program name"),
    ('[requires_python]\npackages = "radon"', "requires_python.packages", "list"),
])
def test_bad_requirements_name_the_field(tmp_path, snippet, field, words):
    with pytest.raises(ConfigError) as info:
        load_manifest(write(tmp_path, MINIMAL + snippet + "\n"))
    assert field in str(info.value) and words in str(info.value)


# -- the checks ---------------------------------------------------------------------------

def test_python_requirements_against_this_environment():
    assert check_python("packaging>=20", optional=False) is None
    assert check_python("Packaging>=20", optional=False) is None  # names compare canonically
    too_old = check_python("packaging>=999", optional=False)
    assert too_old is not None and too_old.found == f"packaging {PACKAGING}"
    assert too_old.reason == (f"missing packaging>=999, packaging {PACKAGING} is installed "
                              "(install: pip install 'packaging>=999')")
    missing = check_python(f"{NOWHERE}>=6", optional=True)
    assert missing is not None and missing.optional and missing.found is None
    assert missing.reason == f"missing {NOWHERE}>=6 (install: pip install '{NOWHERE}>=6')"
    # A marker that excludes this machine: not needed here.
    assert check_python(f"{NOWHERE}; sys_platform == 'plan9'", optional=False) is None


def test_binaries_on_the_real_path(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    make_program(bin_dir, "plexitool")
    monkeypatch.setenv("PATH", str(bin_dir))
    assert check_binary("plexitool", optional=False) is None
    missing = check_binary("git_but_not_here", optional=False)
    assert missing is not None
    assert missing.reason.startswith("missing program 'git_but_not_here' (install: ")


def test_validate_reports_required_as_errors_and_optional_as_warnings(tmp_path):
    root = scaffold_plugin("needy_check", tmp_path)
    add_requirements(root, f'[requires_python]\npackages = ["{NOWHERE}>=6"]\n'
                           f'optional = ["{NOWHERE}-extra"]\n')
    result = check_plugin_folder(root)
    assert not result.ok
    assert any(f"missing {NOWHERE}>=6 (install: pip install '{NOWHERE}>=6')" in e
               for e in result.errors)
    assert any(f"{NOWHERE}-extra" in w and "degraded" in w for w in result.warnings)


# -- the host, over HTTP ------------------------------------------------------------------

@pytest.mark.asyncio
async def test_incompatible_and_degraded_plugins_on_a_real_server(start_core, tmp_path):
    needy = scaffold_plugin("needy", tmp_path)
    add_requirements(needy, f'[requires_python]\npackages = ["{NOWHERE}>=6"]\n')
    partial = scaffold_plugin("partial", tmp_path)
    add_requirements(partial, f'[requires_python]\npackages = ["packaging"]\n'
                              f'optional = ["{NOWHERE}>=2"]\n'
                              '[requires_system]\noptional = ["plexichat_absent_tool"]\n')
    (partial / "partial" / "__init__.py").write_text(
        "from plexichat_desktop.plugins.api import Plugin\n\n\n"
        "class PartialPlugin(Plugin):\n"
        "    def setup(self, ctx):\n"
        "        async def features():\n"
        f"            return {{'extra': ctx.has('{NOWHERE}'), 'packaging': ctx.has('packaging'),"
        "                    'degraded': ctx.degraded}\n"
        "        ctx.add_route('/features', features)\n")
    core = await start_core(tmp_path)

    rec = (await core.client.get("/api/plugins/needy")).json()
    assert rec["state"] == "incompatible" and not rec["running"]
    assert rec["reason"] == f"missing {NOWHERE}>=6 (install: pip install '{NOWHERE}>=6')"
    assert (await core.client.get("/plugins/needy/api/hello")).status_code == 503

    rec = (await core.client.get("/api/plugins/partial")).json()
    assert rec["state"] == "degraded" and rec["running"]
    assert rec["degraded"] == [
        f"missing {NOWHERE}>=2 (install: pip install '{NOWHERE}>=2')",
        "missing program 'plexichat_absent_tool' (install: your system's package manager, "
        "e.g. 'sudo apt install plexichat_absent_tool')"]
    assert rec["reason"] == "; ".join(rec["degraded"])
    # It runs: its own routes, its page, and the host's status route for its page.
    assert (await core.client.get("/plugins/partial/")).status_code == 200
    features = (await core.client.get("/plugins/partial/api/features")).json()
    assert features == {"extra": False, "packaging": True, "degraded": rec["degraded"]}
    status = (await core.client.get("/plugins/partial/api/_host/status")).json()
    assert status["degraded"] == rec["degraded"]
    assert [m["requirement"] for m in status["missing"]] == [f"{NOWHERE}>=2",
                                                             "plexichat_absent_tool"]
    # Disable and enable keep the degraded state; the reason comes back.
    r = await core.client.post("/api/plugins/partial/disable")
    assert r.json()["state"] == "disabled"
    r = await core.client.post("/api/plugins/partial/enable")
    assert r.status_code == 200 and r.json()["state"] == "degraded"
    assert r.json()["reason"] == "; ".join(rec["degraded"])


@pytest.mark.asyncio
async def test_the_host_routes_answer_for_the_plugin_asked(start_core, tmp_path):
    # One router serves every plugin's _host/ routes (built once, not six routes per
    # plugin at each start): each answer is still the plugin's own.
    for pid in ("first", "second"):
        scaffold_plugin(pid, tmp_path)
    core = await start_core(tmp_path)
    for pid in ("first", "second"):
        status = (await core.client.get(f"/plugins/{pid}/api/_host/status")).json()
        assert status == {"plugin_id": pid, "degraded": [], "missing": []}
        assert (await core.client.get(f"/plugins/{pid}/api/_host/jobs")).json() == {"jobs": []}
        missing = await core.client.get(f"/plugins/{pid}/api/_host/jobs/nope")
        assert missing.status_code == 404 and "nope" in missing.json()["detail"]
        cancel = await core.client.post(f"/plugins/{pid}/api/_host/jobs/nope/cancel")
        assert cancel.status_code == 404
        assert (await core.client.get(f"/plugins/{pid}/api/_host/other")).status_code == 404
    # A plugin's own routes beside them.
    assert (await core.client.get("/plugins/second/api/hello")).status_code == 200


@pytest.mark.asyncio
async def test_enable_rechecks_so_an_installed_program_counts(start_core, tmp_path,
                                                              monkeypatch):
    plugins, bin_dir = tmp_path / "plugins", tmp_path / "bin"
    root = scaffold_plugin("gitty", plugins)
    add_requirements(root, '[requires_system]\nbinaries = ["plexichat_fake_git"]\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    core = await start_core(plugins)
    rec = (await core.client.get("/api/plugins/gitty")).json()
    assert rec["state"] == "incompatible" and "plexichat_fake_git" in rec["reason"]
    r = await core.client.post("/api/plugins/gitty/enable")
    assert r.status_code == 409 and r.json()["state"] == "incompatible"
    make_program(bin_dir, "plexichat_fake_git")
    r = await core.client.post("/api/plugins/gitty/enable")
    assert r.status_code == 200 and r.json()["state"] == "active"
    assert (await core.client.get("/plugins/gitty/api/hello")).status_code == 200


def test_plugins_list_shows_degraded_in_text_and_json(home, tmp_path):
    root = scaffold_plugin("partial_listed", tmp_path)
    add_requirements(root, f'[requires_python]\noptional = ["{NOWHERE}>=2"]\n')
    env = {**os.environ, "PLEXICHAT_DESKTOP_HOME": str(home.config_dir.parent),
           "PLEXICHAT_DESKTOP_PLUGINS_PATH": str(tmp_path)}
    # Both commands in one interpreter (run_many): its start and imports are paid once.
    as_text, as_json = run_many([["plugins", "list"], ["plugins", "list", "--json"]], env)
    text = as_text.stdout
    line = next(ln for ln in text.splitlines() if ln.startswith("partial_listed"))
    assert "degraded" in line
    assert f"-> missing {NOWHERE}>=2 (install: pip install '{NOWHERE}>=2')" in text
    listed = as_json.stdout
    row = next(p for p in json.loads(listed)["plugins"] if p["id"] == "partial_listed")
    assert row["state"] == "degraded"
    assert row["missing"][0]["install"] == f"pip install '{NOWHERE}>=2'"
