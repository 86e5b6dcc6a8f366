"""Message templates with variables, checked before anything is sent.

Templates are Jinja2 run in its :class:`~jinja2.sandbox.SandboxedEnvironment` (no
attribute walks to ``__class__``/``__globals__``, no unsafe callables) with caps on what
can make huge values or take long (ranges, repeated strings, powers, widths, joins; the
output is counted as it is made and a render stops after :data:`MAX_SECONDS`: templates
run on the server's event loop, and ``{{ 'a' * 10**10 }}`` or three nested loops would
otherwise hold every plugin up), with
:class:`~jinja2.StrictUndefined`, so a variable without a value is an error instead of an
empty string in a message someone receives. Before rendering, the template's free
variables are listed from its syntax tree and compared with what will be given: every
missing one is reported at once, by name (Front's templates would have sent the blank).

The variables every template gets without asking (``BUILTINS``) come from the
conversation: the recipient's names, the sender's name, today's date and the time.
"""

from __future__ import annotations

import operator
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import FrameType
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta
from jinja2 import nodes as jinja_nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

MAX_OUTPUT = 10_000  # the v1 limit of a message's content
MAX_SOURCE = 50_000  # characters of a template
MAX_RANGE = 1_000  # items of one range()
MAX_VALUE = 100_000  # characters (or items) any one value may be built up to
MAX_SECONDS = 1.0  # one render, on the event loop
_FORMAT_SPEC = re.compile(r"%[-#0 +*.\d]*|\{[^{}]*\}")
_FORMAT_NUMBER = re.compile(r"\d+")
_WIDENING = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})
BUILTINS = {
    "name": "the recipient's display name",
    "first_name": "the first word of the recipient's display name",
    "username": "the recipient's user name",
    "me": "your display name",
    "today": "today's date (YYYY-MM-DD, your time zone)",
    "now": "the time now (HH:MM, your time zone)",
    "weekday": "today's weekday (Monday...)",
}


class TemplateProblem(Exception):
    """A template that cannot be sent: 422 naming the field (``body``, ``variables.x``)."""

    status = 422

    def __init__(self, field: str, message: str, missing: list[str] | None = None):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.missing = missing or []


def _limited_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise SecurityError(f"range of {len(result)} items; at most {MAX_RANGE}")
    return result


def _check_width(value: Any, what: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_VALUE:
        raise SecurityError(f"{what} of {value}; at most {MAX_VALUE}")


def _check_size(size: int, what: str) -> None:
    if size > MAX_VALUE:
        raise SecurityError(f"{what} would make {size} characters; at most {MAX_VALUE}")


def _check_format(spec: Any, values: Any = ()) -> None:
    """Refuse a format string whose widths (written in it, or given as values with
    ``%*d`` / ``{:>{}}``) would make a huge text."""
    if not isinstance(spec, str):
        return
    parts = _FORMAT_SPEC.findall(spec)
    for part in parts:
        for number in _FORMAT_NUMBER.findall(part):
            if len(number) > 7 or int(number) > MAX_VALUE:
                raise SecurityError(f"a format width of {number}; at most {MAX_VALUE}")
    if any("*" in part for part in parts) or re.search(r"\{[^{}]*\{", spec):
        if isinstance(values, dict):
            values = list(values.values())
        elif not isinstance(values, list | tuple):
            values = [values]
        for value in values:
            _check_width(value, "a format width")


def _concat(values: Iterable[Any]) -> str:
    """``a ~ b``, refusing a text past :data:`MAX_VALUE` (doubling a text in a few
    ``set`` statements reaches gigabytes)."""
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


class _Sandbox(SandboxedEnvironment):
    """The sandbox with caps on the operators, calls and filters that make huge values."""

    code_generator_class = _Generator
    intercepted_binops = frozenset({"*", "**", "%"})
    sandbox_concat = staticmethod(_concat)

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "**" and isinstance(right, int | float) and abs(right) > 100:
            raise SecurityError("exponent over 100")
        if operator_name == "*":
            for seq, count in ((left, right), (right, left)):
                if (isinstance(seq, str | list | tuple) and isinstance(count, int)
                        and len(seq) * count > MAX_VALUE):
                    raise SecurityError(f"repeating makes over {MAX_VALUE} items")
        if operator_name == "%":
            _check_format(left, right)
        ops: dict[str, Callable[[Any, Any], Any]] = {"*": operator.mul, "**": operator.pow,
                                                     "%": operator.mod}
        return ops[operator_name](left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        name = getattr(__obj, "__name__", "")
        if isinstance(getattr(__obj, "__self__", None), str):
            text = __obj.__self__
            if name in _WIDENING:
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
    center, indent, fmt, join, replace, wordwrap = (
        filters["center"], filters["indent"], filters["format"], filters["join"],
        filters["replace"], filters["wordwrap"])

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

    def capped_wordwrap(environment: Any, s: str, width: int = 79, *args: Any,
                        **kwargs: Any) -> str:
        _check_width(width, "a width")
        return str(wordwrap(environment, s, width, *args, **kwargs))

    for wrapper, original in ((capped_join, join), (capped_replace, replace),
                              (capped_wordwrap, wordwrap)):
        setattr(wrapper, "jinja_pass_arg", getattr(original, "jinja_pass_arg", None))  # noqa: B010
    filters.update(center=capped_center, indent=capped_indent, format=capped_format,
                   join=capped_join, replace=capped_replace, wordwrap=capped_wordwrap)


def _make_env() -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.globals["range"] = _limited_range
    env.globals.pop("lipsum", None)
    _capped_filters(env)
    return env


_env = _make_env()


def _render_bounded(template: Any, context: dict[str, Any]) -> str:
    """``template.render(context)`` counted piece by piece (stopping past
    :data:`MAX_OUTPUT`) and stopped after :data:`MAX_SECONDS` by a trace function that
    watches the clock in this thread."""
    deadline = time.monotonic() + MAX_SECONDS
    previous = sys.gettrace()

    def watch(frame: FrameType, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise SecurityError(f"the template ran longer than {MAX_SECONDS:g} s")
        return watch

    sys.settrace(watch)
    try:
        parts: list[str] = []
        size = 0
        for piece in template.generate(context):
            size += len(piece)
            if size > MAX_OUTPUT:
                raise TemplateProblem("content", f"the rendered message passes {MAX_OUTPUT} "
                                                 f"characters")
            parts.append(piece)
        return "".join(parts)
    finally:
        sys.settrace(previous)


def variables(source: str) -> list[str]:
    """The template's free variables, sorted; a syntax error is a :class:`TemplateProblem`
    on ``body`` with its line."""
    if len(source) > MAX_SOURCE:
        raise TemplateProblem("body", f"{len(source)} characters; at most {MAX_SOURCE}")
    try:
        tree = _env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem("body", f"line {exc.lineno}: {exc.message}") from None
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
        text = _render_bounded(_env.from_string(source), context)
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
