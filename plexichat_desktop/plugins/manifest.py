"""The plugin manifest, ``plugin.toml``: read and validated without importing plugin code.

A minimal manifest::

    id = "hello"
    name = "Hello"
    version = "1.0.0"
    entry = "hello:HelloPlugin"       # module:Class, importable from the plugin folder

    [[pages]]
    title = "Hello"
    path = "index.html"               # relative to the plugin's web/ folder

Optional: ``description``, ``author``, ``license``, ``min_host_version``, ``[requires]``
(plugin id = version range, e.g. ``api_integration_layer = ">=1.0,<2"``),
``[permissions]`` (network, filesystem, subprocess, api_scopes), ``[tests]`` (path,
timeout, schedule) and ``[settings]`` (default values of the plugin's own settings).
Unknown keys are warned about and ignored.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, field_validator

from plexichat_desktop.core.validation import ConfigError, read_toml, validate_lenient

MANIFEST_NAME = "plugin.toml"
ID_PATTERN = r"^[a-z][a-z0-9_]{1,63}$"
ENTRY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _relative_web_path(value: str, field: str) -> str:
    if "\\" in value or "\x00" in value or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", value):
        raise ValueError(f"{field} must be a plain path inside web/, got {value!r}")
    parts = PurePosixPath(value.lstrip("/")).parts
    if ".." in parts:
        raise ValueError(f"{field} must stay inside web/ (no '..'), got {value!r}")
    return "/".join(parts)


class Page(_Strict):
    """A page the plugin shows in a tab or window."""

    title: str = Field(min_length=1, max_length=80)
    path: str = Field("", description="Path inside web/, e.g. 'index.html'; '' is web/ itself.")
    icon: str | None = Field(None, description="Icon file inside web/.")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _relative_web_path(value, "path")

    @field_validator("icon")
    @classmethod
    def _icon(cls, value: str | None) -> str | None:
        return None if value is None else _relative_web_path(value, "icon")


SCOPE_PATTERN = r"^(\*|[a-z][a-z0-9_]*:(\*|[a-z][a-z0-9_]*))$"


class Permissions(_Strict):
    """What the plugin declares it needs. Shown to the user; scopes limit the API client.

    ``api_scopes`` are ``"<group>:<access>"`` strings such as ``"messages:read"`` or
    ``"files:write"``, ``"<group>:*"`` for every access to a group, or ``"*"`` for all.
    Only their form is checked here; the plugin providing the API (the API integration
    layer) knows which names exist and refuses unknown ones.
    """

    network: bool = False
    filesystem: bool = False
    subprocess: bool = False
    api_scopes: list[str] = Field(default_factory=list)

    @field_validator("api_scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        for scope in value:
            if not re.match(SCOPE_PATTERN, scope):
                raise ValueError(f"{scope!r} is not an API scope like 'messages:read', "
                                 "'files:*' or '*'")
        return list(dict.fromkeys(value))


class TestsConfig(_Strict):
    """Where the plugin's pytest tests live and how they run by default."""

    __test__ = False  # not a pytest test class

    path: str = "tests"
    timeout: float = Field(300.0, gt=0, le=86_400, description="Per-test timeout, seconds.")
    schedule: str | None = Field(None, description="Default schedule expression, e.g. 'daily'.")
    reruns: int = Field(0, ge=0, le=10, description="Reruns of failed tests (flaky detection).")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if ".." in PurePosixPath(value).parts or value.startswith("/"):
            raise ValueError(f"path must be inside the plugin folder, got {value!r}")
        return value


class Manifest(_Strict):
    """The validated content of a ``plugin.toml``."""

    id: str = Field(pattern=ID_PATTERN, description="Unique id: lowercase letters, digits, _.")
    name: str = Field(min_length=1, max_length=80)
    version: str
    description: str = ""
    author: str = ""
    license: str = ""
    entry: str = Field(pattern=ENTRY_PATTERN, description="'module:Class' of the plugin class.")
    min_host_version: str | None = None
    requires: dict[str, str] = Field(default_factory=dict)
    permissions: Permissions = Field(default_factory=Permissions)
    pages: list[Page] = Field(default_factory=list)
    tests: TestsConfig = Field(default_factory=TestsConfig)
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("version", "min_host_version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                Version(value)
            except InvalidVersion:
                raise ValueError(f"not a version number like '1.2.0': {value!r}") from None
        return value

    @field_validator("requires")
    @classmethod
    def _requires(cls, value: dict[str, str]) -> dict[str, str]:
        for plugin_id, spec in value.items():
            if not re.match(ID_PATTERN, plugin_id):
                raise ValueError(f"{plugin_id!r} is not a plugin id")
            try:
                SpecifierSet(spec)
            except InvalidSpecifier:
                raise ValueError(
                    f"{plugin_id} = {spec!r} is not a version range like '>=1.0,<2'"
                ) from None
        return value

    @property
    def module(self) -> str:
        return self.entry.split(":", 1)[0]

    @property
    def class_name(self) -> str:
        return self.entry.split(":", 1)[1]


def load_manifest(path: Path) -> tuple[Manifest, list[str]]:
    """Read and validate a manifest file; raises ``ConfigError`` naming file and field."""
    data = read_toml(path)
    return validate_lenient(Manifest, data, str(path))


__all__ = ["MANIFEST_NAME", "ConfigError", "Manifest", "Page", "Permissions", "TestsConfig",
           "load_manifest"]
