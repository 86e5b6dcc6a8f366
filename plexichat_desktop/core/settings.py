"""Application settings: defaults < settings.toml < environment < command line.

The settings file lives in the config dir (``settings.toml``). On first start a copy with
every setting commented out and documented is written there. Environment variables of the
form ``PLEXICHAT_DESKTOP_<SECTION>__<KEY>`` (for example ``PLEXICHAT_DESKTOP_SERVER__PORT``)
override the file; command-line flags override both. A bad value anywhere stops start-up
with an error that names the source, the key and the expected type.
"""

from __future__ import annotations

import copy
import datetime
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from plexichat_desktop.core.entry_points import spare_pydantic_plugin_scan
from plexichat_desktop.core.paths import AppPaths
from plexichat_desktop.core.validation import read_toml, validate_lenient

ENV_PREFIX = "PLEXICHAT_DESKTOP_"


class _Section(BaseModel):
    # defer_build: a model's validator is made when first used, not at import. Building
    # all six took ~20-50 ms of every start, and a start validates only the sections its
    # sources set (see load_settings); the others are their defaults.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, defer_build=True)


class ServerSettings(_Section):
    port: int = Field(
        8000, ge=0, le=65535, description="TCP port on 127.0.0.1; 0 picks a free port."
    )
    shutdown_timeout: float = Field(
        3.0, gt=0, le=60, description="Seconds open connections get to finish at shutdown."
    )
    browser_session_hours: float = Field(
        24.0, gt=0, le=24 * 90, description="Hours a browser stays signed in after /login "
                                            "(sessions also end when the app stops)."
    )
    header_timeout: float = Field(
        10.0, gt=0, le=600, description="Seconds a client has to send a request's headers; "
                                        "slower connections are closed."
    )
    body_timeout: float = Field(
        30.0, gt=0, le=3600, description="Seconds a request body may stall between two "
                                         "reads before the connection is closed."
    )


class PluginsSettings(_Section):
    essential: list[str] = Field(
        default_factory=list,
        description="Ids of bundled plugins that still load in --safe-mode.",
    )
    setup_timeout: float = Field(
        15.0, gt=0, le=600, description="Seconds a plugin's setup() may take before it fails."
    )
    safe_mode: bool = Field(
        False, description="Start with no plugins but the essential bundled ones."
    )


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Lowest level written to the console and the log file."
    )
    file_max_bytes: int = Field(
        2_000_000, ge=10_000, description="Size at which the log file is rotated."
    )
    file_backups: int = Field(5, ge=0, le=100, description="Rotated log files kept.")


class TestsSettings(_Section):
    __test__ = False

    concurrency: int = Field(
        0, ge=0, le=64, description="Test runs at once; 0 = twice the number of CPU cores, "
                                    "at most 8 (never fewer than the cores)."
    )
    nice: int = Field(
        10, ge=0, le=19, description="How far below the app's CPU priority test runs go "
        "while the desktop window is open (0-19, as the nice command counts): they yield "
        "the CPU to the window when both want it. serve and the command line run them at "
        "the app's priority."
    )
    run_timeout: float = Field(
        3600.0, gt=0, description="Seconds a whole run may take before it is stopped."
    )
    reruns: int = Field(
        0, ge=0, le=10, description="Reruns of failed tests within a run (0 = off)."
    )
    retry_attempts: int = Field(
        3, ge=1, le=10, description="Run attempts when the infrastructure fails (crash, "
                                    "timeout, pytest internal error), retries included."
    )
    retry_base: float = Field(30.0, ge=0, description="First retry delay, seconds.")
    retry_factor: float = Field(2.0, ge=1, description="Each retry waits this much longer.")
    retry_cap: float = Field(900.0, ge=0, description="Longest retry delay, seconds.")
    retention_days: float = Field(
        90.0, gt=0, description="Results older than this many days are deleted."
    )
    retention_runs: int = Field(
        200, ge=1, description="Runs kept per plugin; older ones are deleted."
    )
    daily_at: str = Field(
        "00:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="Local time of day (HH:MM) for daily, weekly and monthly schedules."
    )
    catch_up_spread: float = Field(
        30.0, ge=0, le=3600, description="Catch-up runs after a pause start within this many "
                                         "seconds, at random, not all at once."
    )

    @property
    def daily_time(self) -> datetime.time:
        """``daily_at`` as a time of day."""
        hour, minute = (int(part) for part in self.daily_at.split(":"))
        return datetime.time(hour, minute)


