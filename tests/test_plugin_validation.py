"""One validator: `plugins validate`, `plugins list`, the server and `plugins new` agree;
misspelt manifest keys get a "did you mean"; a missing entry class is named as missing;
`plugins schema` prints the manifest's JSON Schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from plexichat_desktop.core.validation import ConfigError
from plexichat_desktop.plugins.checks import check_plugin_folder
from plexichat_desktop.plugins.manifest import Manifest, load_manifest
from plexichat_desktop.plugins.scaffold import scaffold_plugin

MINIMAL = 'id = "hello"\nname = "Hello"\nversion = "1.0.0"\nentry = "hello:HelloPlugin"\n'
CLI = [sys.executable, "-m", "plexichat_desktop"]


def cli(args, home, plugins_path=None):
    env = {**os.environ, "PLEXICHAT_DESKTOP_HOME": str(home.config_dir.parent)}
    env.pop("PLEXICHAT_DESKTOP_PLUGINS_PATH", None)
    if plugins_path is not None:
        env["PLEXICHAT_DESKTOP_PLUGINS_PATH"] = str(plugins_path)
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("text", "expected"), [
    ('id = "hello"\nname = "Hello"\nversion = "1.0.0"\nentyr = "hello:HelloPlugin"\n',
     "entyr: unknown key; did you mean 'entry'?"),
    (MINIMAL + 'licence = "MIT"\n', "licence: unknown key; did you mean 'license'?"),
    (MINIMAL + '[[page]]\ntitle = "Main"\n', "page: unknown key; did you mean 'pages'?"),
    (MINIMAL + '[test]\ntimeout = 5\n', "test: unknown key; did you mean 'tests'?"),
    (MINIMAL + '[permissions]\nnetwrok = true\n',
     "permissions.netwrok: unknown key; did you mean 'network'?"),
    (MINIMAL + '[[pages]]\ntitle = "x"\npaht = "a.html"\n',
     "pages[0].paht: unknown key; did you mean 'path'?"),
    (MINIMAL + '[requires_python]\npackage = ["radon"]\n',
     "requires_python.package: unknown key; did you mean 'packages'?"),
])
def test_misspelt_keys_are_errors_with_a_did_you_mean(tmp_path, text, expected):
    path = tmp_path / "plugin.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_manifest(path)
    assert expected in str(info.value)
    # The missing field the typo stood for is not reported a second time.
    assert "entry: required field is missing" not in str(info.value)


def test_far_away_unknown_keys_stay_warnings(tmp_path):
    path = tmp_path / "plugin.toml"
    path.write_text(MINIMAL + 'colour = "blue"\n')
    _, warnings = load_manifest(path)
    assert warnings == [f"{path}: unknown key 'colour' ignored"]


def broken_page(parent):
    root = scaffold_plugin("pageless", parent)
    (root / "web" / "index.html").unlink()
    return root


def json_package(parent):
    root = scaffold_plugin("jsonish", parent)
    manifest = root / "plugin.toml"
    manifest.write_text(manifest.read_text().replace('entry = "jsonish:JsonishPlugin"',
                                                     'entry = "json:JsonishPlugin"'))
    (root / "jsonish").rename(root / "json")
    return root


@pytest.mark.asyncio
async def test_validate_list_and_server_agree(start_core, home, tmp_path):
    plugins = tmp_path / "plugins"
    pageless, jsonish = broken_page(plugins), json_package(plugins)
    page_error = check_plugin_folder(pageless).errors
    json_error = check_plugin_folder(jsonish).errors
    assert len(page_error) == 1 and "index.html, which does not exist" in page_error[0]
    assert len(json_error) == 1 and "module name 'json' is already taken" in json_error[0]

    listed = json.loads(cli(["plugins", "list", "--json"], home, plugins).stdout)["plugins"]
    rows = {p["id"]: p for p in listed}
    assert (rows["pageless"]["state"], rows["pageless"]["reason"]) == ("failed", page_error[0])
    assert (rows["jsonish"]["state"], rows["jsonish"]["reason"]) == ("failed", json_error[0])

    core = await start_core(plugins)
    for pid, error in (("pageless", page_error[0]), ("jsonish", json_error[0])):
        rec = (await core.client.get(f"/api/plugins/{pid}")).json()
        assert (rec["state"], rec["reason"]) == ("failed", error)
        r = await core.client.get(f"/plugins/{pid}/")
        assert r.status_code == 503 and error in r.json()["detail"]


def test_plugins_new_refuses_a_taken_package_name(home, tmp_path):
    result = cli(["plugins", "new", "json", "--dir", str(tmp_path)], home)
    assert result.returncode == 2
    assert "package name 'json' is already taken by" in result.stderr
    assert not (tmp_path / "json").exists()
    with pytest.raises(ValueError, match="'test' is already taken"):
        scaffold_plugin("test", tmp_path)


@pytest.mark.asyncio
async def test_a_missing_entry_class_is_named_as_missing(start_core, tmp_path):
    root = scaffold_plugin("classless", tmp_path)
    (root / "classless" / "__init__.py").write_text(
        "from plexichat_desktop.plugins.api import Plugin\n\n\n"
        "class ClasslessPlugn(Plugin):\n    pass\n")
    core = await start_core(tmp_path)
    rec = (await core.client.get("/api/plugins/classless")).json()
    assert rec["state"] == "failed"
    assert rec["reason"] == ("entry 'classless:ClasslessPlugin': module 'classless' has no "
                             "'ClasslessPlugin'; its Plugin classes: ClasslessPlugn")


def test_plugins_schema_prints_the_manifest_schema(home):
    result = cli(["plugins", "schema"], home)
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["title"].startswith("PlexiChat Desktop plugin manifest")
    assert set(schema["required"]) == {"id", "name", "version", "entry"}
    assert {"requires_python", "requires_system", "pages", "permissions"} <= set(
        schema["properties"])
    assert schema["additionalProperties"] is False
    assert schema == json.loads(json.dumps(Manifest.model_json_schema() | {
        "$schema": schema["$schema"], "title": schema["title"]}))


def test_plugins_list_says_each_problem_once(home):
    from tests.conftest import FIXTURE_PLUGINS

    result = cli(["plugins", "list"], home, FIXTURE_PLUGINS)
    assert result.returncode == 0
    assert result.stderr == ""                     # no log lines repeating the list
    assert result.stdout.count("duplicate plugin id 'dup'") == 1
    assert "\n                            tests.timeout: " in result.stdout  # indented


def test_a_stale_byte_code_file_does_not_hide_a_syntax_error(tmp_path):
    """The syntax check trusts Python's byte-code cache only while it matches the source:
    an edit that breaks the module is reported even with the old .pyc next to it."""
    import py_compile

    root = scaffold_plugin("cached", tmp_path)
    module = root / "cached" / "__init__.py"
    py_compile.compile(str(module), doraise=True)
    assert check_plugin_folder(root).ok

    broken = module.read_text() + "\ndef broken(:\n    pass\n"
    module.write_text(broken)
    stat = module.stat()
    os.utime(module, (stat.st_atime, stat.st_mtime + 5))
    errors = check_plugin_folder(root).errors
    assert len(errors) == 1 and f"{module}:" in errors[0] and "syntax error" in errors[0]


def test_a_syntax_error_in_any_module_of_the_package_fails_validation(tmp_path):
    """Audit: only the entry module was compiled: a module it imports with a syntax error
    was "OK" to validate and list, and failed the plugin in the app. Also the web/ and
    tests/ names, which are the plugin's own folders, cannot be its package."""
    root = scaffold_plugin("deep_error", tmp_path)
    helper = root / "deep_error" / "util" / "maths.py"
    helper.parent.mkdir()
    (helper.parent / "__init__.py").write_text("")
    helper.write_text("def twice(x):\n    return 2 +\n")
    errors = check_plugin_folder(root).errors
    assert errors == [f"{helper}:2: syntax error: invalid syntax"], errors
    helper.write_text("def twice(x):\n    return 2 * x\n")
    assert check_plugin_folder(root).ok
    # A folder that is no sub-package (a vendored tree, a virtual environment) is not
    # imported, so not compiled; an invalid escape is a warning with its file and line,
    # not a message printed over the command's output.
    vendored = root / "deep_error" / "env" / "lib" / "py2only.py"
    vendored.parent.mkdir(parents=True)
    vendored.write_text("print 'old'\n")
    (root / "deep_error" / "util" / "__init__.py").write_text('PATTERN = "\\d+"\n')
    checked = check_plugin_folder(root)
    assert checked.ok, checked.errors
    assert [w for w in checked.warnings if "util/__init__.py:1: invalid escape" in w], \
        checked.warnings
    assert [w for w in checked.warnings if "py2only.py:1: syntax error" in w
            and "without __init__.py" in w], checked.warnings
    for reserved in ("web", "tests"):
        with pytest.raises(ValueError, match="cannot be a plugin id"):
            scaffold_plugin(reserved, tmp_path)
    manifest = root / "plugin.toml"
    manifest.write_text(manifest.read_text().replace('entry = "deep_error:',
                                                     'entry = "web:'))
    errors = check_plugin_folder(root).errors
    assert any("the entry's package cannot be 'web'" in e for e in errors), errors


