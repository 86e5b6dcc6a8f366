"""Integration templates: PlexiChat event payloads turned into Slack, Discord, Teams or
Matrix messages by Jinja templates that run in a sandbox.

A template is text that renders to JSON. It sees ``event``, ``data``, ``payload`` (the whole
delivery body), ``delivery_id``, ``webhook_id``, ``created_at`` and ``summary`` (one line
describing the event). The sandbox (``ImmutableSandboxedEnvironment``) refuses attribute
access to internals (``__class__``, ``mro``...), changing objects, and calls that are not
plain data; ranges, repeated strings and powers are capped so a template cannot hold the
app up. Every problem is a :class:`TemplateProblem` that names the line.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_TEMPLATE_CHARS = 20_000
MAX_OUTPUT_CHARS = 256_000
MAX_RANGE = 1_000
MAX_REPEAT = 10_000


class TemplateProblem(ValueError):
    """A template that does not compile, fails while rendering, leaves the sandbox or
    renders to something that is not JSON. ``line`` is the template's line (or the
    output's, for JSON errors) when known."""

    def __init__(self, message: str, line: int | None = None, field: str = "template"):
        where = f"line {line}: " if line else ""
        super().__init__(f"{field}: {where}{message}")
        self.line = line
        self.field = field
        self.status = 422


def _limited_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise SecurityError(f"range of {len(result)} items; at most {MAX_RANGE}")
    return result


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox with caps on the operators that can make huge values."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "**" and isinstance(right, int | float) and abs(right) > 100:
            raise SecurityError("exponent over 100")
        if operator_name == "*":
            for seq, count in ((left, right), (right, left)):
                if (isinstance(seq, str | list | tuple) and isinstance(count, int)
                        and len(seq) * count > MAX_REPEAT):
                    raise SecurityError(f"repeating makes over {MAX_REPEAT} items")
        ops: dict[str, Callable[[Any, Any], Any]] = {"*": operator.mul, "**": operator.pow}
        return ops[operator_name](left, right)


def _env() -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.globals["range"] = _limited_range
    env.policies["json.dumps_kwargs"] = {"sort_keys": False, "ensure_ascii": False}
    return env


_ENV = _env()


def summary_of(event: str, data: dict[str, Any]) -> str:
    """One line saying what happened, for chat messages."""
    def text(key: str) -> str:
        return str(data.get(key) or "")

    lines = {
        "message.sent": f"Message sent: {text('content')[:200]}",
        "message.received": f"Message received: {text('content')[:200]}",
        "user.login": f"{text('username') or 'A user'} signed in",
        "user.logout": f"{text('username') or 'A user'} signed out",
        "file.uploaded": f"File uploaded: {text('filename')}",
        "file.shared": f"File shared: {text('filename')}",
        "group.invited": f"Invitation to group {text('name') or text('group_id')}",
        "notification.created": f"Notification: {text('title')}",
        "backup.completed": f"Backup completed: {text('name')}",
        "system.alert": f"Alert: {text('message') or text('metric')}",
        "webhook.test": text("message") or "Test delivery",
    }
    return lines.get(event, event)


