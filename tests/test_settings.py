import re
import stat
import tomllib

import pytest

from plexichat_desktop.core.paths import AppPaths
from plexichat_desktop.core.settings import (
    Settings,
    documented_template,
    load_settings,
    write_template_if_missing,
)
from plexichat_desktop.core.validation import ConfigError
from plexichat_desktop.server.token import load_or_create_token


def test_home_env_puts_every_dir_under_it(tmp_path):
    paths = AppPaths.from_env({"PLEXICHAT_DESKTOP_HOME": str(tmp_path)})
    for folder in (paths.config_dir, paths.data_dir, paths.cache_dir, paths.log_dir):
        assert folder.is_relative_to(tmp_path)
    assert paths.settings_file.parent == paths.config_dir


def test_defaults_without_a_file(home):
    settings, warnings = load_settings(home, environ={})
    assert settings == Settings()
    assert settings.server.port == 8000
    assert warnings == []


def test_file_env_and_cli_layer_in_order(home):
    home.config_dir.mkdir(parents=True)
    home.settings_file.write_text("[server]\nport = 9001\n[logging]\nlevel = 'DEBUG'\n")
    settings, _ = load_settings(home, environ={})
    assert settings.server.port == 9001
    settings, _ = load_settings(home, environ={"PLEXICHAT_DESKTOP_SERVER__PORT": "9002"})
    assert settings.server.port == 9002
    settings, _ = load_settings(home, environ={"PLEXICHAT_DESKTOP_SERVER__PORT": "9002"},
                                cli={"server": {"port": 9003}})
    assert settings.server.port == 9003
    assert settings.logging.level == "DEBUG"


def test_env_list_values_parse_as_toml(home):
    settings, _ = load_settings(home, environ={
        "PLEXICHAT_DESKTOP_PLUGINS__ESSENTIAL": '["performance_monitor"]'})
    assert settings.plugins.essential == ["performance_monitor"]


def test_env_reaches_plugin_settings(home):
    settings, _ = load_settings(home, environ={
        "PLEXICHAT_DESKTOP_PLUGIN__PERFORMANCE_MONITOR__CPU_THRESHOLD": "50.5"})
    assert settings.plugin == {"performance_monitor": {"cpu_threshold": 50.5}}


def test_malformed_toml_names_the_file_and_line(home):
    home.config_dir.mkdir(parents=True)
    home.settings_file.write_text("[server\nport = 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(home, environ={})
    assert str(home.settings_file) in str(info.value)
    assert "line 1" in str(info.value)


def test_wrong_type_names_file_key_and_expected_type(home):
    home.config_dir.mkdir(parents=True)
    home.settings_file.write_text("[server]\nport = 'eighty'\n")
    with pytest.raises(ConfigError) as info:
        load_settings(home, environ={})
    message = str(info.value)
    assert str(home.settings_file) in message
    assert "server.port" in message
    assert "integer" in message
    assert "'eighty'" in message


def test_out_of_range_value_is_refused(home):
    home.config_dir.mkdir(parents=True)
    home.settings_file.write_text("[server]\nport = 70000\n")
    with pytest.raises(ConfigError, match=r"server\.port: .*65535"):
        load_settings(home, environ={})


def test_bad_env_value_names_the_variable(home):
    with pytest.raises(ConfigError, match="PLEXICHAT_DESKTOP_SERVER__PORT"):
        load_settings(home, environ={"PLEXICHAT_DESKTOP_SERVER__PORT": "abc"})


def test_unknown_keys_warn_but_load(home):
    home.config_dir.mkdir(parents=True)
    home.settings_file.write_text("[server]\nport = 8100\ncolour = 'red'\n[extra]\nx = 1\n")
    settings, warnings = load_settings(home, environ={})
    assert settings.server.port == 8100
    assert any("server.colour" in w for w in warnings)
    assert any("'extra'" in w for w in warnings)


def test_documented_template_is_valid_and_lists_every_default(home):
    text = documented_template()
    for section in ("[server]", "[plugins]", "[logging]"):
        assert section in text
    setting_line = re.compile(r"^(# )?(\[[\w.]+\]|\w+ = .*)$")
    uncommented = "\n".join(line.removeprefix("# ") for line in text.splitlines()
                            if setting_line.match(line))
    data = tomllib.loads(uncommented)
    data["plugin"].pop("example_plugin")
    assert Settings.model_validate(data) == Settings()
    assert write_template_if_missing(home) == home.settings_file
    assert write_template_if_missing(home) is None  # never overwrites
    assert load_settings(home, environ={})[0] == Settings()


def test_token_file_is_private_and_stable(home):
    token = load_or_create_token(home.token_file)
    assert len(token) >= 32
    assert stat.S_IMODE(home.token_file.stat().st_mode) == 0o600
    assert load_or_create_token(home.token_file) == token
    home.token_file.chmod(0o644)
    assert load_or_create_token(home.token_file) == token
    assert stat.S_IMODE(home.token_file.stat().st_mode) == 0o600