def test_what_the_app_cannot_load_or_serve_fails_validation_too(tmp_path):
    """``plugins validate`` said OK to an entry module that is not UTF-8 (the import then
    failed: the check compiled text decoded with replacements) and to a page that is a
    link out of web/ (never served: a bare 404)."""
    latin = scaffold_plugin("latin_source", tmp_path)
    module = latin / "latin_source" / "__init__.py"
    module.write_bytes(module.read_bytes() + b'\nCAFE = "caf\xe9"\n')
    errors = check_plugin_folder(latin).errors
    assert len(errors) == 1 and f"{module}:" in errors[0] and "syntax error" in errors[0]

    linked = scaffold_plugin("linked_page", tmp_path)
    (linked / "outside.html").write_text("<!doctype html><title>x</title>")
    (linked / "web" / "index.html").unlink()
    (linked / "web" / "index.html").symlink_to(linked / "outside.html")
    errors = check_plugin_folder(linked).errors
    assert len(errors) == 1 and "outside" in errors[0] and "never served" in errors[0]
    # A link that stays inside web/ is served, and passes.
    (linked / "web" / "index.html").unlink()
    (linked / "web" / "real.html").write_text("<!doctype html><title>x</title>")
    (linked / "web" / "index.html").symlink_to(linked / "web" / "real.html")
    assert check_plugin_folder(linked).ok