PRESETS: dict[str, dict[str, str]] = {
    "slack": {
        "title": "Slack (incoming webhook)",
        "hint": "https://hooks.slack.com/services/...",
        "template": """{
  "text": {{ ("[" ~ event ~ "] " ~ summary) | tojson }},
  "blocks": [
    {"type": "section",
     "text": {"type": "mrkdwn", "text": {{ ("*" ~ event ~ "*\\n" ~ summary) | tojson }}}},
    {"type": "context",
     "elements": [{"type": "mrkdwn",
                   "text": {{ ("delivery " ~ delivery_id ~ " at " ~ created_at) | tojson }}}]}
  ]
}""",
    },
    "discord": {
        "title": "Discord (channel webhook)",
        "hint": "https://discord.com/api/webhooks/...",
        "template": """{
  "username": "PlexiChat",
  "content": {{ summary | truncate(1900) | tojson }},
  "embeds": [{
    "title": {{ event | tojson }},
    "description": {{ (data | tojson(indent=2)) | truncate(3500) | tojson }},
    "timestamp": {{ created_at | tojson }}
  }]
}""",
    },
    "teams": {
        "title": "Microsoft Teams (workflow or connector)",
        "hint": "https://<tenant>.webhook.office.com/...",
        "template": """{
  "type": "message",
  "attachments": [{
    "contentType": "application/vnd.microsoft.card.adaptive",
    "content": {
      "type": "AdaptiveCard", "version": "1.4",
      "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
      "body": [
        {"type": "TextBlock", "weight": "Bolder", "text": {{ event | tojson }}},
        {"type": "TextBlock", "wrap": true, "text": {{ summary | tojson }}},
        {"type": "FactSet", "facts": [
          {"title": "Delivery", "value": {{ delivery_id | tojson }}},
          {"title": "At", "value": {{ created_at | tojson }}}
        ]}
      ]
    }
  }]
}""",
    },
    "matrix": {
        "title": "Matrix (m.room.message body)",
        "hint": "https://matrix.example.org/_matrix/client/v3/rooms/.../send/m.room.message",
        "template": """{
  "msgtype": "m.notice",
  "body": {{ ("[" ~ event ~ "] " ~ summary) | tojson }},
  "format": "org.matrix.custom.html",
  "formatted_body": {{ ("<b>" ~ (event | e) ~ "</b> " ~ (summary | e)) | tojson }}
}""",
    },
}


def sample_payload(event: str = "message.sent") -> dict[str, Any]:
    """A delivery body like the server sends, for previews."""
    samples: dict[str, dict[str, Any]] = {
        "message.sent": {"id": "5f0c…", "sender_id": "ann", "recipient_id": "bob",
                         "content": "The release is out", "message_type": "text"},
        "user.login": {"user_id": "ann", "username": "ann"},
        "file.uploaded": {"id": "9a1e…", "filename": "report.pdf", "size": 48213},
        "system.alert": {"metric": "cpu", "value": 96.5, "message": "CPU above 90 %"},
    }
    data = samples.get(event, {"message": "This is a test delivery from PlexiChat Desktop."})
    return {"id": "d7c1c5e0-0000-4000-8000-000000000001", "event": event,
            "webhook_id": "w-1", "created_at": "2026-01-31T12:00:00.000+00:00", "data": data}


def _line_of(exc: BaseException) -> int | None:
    """The template line a render error happened on (Jinja maps its frames to it)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def compile_template(text: str) -> Any:
    """The compiled template; :class:`TemplateProblem` with the line when it is wrong."""
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateProblem(f"{len(text)} characters; at most {MAX_TEMPLATE_CHARS}")
    try:
        return _ENV.from_string(text)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(exc.message or "syntax error", exc.lineno) from None


def render(text: str, payload: dict[str, Any]) -> Any:
    """Render ``text`` for ``payload`` (a delivery body) and parse the result as JSON."""
    template = compile_template(text)
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    event = str(payload.get("event", ""))
    context = {"event": event, "data": data, "payload": payload,
               "delivery_id": payload.get("id", ""), "webhook_id": payload.get("webhook_id", ""),
               "created_at": payload.get("created_at", ""),
               "summary": summary_of(event, data or {})}
    try:
        output = template.render(context)
    except SecurityError as exc:
        raise TemplateProblem(f"not allowed in the sandbox: {exc}", _line_of(exc)) from None
    except UndefinedError as exc:
        raise TemplateProblem(f"{exc.message}", _line_of(exc)) from None
    except TemplateError as exc:
        raise TemplateProblem(str(exc), _line_of(exc)) from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateProblem(f"{type(exc).__name__}: {exc}", _line_of(exc)) from None
    if len(output) > MAX_OUTPUT_CHARS:
        raise TemplateProblem(f"renders {len(output)} characters; at most {MAX_OUTPUT_CHARS}")
    try:
        return json.loads(output)
    except json.JSONDecodeError as exc:
        raise TemplateProblem(f"the output is not JSON: {exc.msg} (column {exc.colno} of "
                              f"the output's line {exc.lineno})", exc.lineno) from None