DEFAULT_UPLOAD_TYPES = [".txt", ".pdf", ".doc", ".docx", ".jpg", ".jpeg", ".png", ".gif",
                        ".mp3", ".mp4", ".zip", ".csv", ".json", ".xml"]


class ApiSettings(_Section):
    """The embedded PlexiChat v1 API served at /api/v1 (see docs/api-v1.md)."""

    enabled: bool = Field(True, description="Serve the PlexiChat v1 API at /api/v1.")
    max_upload_mb: float = Field(
        10.0, gt=0, le=4096, description="Largest file accepted by /files/upload, in MiB."
    )
    allowed_upload_types: list[str] = Field(
        default_factory=lambda: list(DEFAULT_UPLOAD_TYPES),
        description="File name extensions /files/upload accepts (with the dot, any case).",
    )
    max_backup_mb: float = Field(
        2048.0, gt=0, description="Largest backup archive accepted by /backup/upload, in MiB."
    )
    access_token_minutes: float = Field(
        60.0, gt=0, le=10_080, description="Lifetime of an access token, in minutes."
    )
    refresh_token_days: float = Field(
        30.0, gt=0, le=365, description="Lifetime of a refresh token (login with "
                                        "remember_me), in days; without it at most one day."
    )
    password_min_length: int = Field(
        12, ge=8, le=128, description="Shortest password /auth/register accepts."
    )
    scrypt_cost: int = Field(
        14, ge=4, le=20, description="log2 of the scrypt work factor N for new password "
                                     "hashes (stored hashes keep their own)."
    )
    login_rate_limit: int = Field(
        10, ge=0, description="Login attempts per client address and username in each "
                              "rate_limit_window; 0 = no limit."
    )
    register_rate_limit: int = Field(
        5, ge=0, description="Registrations per client address in each rate_limit_window; "
                             "0 = no limit."
    )
    rate_limit_window: float = Field(
        60.0, gt=0, le=86_400, description="Window of the login and register limits, seconds."
    )
    requests_per_minute: int = Field(
        0, ge=0, description="Authenticated requests per user and minute; 0 = no limit."
    )
    reactions_per_minute: int = Field(
        60, ge=0, description="Reactions added or taken back per user and minute; "
                              "0 = no limit."
    )
    webhook_max_attempts: int = Field(
        5, ge=1, le=20, description="Delivery attempts per webhook event, the first included."
    )
    webhook_retry_base: float = Field(
        5.0, gt=0, le=3600, description="Seconds before the first webhook retry; each next "
                                        "retry waits twice as long (plus up to 25% jitter)."
    )
    webhook_retry_cap: float = Field(
        900.0, gt=0, description="Longest wait between two webhook attempts, seconds."
    )
    webhook_timeout: float = Field(
        10.0, gt=0, le=120, description="Seconds a webhook receiver has to answer."
    )
    performance_interval: float = Field(
        5.0, gt=0, le=3600, description="Seconds between two samples of /performance/history."
    )
    performance_history: int = Field(
        720, ge=1, le=100_000, description="Samples kept by /performance/history."
    )
    cpu_alert_percent: float = Field(
        90.0, ge=0, le=100, description="System CPU use above which an alert is raised."
    )
    memory_alert_percent: float = Field(
        90.0, ge=0, le=100, description="Memory use above which an alert is raised."
    )
    disk_alert_percent: float = Field(
        95.0, ge=0, le=100, description="Use of the data dir's disk above which an alert "
                                        "is raised."
    )
    latency_alert_ms: float = Field(
        2000.0, gt=0, description="95th-percentile API latency above which an alert is raised."
    )
    ws_auth_timeout: float = Field(
        5.0, gt=0, le=120, description="Seconds a WebSocket without a token in its URL or "
                                       "header has to send its auth message."
    )
    max_backups: int = Field(
        20, ge=1, le=1000, description="Backups kept; the oldest are deleted first."
    )
    max_restore_mb: float = Field(
        8192.0, gt=0, description="Largest unpacked size of a backup archive that is "
                                  "accepted or restored, in MiB (checked before unpacking)."
    )
    webhook_allow_private: bool = Field(
        False, description="Let webhooks target loopback, private, link-local or "
                           "unspecified addresses (off: a webhook could probe this machine "
                           "and its network)."
    )
    # -- AI (/api/v1/ai, docs/api-v1.md "ai") --
    ai_max_tokens: int = Field(
        1024, ge=1, le=131_072, description="Most tokens one AI answer may have (a request "
                                            "asking for more is refused with 422)."
    )
    ai_requests_per_minute: int = Field(
        30, ge=0, description="AI chat requests per user and minute; 0 = no limit."
    )
    ai_timeout: float = Field(
        120.0, gt=0, le=3600, description="Default seconds an AI provider may take to "
                                          "answer (and between two streamed pieces)."
    )
    ai_health_timeout: float = Field(
        5.0, gt=0, le=120, description="Seconds /ai/health and /ai/models wait for each "
                                       "provider's model list."
    )
    ai_models_cache_seconds: float = Field(
        30.0, ge=0, le=3600, description="Seconds each provider's model list (the answer "
                                         "of /ai/models and /ai/health) is reused for "
                                         "everyone before the provider is asked again."
    )
    ai_models_requests_per_minute: int = Field(
        60, ge=0, description="/ai/models and /ai/health requests per user and minute; "
                              "0 = no limit."
    )
    ai_default_model: str = Field(
        "builtin/plexi-rules", min_length=3, description="Model of AI requests that name "
                                                         "none, as '<provider>/<model>'."
    )
    ai_allow_private: bool = Field(
        False, description="Let AI providers be on private addresses (a model server "
                           "elsewhere on the LAN); loopback is always allowed, link-local "
                           "and cloud metadata addresses never are."
    )
    ai_builtin_token_delay: float = Field(
        0.0, ge=0, le=5, description="Seconds between the tokens the built-in AI provider "
                                     "streams (0: as fast as possible; demos may slow it)."
    )
    ai_moderation_blocklist: list[str] = Field(
        default_factory=list, description="Words or phrases /ai/moderate flags (whole "
                                          "words, any case)."
    )