def test_ids_and_packages_the_app_would_refuse_are_refused_before_it(home, tmp_path):
    """`plugins new file_manager` made a plugin the app then failed as a duplicate id,
    and two plugins with one package name were both "validated" in `plugins list`
    while the app failed the second at import."""
    result = cli(["plugins", "new", "file_manager", "--dir", str(tmp_path / "n")], home)
    assert result.returncode == 2 and "comes with the app" in result.stderr
    plugins = tmp_path / "plugins"
    for name in ("p_one", "p_two"):
        root = scaffold_plugin(name, plugins)
        manifest = root / "plugin.toml"
        manifest.write_text(manifest.read_text().replace(f'entry = "{name}:',
                                                         'entry = "common:'))
        (root / name).rename(root / "common")
    listed = json.loads(cli(["plugins", "list", "--json"], home, plugins).stdout)["plugins"]
    rows = {p["id"]: p for p in listed}
    assert rows["p_one"]["state"] == "validated", rows["p_one"]
    assert rows["p_two"]["state"] == "failed"
    assert "module name 'common' is already the package of plugin 'p_one'" in \
        rows["p_two"]["reason"]
    # A plugin failed for another reason is never imported: it claims no package name.
    (plugins / "p_one" / "web" / "index.html").unlink()
    listed = json.loads(cli(["plugins", "list", "--json"], home, plugins).stdout)["plugins"]
    rows = {p["id"]: p for p in listed}
    assert rows["p_one"]["state"] == "failed" and "does not exist" in rows["p_one"]["reason"]
    assert rows["p_two"]["state"] == "validated", rows["p_two"]
