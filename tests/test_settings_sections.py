"""load_settings validates only the sections its sources name (the others are the models'
defaults, made without validation): the result, the warnings and the errors are those of
validating the whole model."""

import pytest
from pydantic import ValidationError

from plexichat_desktop.core.settings import Settings, documented_template, load_settings
from plexichat_desktop.core.validation import ConfigError, validate_lenient

FILE = "[server]\nport = 9001\n[tests]\ndaily_at = '03:30'\nreruns = 2\n"
ENV = {"PLEXICHAT_DESKTOP_API__MAX_UPLOAD_MB": "20",
       "PLEXICHAT_DESKTOP_PLUGINS__ESSENTIAL": '["performance_monitor"]'}
CLI = {"server": {"port": 0}, "logging": {"level": "WARNING"}}


def whole_model(*layers: dict) -> Settings:
    data: dict = {}
    for layer in layers:
        for key, value in layer.items():
            data.setdefault(key, {}).update(value)
    return validate_lenient(Settings, data, "settings")[0]


@pytest.mark.parametrize("file, environ, cli", [
    (None, {}, None), (None, {}, CLI), (FILE, ENV, CLI), (documented_template(), {}, CLI)])
def test_the_same_settings_as_the_whole_model(home, file, environ, cli):
    if file is not None:
        home.config_dir.mkdir(parents=True)
        home.settings_file.write_text(file)
    settings, warnings = load_settings(home, environ=environ, cli=cli)
    assert warnings == []
    expected = whole_model(
        {"server": {"port": 9001}, "tests": {"daily_at": "03:30", "reruns": 2}} if file == FILE
        else {},
        {"api": {"max_upload_mb": 20}, "plugins": {"essential": ["performance_monitor"]}}
        if environ else {},
        cli or {})
    assert settings == expected
    assert settings.model_dump() == expected.model_dump()


def test_a_default_section_still_refuses_a_bad_assignment(home):
    settings, _ = load_settings(home, environ={}, cli=CLI)
    settings.api.scrypt_cost = 5
    assert settings.api.scrypt_cost == 5
    with pytest.raises(ValidationError):
        settings.api.scrypt_cost = 50  # le=20
    with pytest.raises(ValidationError):
        settings.tests.daily_at = "25:00"


def test_unknown_keys_and_errors_are_worded_by_the_whole_model(home):
    home.config_dir.mkdir(parents=True)
    home.settings_file.write_text("[server]\nport = 9001\nnope = 1\n[nosuch]\nx = 1\n")
    settings, warnings = load_settings(home, environ={})
    assert settings.server.port == 9001
    assert any("'server.nope'" in w for w in warnings)
    assert any("'nosuch'" in w for w in warnings)
    with pytest.raises(ConfigError) as info:
        load_settings(home, environ={"PLEXICHAT_DESKTOP_API__SCRYPT_COST": "99"})
    assert "api.scrypt_cost" in str(info.value)
    assert "PLEXICHAT_DESKTOP_API__SCRYPT_COST" in str(info.value)


TEMPLATE_START = r"""
from plexichat_desktop.core import settings
from plexichat_desktop.core.paths import AppPaths

paths = AppPaths.from_env()
paths.ensure()
settings.write_template_if_missing(paths)
loaded, warnings = settings.load_settings(paths, environ={})
print(sorted(field.annotation.__name__ for field in settings.Settings.model_fields.values()
             if getattr(field.annotation, "__pydantic_complete__", False)))
assert warnings == [] and loaded == settings.Settings()  # builds them all
"""


def test_the_documented_templates_empty_tables_build_no_validator(home):
    # The template names every section with its keys commented out: the defaults, made
    # without building the sections' validators (a fresh interpreter: other tests built
    # them).
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", TEMPLATE_START], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
