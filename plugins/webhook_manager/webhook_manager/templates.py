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
import re
import sys
import time
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2 import nodes as jinja_nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_TEMPLATE_CHARS = 20_000
MAX_OUTPUT_CHARS = 256_000
MAX_RANGE = 1_000
MAX_REPEAT = 10_000
# Seconds one render may take (a loop in a loop in a loop of range(1000) would otherwise
# hold a worker thread for hours), and the largest number a call or filter may take as a
# width or a count (``'x'.ljust(10**9)``, ``center``, ``indent``, ``'%999999999d'``...).
MAX_SECONDS = 2.0
MAX_WIDTH = MAX_OUTPUT_CHARS
# The parts of a format string that hold widths: %-specs and {field:spec} fields.
_FORMAT_SPEC = re.compile(r"%[-#0 +*.\d]*|\{[^{}]*\}")
_FORMAT_NUMBER = re.compile(r"\d+")


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


# The str methods whose number argument is the width of the text they return.
_WIDENING = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})


def _check_width(value: Any, what: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_WIDTH:
        raise SecurityError(f"{what} of {value}; at most {MAX_WIDTH}")


def _check_format(spec: Any, values: Any = ()) -> None:
    """Refuse a format string whose widths or precisions would make a huge text; when
    they come from the values (``%*d``, ``{:>{}}``), the values' numbers are checked."""
    if isinstance(spec, str):
        parts = _FORMAT_SPEC.findall(spec)
        for part in parts:
            for number in _FORMAT_NUMBER.findall(part):
                if len(number) > 7 or int(number) > MAX_WIDTH:
                    raise SecurityError(f"a format width of {number}; at most {MAX_WIDTH}")
        if any("*" in part for part in parts) or re.search(r"\{[^{}]*\{", spec):
            if isinstance(values, dict):
                values = list(values.values())
            elif not isinstance(values, (list, tuple)):
                values = [values]
            for value in values:
                _check_width(value, "a format width")


def _check_size(size: int, what: str) -> None:
    if size > MAX_OUTPUT_CHARS:
        raise SecurityError(f"{what} would make {size} characters; at most "
                            f"{MAX_OUTPUT_CHARS}")


def _concat(values: Iterable[Any]) -> str:
    """``a ~ b``, refusing a text past the output limit (doubling it in a few ``set``
    statements reached gigabytes)."""
    parts = [str(v) for v in values]
    _check_size(sum(len(p) for p in parts), "joining with ~")
    return "".join(parts)


class _Generator(CodeGenerator):
    """Compiles ``~`` to :func:`_concat` (Jinja's own join has no limit)."""

    def visit_Concat(self, node: jinja_nodes.Concat, frame: Frame) -> None:
        self.write("environment.sandbox_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox with caps on the operators, calls and filters that can make huge
    values."""

    code_generator_class = _Generator
    intercepted_binops = frozenset({"*", "**", "%"})
    sandbox_concat = staticmethod(_concat)

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "**" and isinstance(right, int | float) and abs(right) > 100:
            raise SecurityError("exponent over 100")
        if operator_name == "*":
            for seq, count in ((left, right), (right, left)):
                if (isinstance(seq, str | list | tuple) and isinstance(count, int)
                        and len(seq) * count > MAX_REPEAT):
                    raise SecurityError(f"repeating makes over {MAX_REPEAT} items")
        if operator_name == "%":
            _check_format(left, right)
        ops: dict[str, Callable[[Any, Any], Any]] = {"*": operator.mul, "**": operator.pow,
                                                     "%": operator.mod}
        return ops[operator_name](left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any,
             **kwargs: Any) -> Any:
        name = getattr(__obj, "__name__", "")
        if isinstance(getattr(__obj, "__self__", None), str):
            text = __obj.__self__
            if name in _WIDENING:
                # str.ljust/center/zfill/expandtabs(10**9): no width past the limit.
                for value in (*args, *kwargs.values()):
                    _check_width(value, "an argument")
            if name == "replace" and len(args) >= 2:
                _check_size(len(text) + text.count(str(args[0])) * len(str(args[1])),
                            "replace()")
            elif name == "join" and args:
                items = [str(item) for item in args[0]]
                _check_size(sum(map(len, items)) + len(text) * len(items), "join()")
                return text.join(items)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        # '{:>999999999}'.format(1): the widths are in the text the method is bound to;
        # '{:>{}}'.format(1, 999999999): in the values.
        text = value.__self__
        _check_format(text)
        call = wrapped

        def checked(*args: Any, **kwargs: Any) -> str:
            mapping = args[0] if value.__name__ == "format_map" and args else {}
            _check_format(text, [*args, *kwargs.values(), *(
                mapping.values() if isinstance(mapping, dict) else [])])
            return call(*args, **kwargs)

        return checked


def _capped_filters(env: _Sandbox) -> None:
    """Filters that take a width or repeat their input check their numbers first."""
    filters = env.filters
    center, indent, fmt, join, replace, tojson, wordwrap = (
        filters["center"], filters["indent"], filters["format"], filters["join"],
        filters["replace"], filters["tojson"], filters["wordwrap"])

    def capped_center(value: Any, width: int = 80) -> str:
        _check_width(width, "a width")
        return str(center(value, width))

    def capped_indent(value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> Any:
        _check_width(width, "an indent")
        if isinstance(width, str):
            _check_size(len(width) * (str(value).count("\n") + 1), "indent")
        return indent(value, width, *args, **kwargs)

    def capped_format(value: Any, *args: Any, **kwargs: Any) -> str:
        _check_format(value, kwargs or args)
        return str(fmt(value, *args, **kwargs))

    def capped_join(context: Any, value: Any, d: str = "", attribute: Any = None) -> str:
        items = list(value)
        _check_size(len(str(d)) * len(items) + sum(len(str(i)) for i in items), "join")
        return str(join(context, items, d, attribute))

    def capped_replace(context: Any, s: Any, old: str, new: str, count: int | None = None
                       ) -> str:
        _check_size(len(str(s)) + str(s).count(str(old)) * len(str(new)), "replace")
        return str(replace(context, s, old, new, count))

    def capped_tojson(context: Any, value: Any, indent: Any = None) -> Any:
        _check_width(indent, "an indent")
        if isinstance(indent, int) and indent > 16:
            raise SecurityError(f"an indent of {indent}; at most 16")
        return tojson(context, value, indent)

    def capped_wordwrap(environment: Any, s: str, width: int = 79, *args: Any,
                        **kwargs: Any) -> str:
        _check_width(width, "a width")
        return str(wordwrap(environment, s, width, *args, **kwargs))

    # Keep Jinja's way of passing the context or environment to the wrapped filters.
    for wrapper, original in ((capped_join, join), (capped_replace, replace),
                              (capped_tojson, tojson), (capped_wordwrap, wordwrap)):
        setattr(wrapper, "jinja_pass_arg", getattr(original, "jinja_pass_arg", None))  # noqa: B010
    filters.update(center=capped_center, indent=capped_indent, format=capped_format,
                   join=capped_join, replace=capped_replace, tojson=capped_tojson,
                   wordwrap=capped_wordwrap)


def _env() -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.globals["range"] = _limited_range
    env.globals.pop("lipsum", None)
    env.policies["json.dumps_kwargs"] = {"sort_keys": False, "ensure_ascii": False}
    _capped_filters(env)
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


def _render_in_time(template: Any, context: dict[str, Any]) -> str:
    """``template.render(context)``, stopped with a :class:`SecurityError` after
    :data:`MAX_SECONDS` (a trace function in this thread watches the clock)."""
    deadline = time.monotonic() + MAX_SECONDS
    previous = sys.gettrace()

    def watch(frame: FrameType, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise SecurityError(f"the template ran longer than {MAX_SECONDS:g} s")
        return watch

    sys.settrace(watch)
    try:
        # Piece by piece, so a loop writing 10 KB a turn stops at the output limit
        # instead of building gigabytes within the time limit.
        parts: list[str] = []
        size = 0
        for piece in template.generate(context):
            size += len(piece)
            if size > MAX_OUTPUT_CHARS:
                raise SecurityError(f"the output passed {MAX_OUTPUT_CHARS} characters")
            parts.append(piece)
        return "".join(parts)
    finally:
        sys.settrace(previous)


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
        output = _render_in_time(template, context)
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
