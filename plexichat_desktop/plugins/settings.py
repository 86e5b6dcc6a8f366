"""Validating a plugin's settings with a pydantic model: one validator for every plugin.

The host merges a plugin's ``[settings]`` defaults from ``plugin.toml`` with the user's
``[plugin.<id>]`` table in settings.toml and checks each value's type against its default
(``ctx.settings``). Ranges and formats are the plugin's business: declare them once as a
:class:`PluginSettings` model and name it on the plugin class; the host validates before
``setup`` and fails the plugin with every bad key named, as
``settings [plugin.<id>]: cpu_threshold: Input should be less than or equal to 100
(got 150.0)``::

    from pydantic import Field
    from plexichat_desktop.plugins.settings import PluginSettings

    class MonitorSettings(PluginSettings):
        interval_seconds: float = Field(2.0, ge=0.1, le=300)
        cpu_threshold: float = Field(80.0, gt=0, le=100)

    class Monitor(Plugin):
        settings_model = MonitorSettings

        def setup(self, ctx):
            config: MonitorSettings = ctx.config      # validated, frozen

Outside the host (unit tests) call ``MonitorSettings.from_settings({...}, "monitor")``.
Keys the model does not declare are ignored (the host already warned about keys that
are not in the manifest's defaults).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["PluginSettings", "SettingsError", "validate_settings"]

M = TypeVar("M", bound=BaseModel)


class SettingsError(ValueError):
    """A plugin setting is missing, of the wrong type or out of range; the message names
    the plugin's settings table, each bad key, why, and the value found."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate_settings(model: type[M], settings: Mapping[str, Any],
                      plugin_id: str | None = None, *,
                      defaults_from: Path | None = None,
                      user_keys: Collection[str] = ()) -> M:
    """``model`` validated from ``settings``; :class:`SettingsError` names every bad key.

    With ``defaults_from`` (the plugin's ``plugin.toml``), a bad value the user did not set
    (a key not in ``user_keys``) is said to be that file's ``[settings]`` default, so its
    author is not sent to the user's settings file."""
    try:
        return model.model_validate(dict(settings))
    except ValidationError as exc:
        theirs: list[str] = []
        ours: list[str] = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(settings)"
            text = f"{key}: {err['msg']}" + (
                "" if err["type"] == "missing" else f" (got {_shown(err.get('input'))})")
            top = str(err["loc"][0]) if err["loc"] else ""
            (ours if defaults_from is not None and top and top not in user_keys
             else theirs).append(text)
        table = f"[plugin.{plugin_id}]" if plugin_id else "of the plugin"
        said = ([f"settings {table}: {'; '.join(theirs)}"] if theirs else []) + (
            [f"{defaults_from} [settings] defaults: {'; '.join(ours)}"] if ours else [])
        raise SettingsError("; ".join(said)) from None


class PluginSettings(BaseModel):
    """Base of a plugin's settings model: frozen, unknown keys ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], plugin_id: str | None = None) -> Self:
        """Validate ``settings`` (``ctx.settings``); see :func:`validate_settings`."""
        return validate_settings(cls, settings, plugin_id)