class Settings(_Section):
    """All settings of the application. Section names are the TOML table names."""

    server: ServerSettings = Field(default_factory=ServerSettings)
    plugins: PluginsSettings = Field(default_factory=PluginsSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    tests: TestsSettings = Field(default_factory=TestsSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    plugin: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-plugin settings, one table per plugin id: [plugin.<id>].",
    )


def _sections_only(data: dict[str, Any]) -> Settings | None:
    """``data`` validated section by section, the sections it does not name being their
    defaults (made without validating them: they are the models' own defaults); None
    when that cannot decide alone (an unknown or non-table key, per-plugin settings, any
    error or unknown key), so that the whole model validates it and words its messages."""
    fields = Settings.model_fields
    sections: dict[str, Any] = {}
    for name, field_info in fields.items():
        annotation = field_info.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, _Section)):
            if name in data:
                return None
            continue
        value = data.get(name)
        if (value is None and name not in data) or value == {}:
            # An empty table is the defaults too: the documented template written at first
            # start names every section with all its keys commented out, and building a
            # section's validator for nothing cost every start ~4 ms (~15 ms for [api]).
            sections[name] = annotation.model_construct()
            continue
        if not isinstance(value, dict):
            return None
        try:
            sections[name] = annotation.model_validate(value)
        except ValidationError:
            return None
    if set(data) - set(fields):
        return None
    return Settings.model_construct(**sections)


