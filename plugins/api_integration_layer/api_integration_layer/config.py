"""The plugin's settings (``[plugin.api_integration_layer]`` in settings.toml), validated
by the host's settings validator before ``setup`` (``settings_model`` on the plugin)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from plexichat_desktop.plugins.settings import PluginSettings, SettingsError

# A setting is out of range or missing; the message names it. The host's class, kept
# under the name the layer's callers know.
ConfigError = SettingsError


class ClientConfig(PluginSettings):
    """How the client talks to the server. Defaults suit the embedded server."""

    base_url: str = Field("", description="'' = the app's embedded server (<app>/api/v1).")
    timeout: float = Field(10.0, gt=0, le=600)
    slow_timeout: float = Field(
        120.0, gt=0, le=3600,
        description="Seconds a slow call that is never sent twice may take (turning 2FA "
                    "on, new recovery codes: the server makes ten scrypt digests); at "
                    "least timeout.")
    cache_ttl: float = Field(30.0, ge=0, le=86_400, description="0 switches the cache off.")
    cache_max_entries: int = Field(1000, ge=1, le=1_000_000)
    rate_limit_per_second: float = Field(50.0, ge=0, description="0 = no client-side limit.")
    rate_limit_burst: int = Field(100, ge=1, le=100_000)
    max_retries: int = Field(3, ge=0, le=10)
    retry_base_delay: float = Field(0.2, ge=0, le=60)
    retry_max_delay: float = Field(5.0, ge=0, le=600)
    max_retry_after: float = Field(
        30.0, ge=0, le=3600,
        description="A 429's Retry-After up to this is waited out and the request sent "
                    "again; a longer one raises RateLimited at once.")
    refresh_margin: float = Field(
        60.0, ge=0, le=86_400,
        description="Refresh the access token this long before it expires (at most a "
                    "quarter of its lifetime); 0 = only after a 401.")
    batch_concurrency: int = Field(8, ge=1, le=256)
    token_storage: Literal["auto", "keyring", "file"] = "auto"
    ws_reconnect_max_delay: float = Field(30.0, gt=0, le=3600)
    log_size: int = Field(200, ge=1, le=100_000)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        parts = urlsplit(value)
        try:
            port = parts.port  # raises for a port past 65535 or not a number
        except ValueError:
            port = 0
        if port == 0:
            raise ValueError(f"{value!r} has no valid port (1-65535)")
        if not parts.hostname:
            raise ValueError(f"{value!r} names no host (e.g. http://127.0.0.1:8000/api/v1)")
        if parts.query or parts.fragment or value.endswith(("?", "#")):
            raise ValueError(f"{value!r}: the API root takes no query or fragment")
        return value.rstrip("/")
