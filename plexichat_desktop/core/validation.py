"""Turn pydantic validation errors into messages a person can act on.

Every message names the source (a file or an environment variable), the key, what was
expected and what was found. Unknown keys are reported as warnings, never as errors, so a
manifest or settings file written for a newer version still loads.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A configuration source (file, environment, command line) could not be used."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        joined = "\n  ".join(problems)
        super().__init__(f"{source}:\n  {joined}" if len(problems) > 1 else f"{source}: {joined}")


def dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def describe_error(err: ErrorDetails) -> str:
    key = dotted(err["loc"])
    if err["type"] == "missing":
        return f"{key}: required field is missing"
    found = err.get("input")
    shown = repr(found)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{key}: {err['msg']} (got {shown}, a {type(found).__name__})"


def _drop(data: Any, loc: tuple[int | str, ...]) -> None:
    for part in loc[:-1]:
        data = data[part]
    if isinstance(data, dict):
        data.pop(loc[-1], None)


def validate_lenient(model: type[M], data: dict[str, Any], source: str) -> tuple[M, list[str]]:
    """Validate ``data`` into ``model``; unknown keys become warnings, the rest raise.

    The model must forbid extra keys (``extra="forbid"``) so that unknown ones are found.
    """
    warnings: list[str] = []
    for _ in range(100):  # each pass drops the unknown keys found; nesting is shallow
        try:
            return model.model_validate(data), warnings
        except ValidationError as exc:
            errors = exc.errors()
            unknown = [e for e in errors if e["type"] == "extra_forbidden"]
            real = [e for e in errors if e["type"] != "extra_forbidden"]
            if real:
                raise ConfigError(source, [describe_error(e) for e in real]) from None
            for err in unknown:
                warnings.append(f"{source}: unknown key {dotted(err['loc'])!r} ignored")
                _drop(data, err["loc"])
    raise ConfigError(source, ["too many unknown keys"])  # pragma: no cover


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file; syntax errors name the file, line and column."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [f"not UTF-8 text: {exc}"]) from None
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot be read: {exc.strerror}"]) from None