def _validate(data: dict[str, Any], source: str) -> tuple[Settings, list[str]]:
    fast = _sections_only(data)
    if fast is not None:
        return fast, []
    return validate_lenient(Settings, data, source)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _parse_env_value(raw: str) -> Any:
    """Environment values may be TOML literals (``["a", "b"]``, ``true``); else plain text."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def env_overrides(environ: os._Environ[str] | dict[str, str]) -> dict[str, dict[str, Any]]:
    """``PLEXICHAT_DESKTOP_SERVER__PORT=9000`` -> ``{"server": {"port": 9000}}``; deeper
    keys nest further (``PLEXICHAT_DESKTOP_PLUGIN__MY_PLUGIN__LEVEL=3``)."""
    out: dict[str, dict[str, Any]] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name[len(ENV_PREFIX) :]:
            continue
        *parents, key = name[len(ENV_PREFIX) :].lower().split("__")
        table: dict[str, Any] = out
        for part in parents:
            table = table.setdefault(part, {})
        table[key] = _parse_env_value(raw)
    return out


def load_settings(
    paths: AppPaths,
    environ: os._Environ[str] | dict[str, str] | None = None,
    cli: dict[str, dict[str, Any]] | None = None,
) -> tuple[Settings, list[str]]:
    """Load and validate the settings; returns them with the warnings to log.

    Raises ``ConfigError`` naming the file or variable, the key and the expected type.
    """
    # Before pydantic builds its first model here (or in FastAPI's import, after serve
    # answers): saves it a look-up of every distribution's entry points.
    spare_pydantic_plugin_scan()
    env = os.environ if environ is None else environ
    warnings: list[str] = []
    layers: list[tuple[str, dict[str, Any]]] = []
    if paths.settings_file.exists():
        layers.append((str(paths.settings_file), read_toml(paths.settings_file)))
    overrides = env_overrides(env)
    if overrides:
        names = sorted(name for name in env if name.startswith(ENV_PREFIX) and "__" in name)
        layers.append((f"environment ({', '.join(names)})", overrides))
    if cli:
        layers.append(("command line", cli))
    data: dict[str, Any] = {}
    # Each layer is validated on its own, so an error names the layer it came from.
    for source, layer in layers:
        _, layer_warnings = _validate(copy.deepcopy(layer), source)
        warnings += layer_warnings
        data = _merge(data, layer)
    settings, _ = _validate(data, "settings")
    return settings, warnings


def _toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_literal(v) for v in value) + "]"
    return repr(value)


def documented_template() -> str:
    """The settings file with every default, commented out, each with its description."""
    lines = [
        "# PlexiChat Desktop settings.",
        "# Every setting is shown with its default value, commented out. Uncomment to change it.",
        f"# Environment variables {ENV_PREFIX}<SECTION>__<KEY> override this file,",
        "# and command-line flags override both.",
        "",
    ]
    for section_name, field in Settings.model_fields.items():
        annotation = field.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            lines += [f"# {field.description}", f"# [{section_name}.example_plugin]",
                      "# some_key = 1", ""]
            continue
        lines.append(f"[{section_name}]")
        for key, sub in annotation.model_fields.items():
            default = sub.get_default(call_default_factory=True)
            lines.append(f"# {sub.description}")
            lines.append(f"# {key} = {_toml_literal(default)}")
        lines.append("")
    return "\n".join(lines)


def write_template_if_missing(paths: AppPaths) -> Path | None:
    """Write the documented settings file on first start; never overwrite the user's."""
    target: Path = paths.settings_file
    if target.exists():
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(documented_template(), encoding="utf-8")
    return target
