"""Integration templates: PlexiChat event payloads turned into Slack, Discord, Teams or
Matrix messages by Jinja templates that run in a sandbox.

A template is text that renders to JSON. It sees ``event``, ``data``, ``payload`` (the whole
delivery body), ``delivery_id``, ``webhook_id``, ``created_at`` and ``summary`` (one line
describing the event). The sandbox (the host's immutable
:class:`~plexichat_desktop.plugins.templates.BoundedSandbox`) refuses attribute access to
internals (``__class__``, ``mro``...), changing objects, and calls that are not plain
data; ranges, repeated strings, powers, widths, output and time are capped so a template
cannot hold the app up. Every problem is a :class:`TemplateProblem` that names the line.
"""

from __future__ import annotations

import json
from typing import Any

from plexichat_desktop.plugins.templates import BoundedSandbox, SandboxLimits, TemplateProblem

MAX_OUTPUT_CHARS = 256_000
# The host's bounded sandbox, immutable: a template cannot change the payload. A render
# gets 2 s (a loop in a loop in a loop of range(1000) would otherwise hold a worker
# thread for hours); a width or count (``'x'.ljust(10**9)``, ``'%999999999d'``...) and a
# text built with ~, join or replace are capped at the output's size, repeats lower.
_ENV = BoundedSandbox(SandboxLimits(
    output=MAX_OUTPUT_CHARS, seconds=2.0, source=20_000, range=1_000,
    width=MAX_OUTPUT_CHARS, value=MAX_OUTPUT_CHARS, repeat=10_000))
_ENV.policies["json.dumps_kwargs"] = {"sort_keys": False, "ensure_ascii": False}


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


SAMPLE_EVENTS = ("message.sent", "user.login", "file.uploaded", "system.alert")


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


def compile_template(text: str) -> Any:
    """The compiled template; :class:`TemplateProblem` with the line when it is wrong."""
    return _ENV.compile_template(text)


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
        output = _ENV.render_bounded(template, context)
    except Exception as exc:
        raise _ENV.problem_of(exc) from None
    if len(output) > MAX_OUTPUT_CHARS:
        raise TemplateProblem(f"renders {len(output)} characters; at most {MAX_OUTPUT_CHARS}")
    try:
        return json.loads(output)
    except json.JSONDecodeError as exc:
        raise TemplateProblem(f"the output is not JSON: {exc.msg} (column {exc.colno} of "
                              f"the output's line {exc.lineno})", exc.lineno) from None
