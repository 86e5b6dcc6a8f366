"""The 422 of a refused request never sends a secret back (strict_json.safe_errors)."""

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from plexichat_desktop.server.strict_json import HIDDEN, safe_errors


class Unlock(BaseModel):
    password: str = Field(max_length=8)
    name: str = Field(max_length=3)
    settings: dict[str, int]


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
