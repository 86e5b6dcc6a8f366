"""Settings and request bodies of the Security Toolkit's routes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from plexichat_desktop.plugins.settings import PluginSettings
from security_toolkit.entries import EntryChange, EntryIn
from security_toolkit.generator import PassphraseRules, PasswordRules
from security_toolkit.vault import KdfParams


class ToolkitSettings(PluginSettings):
    """``[plugin.security_toolkit]``; see plugin.toml for what each key means."""

    vault_path: str = ""
    kdf_time_cost: int = Field(3, ge=1, le=64)
    kdf_memory_kib: int = Field(65536, ge=8, le=4 * 1024 * 1024)
    kdf_parallelism: int = Field(4, ge=1, le=64)
    idle_lock_minutes: float = Field(5.0, gt=0, le=24 * 60)
    weak_below_score: int = Field(3, ge=1, le=4)
    max_password_age_days: int = Field(365, ge=1, le=36500)
    breach_list: str = ""
    max_file_mb: float = Field(256.0, gt=0, le=4096)

    @model_validator(mode="after")
    def _memory_fits_lanes(self) -> ToolkitSettings:
        if self.kdf_memory_kib < 8 * self.kdf_parallelism:
            raise ValueError(f"kdf_memory_kib must be at least 8 x kdf_parallelism "
                             f"({8 * self.kdf_parallelism})")
        return self

    @property
    def kdf(self) -> KdfParams:
        return KdfParams(self.kdf_time_cost, self.kdf_memory_kib, self.kdf_parallelism)


class PasswordBody(BaseModel):
    password: str = Field(min_length=1, max_length=1024)


class ChangePasswordBody(BaseModel):
    current: str = Field(min_length=1, max_length=1024)
    new: str = Field(min_length=1, max_length=1024)


class GenerateBody(BaseModel):
    kind: Literal["password", "passphrase"] = "password"
    password: PasswordRules = Field(default_factory=PasswordRules)
    passphrase: PassphraseRules = Field(default_factory=PassphraseRules)
    count: int = Field(1, ge=1, le=20)


class StrengthBody(BaseModel):
    password: str = Field(max_length=1024)
    user_inputs: list[str] = Field(default_factory=list, max_length=10)


class HealthBody(BaseModel):
    breach_list: str | None = Field(None, max_length=4096, description="a path; "
                                    "remembered; '' forgets it")


class FixBody(BaseModel):
    entry_ids: list[str] = Field(min_length=1, max_length=1000)
    kind: Literal["password", "passphrase"] = "password"
    password: PasswordRules = Field(default_factory=PasswordRules)
    passphrase: PassphraseRules = Field(default_factory=PassphraseRules)
    breach_list: str | None = Field(None, max_length=4096)


class TotpImportBody(BaseModel):
    uri: str = Field(min_length=1, max_length=2000)
    entry_id: str | None = None
    title: str | None = Field(None, max_length=200)


class HmacBody(BaseModel):
    message: str = Field(max_length=10_000_000)
    key: str = Field(max_length=10_000)
    key_encoding: Literal["text", "hex"] = "text"
    algorithm: Literal["sha256", "sha512", "sha3_256"] = "sha256"
    expected: str | None = Field(None, max_length=200)


class HashTextBody(BaseModel):
    text: str = Field(max_length=10_000_000)
    expected: str | None = Field(None, max_length=200)


class CsvImportBody(BaseModel):
    text: str = Field(max_length=50_000_000)


class ExportBody(BaseModel):
    format: Literal["kdbx", "bitwarden", "keepassxc"]
    password: str = Field("", max_length=1024, description="protects a KDBX export")


class ContactBody(BaseModel):
    user_id: str = Field("", max_length=64)
    username: str = Field("", max_length=100)
    public_key: str = Field("", max_length=200, description="stk1:...; empty = fetch the "
                            "key the user published in the v1 key directory")

    @model_validator(mode="after")
    def _someone(self) -> ContactBody:
        if not self.user_id and not self.username:
            raise ValueError("give user_id or username")
        return self


class VerifyBody(BaseModel):
    verified: bool


class MessageBody(BaseModel):
    text: str = Field(min_length=1, max_length=6000)


__all__ = ["ChangePasswordBody", "ContactBody", "CsvImportBody", "EntryChange", "EntryIn",
           "ExportBody", "FixBody", "GenerateBody", "HashTextBody", "HealthBody", "HmacBody",
           "MessageBody", "PasswordBody", "StrengthBody", "ToolkitSettings",
           "TotpImportBody", "VerifyBody"]
