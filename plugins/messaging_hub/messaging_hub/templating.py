"""Message templates with variables, checked before anything is sent.

Templates are Jinja2 run in the host's
:class:`~plexichat_desktop.plugins.templates.BoundedSandbox` (no attribute walks to
``__class__``/``__globals__``, no unsafe callables) with caps on what can make huge values
or take long (ranges, repeated strings, powers, widths, joins; the output is counted as it
is made and a render stops after :data:`MAX_SECONDS`: templates run on the server's event
loop, and ``{{ 'a' * 10**10 }}`` or three nested loops would otherwise hold every plugin
up), with
:class:`~jinja2.StrictUndefined`, so a variable without a value is an error instead of an
empty string in a message someone receives. Before rendering, the template's free
variables are listed from its syntax tree and compared with what will be given: every
missing one is reported at once, by name (Front's templates would have sent the blank).

The variables every template gets without asking (``BUILTINS``) come from the
conversation: the recipient's names, the sender's name, today's date and the time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jinja2 import meta
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError

from plexichat_desktop.plugins import templates as host_templates
from plexichat_desktop.plugins.templates import BoundedSandbox, OutputTooLarge, SandboxLimits

MAX_OUTPUT = 10_000  # the v1 limit of a message's content
MAX_SOURCE = 50_000  # characters of a template
MAX_RANGE = 1_000  # items of one range()
MAX_VALUE = 100_000  # characters (or items) any one value may be built up to
MAX_SECONDS = 1.0  # one render, on the event loop
BUILTINS = {
    "name": "the recipient's display name",
    "first_name": "the first word of the recipient's display name",
    "username": "the recipient's user name",
    "me": "your display name",
    "today": "today's date (YYYY-MM-DD, your time zone)",
    "now": "the time now (HH:MM, your time zone)",
    "weekday": "today's weekday (Monday...)",
}


class TemplateProblem(host_templates.TemplateProblem):
    """A template that cannot be sent: 422 naming the field (``body``, ``variables.x``);
    ``missing`` (also in the JSON answer) lists the variables without a value."""

    def __init__(self, field: str, message: str, missing: list[str] | None = None):
        super().__init__(message, field=field, missing=missing or [])
        self.missing: list[str] = missing or []


# Not immutable: a message template may build a list and append to it.
_env = BoundedSandbox(SandboxLimits(
    output=MAX_OUTPUT, seconds=MAX_SECONDS, source=MAX_SOURCE, range=MAX_RANGE,
    width=MAX_VALUE, value=MAX_VALUE, repeat=MAX_VALUE), immutable=False,
    keep_trailing_newline=True)


def variables(source: str) -> list[str]:
    """The template's free variables, sorted; a syntax error is a :class:`TemplateProblem`
    on ``body`` with its line."""
    try:
        tree = _env.parse_template(source, field="body")
    except host_templates.TemplateProblem as exc:
        raise TemplateProblem("body", exc.message) from None
    return sorted(meta.find_undeclared_variables(tree))


def builtin_values(recipient: Mapping[str, Any] | None, me: Mapping[str, Any] | None,
                   now: datetime) -> dict[str, str]:
    """The values of :data:`BUILTINS` for a conversation with ``recipient`` at ``now``
    (an aware datetime in the user's zone)."""
    display = str((recipient or {}).get("display_name") or (recipient or {}).get("username")
                  or "")
    return {
        "name": display,
        "first_name": display.split()[0] if display.split() else display,
        "username": str((recipient or {}).get("username") or ""),
        "me": str((me or {}).get("display_name") or (me or {}).get("username") or ""),
        "today": now.strftime("%Y-%m-%d"),
        "now": now.strftime("%H:%M"),
        "weekday": now.strftime("%A"),
    }


def check(source: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """What the page shows while a template is typed: its variables, which are built in,
    which the user gives, and which are missing (without raising)."""
    names = variables(source)
    missing = [n for n in names if n not in given and n not in BUILTINS]
    return {"variables": names, "builtin": [n for n in names if n in BUILTINS],
            "given": [n for n in names if n in given], "missing": missing}


def sandbox_refusal(source: str) -> str | None:
    """Why the sandbox refuses ``source`` (internals such as ``__class__``, a bomb), found
    by rendering it with sample values and each variable given as ``[name]``; None when it
    does not. Other mistakes (an attribute a real value may have) are for sending to say."""
    context = {**{n: f"[{n}]" for n in variables(source)},
               **builtin_values({"display_name": "Ada Lovelace", "username": "ada"}, None,
                                datetime.now().astimezone())}
    try:
        _env.render_bounded(_env.from_string(source), context)
    except SecurityError as exc:
        return f"not allowed in a template: {exc}"
    except Exception:  # only the sandbox's refusals count here
        return None
    return None


def render(source: str, given: Mapping[str, Any],
           builtins: Mapping[str, Any] | None = None) -> str:
    """The message text; :class:`TemplateProblem` for a syntax error, a missing variable
    (all of them named), an attribute that does not exist, anything the sandbox refuses,
    or a result that is blank or longer than a message may be."""
    context = {**(builtins or {}), **{k: v for k, v in given.items()}}
    missing = [n for n in variables(source) if n not in context]
    if missing:
        names = ", ".join(missing)
        raise TemplateProblem(f"variables.{missing[0]}",
                              f"undefined variable{'s' if len(missing) > 1 else ''} {names}: "
                              "give a value before sending", missing)
    try:
        text = _env.render_bounded(_env.from_string(source), context)
    except OutputTooLarge:
        raise TemplateProblem("content", f"the rendered message passes {MAX_OUTPUT} "
                                         "characters") from None
    except SecurityError as exc:
        raise TemplateProblem("body", f"not allowed in a template: {exc}") from None
    except UndefinedError as exc:
        raise TemplateProblem("variables", f"undefined: {exc.message}") from None
    except TemplateError as exc:
        raise TemplateProblem("body", f"{type(exc).__name__}: {exc}") from None
    except (ArithmeticError, TypeError, ValueError, OverflowError) as exc:
        # e.g. {{ 1 / 0 }} or {{ "a" + 1 }}: the template's own mistake, not a crash
        raise TemplateProblem("body", f"{type(exc).__name__}: {exc}") from None
    if not text.strip():
        raise TemplateProblem("body", "the template renders to an empty message")
    if len(text) > MAX_OUTPUT:
        raise TemplateProblem("content", f"the rendered message has {len(text)} characters; "
                                         f"at most {MAX_OUTPUT}")
    return text
