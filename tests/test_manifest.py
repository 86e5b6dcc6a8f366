import pytest

from plexichat_desktop.core.validation import ConfigError
from plexichat_desktop.plugins.checks import check_plugin_folder
from plexichat_desktop.plugins.manifest import load_manifest
from tests.conftest import FIXTURE_PLUGINS

MINIMAL = 'id = "hello"\nname = "Hello"\nversion = "1.0.0"\nentry = "hello:HelloPlugin"\n'


def write(tmp_path, text):
    path = tmp_path / "plugin.toml"
    path.write_text(text)
    return path


def test_minimal_manifest_gets_defaults(tmp_path):
    manifest, warnings = load_manifest(write(tmp_path, MINIMAL))
    assert manifest.id == "hello"
    assert (manifest.module, manifest.class_name) == ("hello", "HelloPlugin")
    assert manifest.tests.path == "tests" and manifest.tests.timeout == 300
    assert manifest.permissions.network is False
    assert warnings == []


def test_full_manifest(tmp_path):
    manifest, _ = load_manifest(write(tmp_path, MINIMAL + '''
description = "d"
author = "a"
license = "MIT"
min_host_version = "0.1"
[requires]
api_integration_layer = ">=1.0,<2"
[permissions]
network = true
api_scopes = ["messages:read"]
[[pages]]
title = "Main"
path = "index.html"
icon = "img/icon.svg"
[tests]
timeout = 30
schedule = "daily"
[settings]
level = 3
'''))
    assert manifest.requires == {"api_integration_layer": ">=1.0,<2"}
    assert manifest.permissions.api_scopes == ["messages:read"]
    assert manifest.pages[0].icon == "img/icon.svg"
    assert manifest.tests.schedule == "daily"
    assert manifest.settings == {"level": 3}


def test_malformed_toml_names_file_and_line():
    path = FIXTURE_PLUGINS / "malformed_toml" / "plugin.toml"
    with pytest.raises(ConfigError) as info:
        load_manifest(path)
    assert str(path) in str(info.value)
    assert "not valid TOML" in str(info.value) and "line" in str(info.value)


def test_wrong_types_name_each_field():
    path = FIXTURE_PLUGINS / "wrong_types" / "plugin.toml"
    with pytest.raises(ConfigError) as info:
        load_manifest(path)
    message = str(info.value)
    assert str(path) in message
    assert "version: " in message and "valid string" in message
    assert "pages: " in message and "list" in message
    assert "tests.timeout: " in message and "number" in message


def test_unknown_fields_are_warnings():
    manifest, warnings = load_manifest(FIXTURE_PLUGINS / "unknown_fields" / "plugin.toml")
    assert manifest.id == "unknown_fields"
    assert any("'colour'" in w for w in warnings)
    assert any("'permissions.teleport'" in w for w in warnings)


@pytest.mark.parametrize(("snippet", "field"), [
    ('id = "Bad-Id"', "id"),
    ('entry = "no_class_here"', "entry"),
    ('version = "one"', "version"),
    ('min_host_version = "x.y"', "min_host_version"),
    ('[requires]\nother = "~~1"', "requires"),
    ('[requires]\n"Not An Id" = ">=1"', "requires"),
    ('[[pages]]\ntitle = "x"\npath = "../../etc/passwd"', "pages[0].path"),
    ('[[pages]]\ntitle = "x"\npath = "javascript:alert(1)"', "pages[0].path"),
    ('[tests]\npath = "../elsewhere"', "tests.path"),
    ('[tests]\ntimeout = -1', "tests.timeout"),
])
def test_bad_values_name_the_field(tmp_path, snippet, field):
    base = dict(line.split(" = ", 1) for line in MINIMAL.strip().splitlines())
    key = snippet.split(" = ", 1)[0]
    if not snippet.startswith("["):
        base.pop(key, None)
        text = "\n".join(f"{k} = {v}" for k, v in base.items()) + "\n" + snippet + "\n"
    else:
        text = MINIMAL + snippet + "\n"
    with pytest.raises(ConfigError) as info:
        load_manifest(write(tmp_path, text))
    assert f"{field}: " in str(info.value)


def test_missing_required_fields(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_manifest(write(tmp_path, 'id = "only_id"\n'))
    for field in ("name", "version", "entry"):
        assert f"{field}: required field is missing" in str(info.value)


def test_check_folder_accepts_a_good_plugin():
    result = check_plugin_folder(FIXTURE_PLUGINS / "good")
    assert result.ok, result.errors
    assert result.manifest is not None and result.manifest.id == "good_plugin"


def test_check_folder_reports_missing_module_and_page(tmp_path):
    write(tmp_path, MINIMAL + '[[pages]]\ntitle = "Main"\npath = "index.html"\n')
    result = check_plugin_folder(tmp_path)
    assert not result.ok
    assert any("module 'hello' not found" in e for e in result.errors)
    assert any("'Main' points to" in e for e in result.errors)
    assert any("no tests folder" in w for w in result.warnings)


def test_check_folder_reports_syntax_errors(tmp_path):
    write(tmp_path, MINIMAL)
    (tmp_path / "hello").mkdir()
    (tmp_path / "hello" / "__init__.py").write_text("class HelloPlugin(:\n")
    result = check_plugin_folder(tmp_path)
    assert any("syntax error" in e and "__init__.py:1" in e for e in result.errors)


def test_check_folder_refuses_module_names_taken_elsewhere(tmp_path):
    write(tmp_path, MINIMAL.replace("hello:HelloPlugin", "json:Plugin"))
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "__init__.py").write_text("")
    result = check_plugin_folder(tmp_path)
    assert any("already taken" in e for e in result.errors)


def test_not_a_plugin_folder():
    result = check_plugin_folder(FIXTURE_PLUGINS / "not_a_plugin")
    assert not result.ok and "not a plugin folder" in result.errors[0]
