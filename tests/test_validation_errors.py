"""The 422 of a refused request never sends a secret back (strict_json.safe_errors)."""

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from plexichat_desktop.server.strict_json import HIDDEN, safe_errors


class Unlock(BaseModel):
    password: str = Field(max_length=8)
    name: str = Field(max_length=3)
    settings: dict[str, int]


class Change(BaseModel):  # the Security Toolkit's master password change and TOTP import
    current: str = Field(max_length=4)
    new: str = Field(max_length=4)
    uri: str = Field(max_length=10)
    keyword: str = Field(max_length=2)


def refusal(data: object) -> list[dict[str, object]]:
    try:
        Unlock.model_validate(data)
    except ValidationError as exc:
        return safe_errors(RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]))
    raise AssertionError("accepted")


def test_secret_fields_are_not_echoed() -> None:
    errors = {tuple(e["loc"]): e for e in refusal({
        "password": "S3cretMasterPW-long", "name": "toolong",
        "settings": {"api_key": "sk-live-1", "retries": "x"}})}
    assert errors[("body", "password")]["input"] == HIDDEN
    assert errors[("body", "password")]["msg"] == "String should have at most 8 characters"
    assert errors[("body", "name")]["input"] == "toolong"  # plain fields still say what came
    assert errors[("body", "settings", "api_key")]["input"] == HIDDEN
    assert errors[("body", "settings", "retries")]["input"] == "x"


def test_a_whole_body_refused_hides_its_secret_members() -> None:
    [missing] = refusal({"passwd_typo": "hunter2", "auth": {"token": "t0k"}, "name": "ab",
                         "settings": {}})
    assert missing["loc"] == ["body", "password"] and missing["type"] == "missing"
    assert missing["input"] == HIDDEN  # the loc names a secret field
    [whole] = safe_errors(RequestValidationError([{
        "type": "dict_type", "loc": ("body",), "msg": "not a dict",
        "input": {"passwd_typo": "hunter2", "items": [{"secret": "s", "n": 1}], "x": 1}}]))
    assert whole["input"] == {"passwd_typo": HIDDEN, "items": [{"secret": HIDDEN, "n": 1}],
                              "x": 1}
    assert "hunter2" not in str(whole)


def test_names_are_matched_by_their_parts() -> None:
    """A password change's fields (current, new) and an otpauth URI were echoed (the
    names hold no 'password'); a 'keyword' is no key."""
    try:
        Change.model_validate({"current": "MyMasterPW!", "new": "NewMasterPW!",
                               "uri": "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP",
                               "keyword": "plain"})
    except ValidationError as exc:
        errors = safe_errors(RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]))
    shown = {e["loc"][-1]: e["input"] for e in errors}
    assert shown == {"current": HIDDEN, "new": HIDDEN, "uri": HIDDEN, "keyword": "plain"}


def test_any_spelling_of_a_secret_name_is_hidden() -> None:
    """Split case-sensitively, "apiKey", "Password", "X-Auth-Token", "API_KEY" and "PIN"
    lost their letters and their secrets came back (a review of the first version)."""
    from plexichat_desktop.server.strict_json import _secret

    for name in ("apiKey", "Password", "X-Auth-Token", "API_KEY", "PIN", "newpassword",
                 "passphrase2", "X-Api-Key", "Authorization", "XMLKey", "refresh_token"):
        assert _secret(name), name
    for name in ("keyword", "author", "mapping", "display_name", "ping", "monkey"):
        assert not _secret(name), name
