"""``{{name}}`` substitution with a clear error for a name nobody defined.

Scopes are looked up in order (captures of this run, a CSV row, the environment, the
collection); built-ins start with ``$``: ``{{$uuid}}``, ``{{$timestamp}}``,
``{{$isoTimestamp}}``, ``{{$randomInt}}``.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

PATTERN = re.compile(r"\{\{\s*(\$?[A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")


class UndefinedVariable(ValueError):
    """A ``{{name}}`` that no scope defines; names the field and what is defined."""

    def __init__(self, field: str, name: str, known: list[str], *,
                 unset_secret: str | None = None):
        self.field = field
        self.name = name
        if unset_secret:
            whose = (f"the secret variable '{name}'" if unset_secret == name else
                     f"variable '{name}' uses the secret variable '{unset_secret}', which")
            super().__init__(f"{field}: {whose} has no value on this machine (secret "
                             "values stay out of the collection files: set it here first)")
            return
        shown = ", ".join(sorted(known)[:30]) or "none"
        super().__init__(f"{field}: variable '{name}' is not defined (defined: {shown})")


class Scope(dict[str, str]):
    """Variables by name, and those without a value on this machine: a secret one
    declared with no value stored here, or a plain one built on such a secret (``auth =
    Bearer {{tok}}``), each with the secret it lacks. (Sent, the first went as an empty
    text and the second as "Bearer {{tok}}": a clone of the repository sent the request
    without saying.)"""

    unset_secrets: Mapping[str, str] = {}
    # The values of the plain ones among them as written, for when the secret is given.
    unset_templates: Mapping[str, str] = {}

    def with_values(self, extra: Mapping[str, str]) -> Scope:
        """A copy with ``extra`` on top (a CSV row, a request's own values, captures): a
        name given a value there is set, and so is a plain variable built on a secret
        that ``extra`` gives."""
        values = {**self, **extra}
        unset = {name: secret for name, secret in self.unset_secrets.items()
                 if name not in extra}
        templates = {name: text for name, text in self.unset_templates.items()
                     if name in unset}
        if templates and any(secret in extra for secret in unset.values()):
            resolved = resolve_nested({**values, **templates}, set(templates))
            for name in templates:
                if not any(ref in unset for ref in references(resolved[name])):
                    values[name] = resolved[name]
                    del unset[name]
        merged = Scope(values)
        merged.unset_secrets = unset
        merged.unset_templates = {name: text for name, text in templates.items()
                                  if name in unset}
        return merged


def with_values(variables: Mapping[str, str], extra: Mapping[str, str]) -> Scope:
    """``variables`` with ``extra`` on top, keeping what a :class:`Scope` knows of the
    secrets without a value."""
    if isinstance(variables, Scope):
        return variables.with_values(extra)
    return Scope({**variables, **extra})


def _builtin(name: str) -> str | None:
    if name == "$uuid":
        return str(uuid.uuid4())
    if name == "$timestamp":
        return str(int(time.time()))
    if name == "$isoTimestamp":
        return datetime.now(UTC).isoformat()
    if name == "$randomInt":
        return str(random.randint(0, 1000))
    return None


def substitute(text: str, variables: Mapping[str, str], field: str) -> str:
    """``text`` with every ``{{name}}`` replaced; :class:`UndefinedVariable` otherwise."""
    if "{{" not in text:
        return text

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in variables:
            return str(variables[name])
        value = _builtin(name)
        if value is None:
            raise UndefinedVariable(field, name, list(variables), unset_secret=getattr(
                variables, "unset_secrets", {}).get(name))
        return value

    return PATTERN.sub(repl, text)


# How deep a variable's value may refer to others ({{a}} -> {{b}} -> ...): a loop stops here.
NESTING = 5


def resolve_nested(variables: dict[str, str], names: set[str]) -> dict[str, str]:
    """``variables`` with the values of ``names`` expanded where they refer to other
    variables (``baseUrl = {{app_url}}/api/v1``), as Postman does; a reference to nothing
    defined stays as it is (the request that uses it gets the usual error), and a loop
    ends after :data:`NESTING` rounds."""
    resolved = dict(variables)
    for _ in range(NESTING):
        changed = False
        for name in names:
            value = resolved[name]
            if "{{" not in value:
                continue
            new = PATTERN.sub(lambda m: resolved.get(m.group(1), m.group(0))
                              if not m.group(1).startswith("$") else m.group(0), value)
            if new != value:
                resolved[name] = new
                changed = True
        if not changed:
            break
    return resolved


def references(text: str) -> list[str]:
    """The variable names ``text`` uses (built-ins left out)."""
    return [n for n in PATTERN.findall(text) if not n.startswith("$")]
