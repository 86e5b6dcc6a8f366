"""Validated settings and request bodies. A bad value is a 422 naming the field."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from plexichat_desktop.plugins.settings import PluginSettings
from plexichat_desktop.scheduling.expressions import InvalidScheduleError, parse
from system_manager.retention import Policy
from system_manager.windows import Window, check_zone

SHA256 = r"^[0-9a-fA-F]{64}$"
Task = Literal["sqlite", "vacuum", "cleanup", "test_results"]
MAINTENANCE_TASKS: tuple[Task, ...] = ("sqlite", "vacuum", "cleanup", "test_results")


class Config(PluginSettings):
    """``[plugin.system_manager]`` in settings.toml."""

    daily_at: str = Field("03:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    scrypt_log_n: int = Field(15, ge=10, le=20)
    work_dir: str = ""
    v1_notifications: bool = True


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _expression(value: str) -> str:
    try:
        parse(value)
    except InvalidScheduleError as exc:
        raise ValueError(str(exc)) from None
    return value.strip()


def _zone(value: str | None) -> str | None:
    return check_zone(value)


class ScheduleIn(_Body):
    """A backup schedule: when, what to check, where to copy, what to keep."""

    name: str = Field(min_length=1, max_length=80)
    expression: str = Field(min_length=1, max_length=120,
                            description="daily, every_6_hours, 0 3 * * * ...")
    timezone: str | None = None
    enabled: bool = True
    verify: bool = Field(True, description="download, check SHA-256 and test the archive")
    drill: bool = Field(True, description="restore drill into a throw-away server")
    targets: list[str] = Field(default_factory=list, max_length=10)
    policy: Policy = Field(default_factory=Policy)

    @field_validator("expression")
    @classmethod
    def check_expression(cls, value: str) -> str:
        return _expression(value)

    @field_validator("timezone")
    @classmethod
    def check_timezone(cls, value: str | None) -> str | None:
        return _zone(value)


class TargetIn(_Body):
    """An off-site folder (second disk, USB stick, network share)."""

    name: str = Field(min_length=1, max_length=80)
    path: str = Field(min_length=1, max_length=4096)
    keep: int = Field(7, ge=1, le=1000)
    encrypt: bool = False
    password: str | None = Field(None, min_length=8, max_length=1024,
                                 description="write-only; kept in the plugin's 0600 "
                                             "secrets file")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("must not contain NUL")
        if not value.startswith(("/", "~")):
            raise ValueError("must be an absolute folder path (or start with ~)")
        return value


class MaintenanceIn(_Body):
    """The maintenance plan: which tasks run, when, and the clean-up limits."""

    enabled: bool = False
    expression: str = Field("weekly", min_length=1, max_length=120)
    timezone: str | None = None
    only_in_window: bool = Field(True, description="scheduled runs wait for a window")
    tasks: list[Task] = Field(
        default_factory=lambda: list(MAINTENANCE_TASKS))
    log_days: float = Field(14.0, gt=0, le=3650)
    temp_days: float = Field(3.0, gt=0, le=3650)
    test_keep_days: float = Field(60.0, gt=0, le=3650)
    test_keep_runs: int = Field(100, ge=1, le=100000)

    @field_validator("expression")
    @classmethod
    def check_expression(cls, value: str) -> str:
        return _expression(value)

    @field_validator("timezone")
    @classmethod
    def check_timezone(cls, value: str | None) -> str | None:
        return _zone(value)


class HealthIn(_Body):
    """The health watch: how often, and the thresholds."""

    enabled: bool = True
    interval_minutes: int = Field(5, ge=1, le=1440)
    disk_min_free_percent: float = Field(10.0, ge=0, le=100)
    disk_min_free_gb: float = Field(2.0, ge=0, le=100000)
    backup_max_age_hours: float = Field(36.0, ge=0, le=24 * 366,
                                        description="0 = do not watch backup age")
    check_v1: bool = True
    check_performance: bool = True


class WindowIn(Window):
    model_config = ConfigDict(extra="forbid")


class ManualBackupIn(_Body):
    name: str | None = Field(None, max_length=200)
    verify: bool = True
    drill: bool = False
    targets: list[str] = Field(default_factory=list, max_length=10)


class VerifyIn(_Body):
    drill: bool = True


class CopyIn(_Body):
    target_id: str = Field(min_length=1, max_length=40)


class RetentionIn(_Body):
    """A dry run (and, with ``delete``, the apply) of a policy over a set of backups."""

    scope: str = Field("all", min_length=1, max_length=40,
                       description="a schedule id (its backups) or 'all'")
    policy: Policy = Field(default_factory=Policy)
    timezone: str | None = None
    delete: list[str] | None = Field(None, max_length=1000,
                                     description="apply: the ids the dry run showed")

    @field_validator("timezone")
    @classmethod
    def check_timezone(cls, value: str | None) -> str | None:
        return _zone(value)


class RestoreIn(_Body):
    backup_id: str = Field(min_length=1, max_length=64)
    checksum: str = Field(pattern=SHA256, description="the SHA-256 you expect")
    confirm: bool = Field(description="must be true: a restore replaces all v1 data")


class ImportIn(_Body):
    file: str = Field(min_length=1, max_length=255)
    # A copy's own password, when it is none the target has had here.
    password: str | None = Field(None, min_length=1, max_length=1024)
