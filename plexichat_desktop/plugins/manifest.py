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
``[requires_python]`` (``packages`` and ``optional``: PEP 508 requirements such as
``"radon>=6"``), ``[requires_system]`` (``binaries`` and ``optional``: programs on PATH
such as ``"git"``; see :mod:`plexichat_desktop.plugins.requirements`),
``[permissions]`` (network, filesystem, subprocess, api_scopes), ``[tests]`` (path,
timeout, schedule) and ``[settings]`` (default values of the plugin's own settings).
Unknown keys are warned about and ignored.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, field_validator

from plexichat_desktop.core.validation import ConfigError, read_toml, validate_lenient
from plexichat_desktop.plugins.discovery import ID_PATTERN, MANIFEST_NAME
from plexichat_desktop.plugins.requirements import (
    MissingRequirement,
    check_requirements,
    validate_python_requirement,
)

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
    """What the plugin declares it needs: declarations shown to the user, not a sandbox.

    Only ``api_scopes`` is enforced: ``ctx.api`` refuses calls outside them. ``network``,
    ``filesystem`` and ``subprocess`` are not: plugins run in the app's process with the
    user's rights, and nothing stops a plugin's code from opening sockets, writing files
    or starting programs whatever it declares. Install only plugins you trust; the host's
    guards (:mod:`plexichat_desktop.plugins.guards`) help a plugin keep *its users'*
    input inside the folders and hosts they allowed.

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


_BINARY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$"


class RequiresPython(_Strict):
    """``[requires_python]``: distributions from PyPI the plugin imports.

    ``packages`` are needed (missing -> the plugin is ``incompatible``), ``optional`` ones
    switch features on (missing -> ``degraded``, the plugin still runs). Each entry is a
    PEP 508 requirement string: ``"radon>=6"``, ``"tree-sitter-python>=0.23"``,
    ``"pywin32; sys_platform == 'win32'"``.
    """

    packages: list[str] = Field(default_factory=list, description="Needed distributions.")
    optional: list[str] = Field(default_factory=list, description="Wanted distributions.")

    @field_validator("packages", "optional")
    @classmethod
    def _requirements(cls, value: list[str]) -> list[str]:
        for text in value:
            validate_python_requirement(text)
        return list(dict.fromkeys(value))


class RequiresSystem(_Strict):
    """``[requires_system]``: programs the plugin runs, looked up on ``PATH``.

    ``binaries`` are needed (missing -> ``incompatible``), ``optional`` ones switch
    features on (missing -> ``degraded``). Plain program names: ``"git"``, ``"nmap"``.
    """

    binaries: list[str] = Field(default_factory=list, description="Needed programs.")
    optional: list[str] = Field(default_factory=list, description="Wanted programs.")

    @field_validator("binaries", "optional")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.match(_BINARY_PATTERN, name):
                raise ValueError(f"{name!r} is not a program name like 'git' (no paths, "
                                 "no arguments)")
        return list(dict.fromkeys(value))


# Folder names a plugin has besides its package: a package of that name would be the
# same folder (its code served as pages, or collected as tests).
RESERVED_PACKAGES = {"web": "the folder of the plugin's pages (served as files: its code "
                            "too)",
                     "tests": "the folder of the plugin's tests"}


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
    requires_python: RequiresPython = Field(default_factory=RequiresPython)
    requires_system: RequiresSystem = Field(default_factory=RequiresSystem)
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

    @field_validator("entry")
    @classmethod
    def _entry(cls, value: str) -> str:
        top = value.split(":", 1)[0].split(".", 1)[0]
        if top.lower() in RESERVED_PACKAGES:  # 'Web' is the same folder on macOS, Windows
            raise ValueError(f"the entry's package cannot be '{top}': that is "
                             f"{RESERVED_PACKAGES[top.lower()]}")
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

    def missing_requirements(self) -> list[MissingRequirement]:
        """``[requires_python]`` and ``[requires_system]`` entries this machine lacks
        (checked without importing plugin code), required ones first."""
        return check_requirements(self.requires_python.packages, self.requires_python.optional,
                                  self.requires_system.binaries, self.requires_system.optional)

    @property
    def module(self) -> str:
        return self.entry.split(":", 1)[0]

    @property
    def class_name(self) -> str:
        return self.entry.split(":", 1)[1]


# Spellings people reach for, beyond what difflib finds close enough.
_ALIASES = {"licence": "license", "page": "pages", "test": "tests", "entrypoint": "entry",
            "entry_point": "entry", "main": "entry", "permission": "permissions",
            "setting": "settings", "dependencies": "requires", "depends": "requires",
            "requirements": "requires_python", "python_requires": "requires_python",
            "min_version": "min_host_version", "host_version": "min_host_version",
            "authors": "author", "title": "name"}


def _suggest(key: str, fields: list[str]) -> str | None:
    if key in _ALIASES and _ALIASES[key] in fields:
        return _ALIASES[key]
    close = difflib.get_close_matches(key.lower(), fields, n=1, cutoff=0.75)
    return close[0] if close else None


def near_misses(data: dict[str, Any]) -> list[str]:
    """Unknown keys that look like misspelt known ones, as messages with the fix:
    ``entyr: unknown key; did you mean 'entry'?``. Keys far from every known one are not
    listed (they are warned about and ignored, so newer manifests still load)."""
    tables: dict[str, type[BaseModel]] = {
        "permissions": Permissions, "tests": TestsConfig,
        "requires_python": RequiresPython, "requires_system": RequiresSystem}
    out = []
    top = list(Manifest.model_fields)
    for key, value in data.items():
        if key not in Manifest.model_fields:
            hint = _suggest(key, top)
            if hint:
                out.append(f"{key}: unknown key; did you mean '{hint}'?"
                           + (" ([[pages]] is a list of tables)" if hint == "pages" else ""))
        elif key in tables and isinstance(value, dict):
            fields = list(tables[key].model_fields)
            for sub in value:
                hint = None if sub in fields else _suggest(sub, fields)
                if hint:
                    out.append(f"{key}.{sub}: unknown key; did you mean '{hint}'?")
        elif key == "pages" and isinstance(value, list):
            fields = list(Page.model_fields)
            for index, page in enumerate(value):
                for sub in page if isinstance(page, dict) else ():
                    hint = None if sub in fields else _suggest(sub, fields)
                    if hint:
                        out.append(f"pages[{index}].{sub}: unknown key; did you mean "
                                   f"'{hint}'?")
    return out


def load_manifest(path: Path) -> tuple[Manifest, list[str]]:
    """Read and validate a manifest file; raises ``ConfigError`` naming file and field.

    Unknown keys are warnings, except near misses of known ones (``entyr``, ``[[page]]``,
    ``[test]``, ``licence``): those are errors with a "did you mean", since the plugin
    would otherwise start without what the author meant to declare.
    """
    data = read_toml(path)
    typos = near_misses(data)
    try:
        manifest, warnings = validate_lenient(Manifest, data, str(path))
    except ConfigError as exc:
        if not typos:
            raise
        missing = {p.split(":", 1)[0] for p in exc.problems if "required field" in p}
        problems = [p for p in exc.problems if p.split(":", 1)[0] not in missing
                    or not any(f"'{p.split(':', 1)[0]}'" in t for t in typos)]
        raise ConfigError(str(path), typos + problems) from None
    if typos:
        raise ConfigError(str(path), typos)
    return manifest, warnings


def manifest_schema() -> dict[str, Any]:
    """The JSON Schema of ``plugin.toml`` (``plexichat-desktop plugins schema``); editors
    with TOML schema support (Taplo, Even Better TOML) validate manifests with it."""
    schema = Manifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "PlexiChat Desktop plugin manifest (plugin.toml)"
    return schema


__all__ = ["MANIFEST_NAME", "ConfigError", "Manifest", "Page", "Permissions", "RequiresPython",
           "RequiresSystem", "TestsConfig", "load_manifest", "manifest_schema", "near_misses"]
