"""The data a request, a collection and an environment are made of.

The same models are the JSON the page sends and the files on disk, so a request saved in
the page is the file a person reads in git. Field order is the order written to files:
keep it stable, or every saved file changes.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from plexichat_desktop.plugins.settings import PluginSettings

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
SECRET_STORAGE = ("auto", "keyring", "file")


# What {{name}} can hold: collection, environment and captured variables' names.
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")

class Strict(BaseModel):
    """Unknown keys are refused: a misspelt field in a hand-edited file must not vanish."""

    model_config = ConfigDict(extra="forbid")


class Pair(Strict):
    name: str = Field(max_length=1000)
    value: str = Field("", max_length=100_000)
    enabled: bool = True


class FormField(Strict):
    name: str = Field(max_length=1000)
    value: str = Field("", max_length=1_000_000)
    # multipart only: send ``value`` as a file part named ``filename``.
    filename: str | None = Field(None, max_length=255)
    content_type: str | None = Field(None, max_length=200)
    enabled: bool = True


class Body(Strict):
    mode: Literal["none", "json", "form", "multipart", "raw"] = "none"
    text: str = Field("", max_length=10_000_000)  # json and raw
    content_type: str | None = Field(None, max_length=200)  # raw (default text/plain)
    fields: list[FormField] = Field(default_factory=list, max_length=1000)


class Auth(Strict):
    """``bearer`` (token), ``basic`` (username, password), ``apikey`` (key, value, where),
    ``plexichat`` (v1 login with username and password at ``base``: the app's own v1
    API when empty) and ``app`` (the app's own token, added on the server and only for
    the app's own address). Secret fields hold ``{{variables}}`` in saved files."""

    type: Literal["none", "bearer", "basic", "apikey", "plexichat", "app"] = "none"
    token: str = Field("", max_length=100_000)
    username: str = Field("", max_length=1000)
    password: str = Field("", max_length=10_000)
    key: str = Field("", max_length=1000)
    value: str = Field("", max_length=100_000)
    where: Literal["header", "query"] = "header"
    base: str = Field("", max_length=2048)


class Capture(Strict):
    """Store a value of the response in a variable for the requests after it."""

    name: str = Field(pattern=VARIABLE_NAME.pattern)
    source: Literal["status", "header", "jsonpath", "regex", "body", "duration"]
    expr: str = Field("", max_length=10_000)


class Assertion(Strict):
    """``source`` picks the value (``expr`` is the header name, the JSONPath or the regex),
    ``op`` compares it with ``value``. ``schema`` validates the JSON body against
    ``value`` (a JSON Schema)."""

    source: Literal["status", "header", "jsonpath", "regex", "duration", "schema", "body"]
    expr: str = Field("", max_length=10_000)
    op: Literal["eq", "ne", "lt", "le", "gt", "ge", "contains", "not_contains", "matches",
                "exists", "not_exists", "valid"] = "eq"
    value: Any = None


class RequestSpec(Strict):
    name: str = Field("Untitled", max_length=200)
    method: str = "GET"
    url: str = Field(max_length=8192)
    params: list[Pair] = Field(default_factory=list, max_length=1000)
    headers: list[Pair] = Field(default_factory=list, max_length=1000)
    body: Body = Field(default_factory=Body)
    auth: Auth = Field(default_factory=Auth)
    captures: list[Capture] = Field(default_factory=list, max_length=200)
    asserts: list[Assertion] = Field(default_factory=list, max_length=500)
    description: str = Field("", max_length=100_000)

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        upper = value.strip().upper()
        if upper not in METHODS:
            raise ValueError(f"must be one of {', '.join(METHODS)}")
        return upper


class Variable(Strict):
    name: str = Field(pattern=VARIABLE_NAME.pattern)
    # Empty in files for a secret: its value lives in the secret store.
    value: str = Field("", max_length=100_000)
    secret: bool = False


class Environment(Strict):
    name: str = Field(max_length=100)
    variables: list[Variable] = Field(default_factory=list, max_length=1000)


class CollectionInfo(Strict):
    name: str = Field(max_length=200)
    description: str = Field("", max_length=100_000)
    variables: list[Variable] = Field(default_factory=list, max_length=1000)


class TesterSettings(PluginSettings):
    collections_dir: str = ""
    allowed_hosts: list[str] = Field(default_factory=list)
    timeout: float = Field(30.0, gt=0, le=600)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=1024**3)
    preview_bytes: int = Field(256 * 1024, ge=256, le=64 * 1024 * 1024)
    follow_redirects: bool = False
    load_max_users: int = Field(50, ge=1, le=1000)
    load_max_seconds: float = Field(60.0, gt=0, le=3600)
    load_max_requests: int = Field(200_000, ge=1, le=10_000_000)
    secrets_storage: Literal["auto", "keyring", "file"] = "auto"
