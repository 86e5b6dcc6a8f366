"""A bounded Jinja sandbox for templates users write (chat messages, webhook payloads).

Jinja's :class:`~jinja2.sandbox.SandboxedEnvironment` stops a template from reaching
Python internals (``__class__``, ``__globals__``, unsafe callables), but not from holding
the app up: ``{{ 'x' * 10**10 }}``, ``'x'.ljust(10**9)``, ``'%999999999d' % 1``, a ``~``
doubled in a few ``set`` statements or three nested loops over ``range(1000)`` each take
gigabytes or hours. :class:`BoundedSandbox` caps every way found to make a huge value or
a long render (each cap is a field of :class:`SandboxLimits`):

* ``range()`` has at most ``limits.range`` items;
* ``*`` repeats to at most ``limits.repeat`` items, ``**`` takes exponents up to
  ``limits.exponent``;
* widths and counts given to ``str.ljust/rjust/center/zfill/expandtabs``, the
  ``center``, ``indent``, ``wordwrap`` filters and written in (or fed to) format strings
  (``%``, ``str.format``, ``format_map``, the ``format`` filter, ``%*d``, ``{:>{}}``)
  are at most ``limits.width``; ``tojson`` indents at most ``limits.json_indent``;
* ``~``, ``str.join``/``str.replace`` and the ``join``/``replace``/``indent`` filters
  refuse to build a text over ``limits.value`` characters;
* :meth:`BoundedSandbox.render_bounded` counts the output while it is made (stopping past
  ``limits.output``) and stops a render after ``limits.seconds``.

Every refusal is a :class:`~jinja2.sandbox.SecurityError` saying which cap, raised where
the template does it (:func:`line_of` finds the template line);
:class:`OutputTooLarge` is the one for the output cap. :class:`TemplateProblem` is the
answer to give for a template that is wrong: a
:class:`~plexichat_desktop.plugins.api.PluginProblem` (422) naming the field and line.
Typical use::

    from plexichat_desktop.plugins.templates import BoundedSandbox, SandboxLimits

    SANDBOX = BoundedSandbox(SandboxLimits(output=10_000, seconds=1.0))

    def preview(source: str, context: dict) -> str:
        template = SANDBOX.compile_template(source, field="body")  # TemplateProblem, line
        try:
            return SANDBOX.render_bounded(template, context)
        except Exception as exc:                  # SecurityError, UndefinedError, 1 / 0...
            raise SANDBOX.problem_of(exc, field="body") from None

Render in a worker thread (``asyncio.to_thread``) when the route can wait: the time cap
watches the thread that renders, so a render on the event loop holds every plugin up for
up to ``limits.seconds``.
"""

from __future__ import annotations

import operator
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from jinja2 import (
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    Undefined,
    UndefinedError,
    pass_eval_context,
)
from jinja2 import nodes as jinja_nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import SandboxedEnvironment, SecurityError, modifies_known_mutable

from plexichat_desktop.plugins.api import PluginProblem

# The parts of a format string that hold widths: %-specs and {field:spec} fields.
_FORMAT_SPEC = re.compile(r"%[-#0 +*.\d]*|\{[^{}]*\}")
_FORMAT_NUMBER = re.compile(r"\d+")
# The str methods whose number argument is the width of the text they return.
_WIDENING = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})


@dataclass(frozen=True)
class SandboxLimits:
    """The caps of one :class:`BoundedSandbox`; every number is "at most"."""

    #: characters one render may write (counted while it is written)
    output: int = 256_000
    #: seconds one render may take
    seconds: float = 2.0
    #: characters of a template's source (:meth:`BoundedSandbox.compile_template`)
    source: int = 20_000
    #: items of one ``range()``
    range: int = 1_000
    #: a width, precision or count given to a str method, a filter or a format string
    width: int = 256_000
    #: characters a text built by ``~``, join, replace or indent may reach
    value: int = 256_000
    #: items ``seq * n`` may make
    repeat: int = 10_000
    #: the largest exponent of ``**``
    exponent: int = 100
    #: the largest integer ``*`` and ``**`` may make, in bits (4096: some 1,200 digits)
    number_bits: int = 4096
    #: the largest indent of the ``tojson`` filter
    json_indent: int = 16


class OutputTooLarge(SecurityError):
    """A render wrote more than ``limits.output`` characters (it was stopped there)."""

    def __init__(self, limit: int):
        super().__init__(f"the output passed {limit} characters")
        self.limit = limit


class TemplateProblem(PluginProblem, ValueError):
    """A template that does not compile, fails while rendering or leaves the sandbox: a
    422 answer naming ``field`` (default ``"template"``), its text
    ``"<field>: line <line>: <message>"`` (without the line when it is not known).
    ``line`` is kept as an attribute; keyword arguments go into the JSON answer, like
    :class:`~plexichat_desktop.plugins.api.PluginProblem`'s."""

    def __init__(self, message: str, line: int | None = None, field: str = "template",
                 **extra: Any):
        where = f"line {line}: " if line else ""
        super().__init__(422, field, f"{where}{message}", **extra)
        self.line = line


def line_of(exc: BaseException) -> int | None:
    """The template line an exception raised while rendering came from (Jinja maps its
    compiled frames to the template's lines), or None."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


class _Generator(CodeGenerator):
    """Compiles ``~`` to :meth:`BoundedSandbox.sandbox_concat` (Jinja's own join has no
    limit)."""

    def visit_Concat(self, node: jinja_nodes.Concat, frame: Frame) -> None:
        self.write("environment.sandbox_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedSandbox(SandboxedEnvironment):
    """A :class:`~jinja2.sandbox.SandboxedEnvironment` with the caps of ``limits``.

    ``immutable=True`` (the default) also refuses changing lists, dicts and sets
    (``payload.update(...)``, ``items.append(...)``), as Jinja's
    :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` does. ``strict=True`` (the
    default) makes an undefined variable an error (:class:`~jinja2.StrictUndefined`)
    instead of an empty text. Other keyword arguments go to Jinja's ``Environment``
    (``keep_trailing_newline=True`` ...); ``autoescape`` is off unless given. ``range``
    is the capped one, ``lipsum`` is gone. Render with :meth:`render_bounded`, not
    ``Template.render``: only it applies the output and time caps.
    """

    code_generator_class = _Generator
    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, limits: SandboxLimits | None = None, *, immutable: bool = True,
                 strict: bool = True, **options: Any):
        options.setdefault("autoescape", False)
        if strict:
            options.setdefault("undefined", StrictUndefined)
        super().__init__(**options)
        self.limits = limits or SandboxLimits()
        self.immutable = immutable
        self.globals["range"] = self._range
        self.globals.pop("lipsum", None)
        self._cap_filters()
        if strict:
            self._strict_tojson()

    def _strict_tojson(self) -> None:
        """``x | tojson`` of an undefined ``x`` says what is undefined, as ``{{ x }}``
        does: it was "Object of type StrictUndefined is not JSON serializable", and
        templates of JSON bodies pass everything through tojson."""
        plain = self.filters["tojson"]

        @pass_eval_context
        def tojson(eval_ctx: Any, value: Any, indent: int | None = None) -> Any:
            if isinstance(value, Undefined):
                value._fail_with_undefined_error()
            return plain(eval_ctx, value, indent)

        self.filters["tojson"] = tojson

    # -- the checks ------------------------------------------------------------------------
    def _range(self, *args: int) -> range:
        result = range(*args)
        if len(result) > self.limits.range:
            raise SecurityError(f"range of {len(result)} items; at most {self.limits.range}")
        return result

    def _check_width(self, value: Any, what: str) -> None:
        limit = self.limits.width
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > limit:
            raise SecurityError(f"{what} of {value}; at most {limit}")

    def _check_size(self, size: int, what: str) -> None:
        if size > self.limits.value:
            raise SecurityError(f"{what} would make {size} characters; at most "
                                f"{self.limits.value}")

    def _check_format(self, spec: Any, values: Any = ()) -> None:
        """Refuse a format string whose widths or precisions would make a huge text; when
        they come from the values (``%*d``, ``{:>{}}``), the values' numbers are checked."""
        if not isinstance(spec, str):
            return
        parts = _FORMAT_SPEC.findall(spec)
        for part in parts:
            for number in _FORMAT_NUMBER.findall(part):
                # The length first: int() of a 10,000-digit number is itself slow.
                if len(number) > 7 or int(number) > self.limits.width:
                    raise SecurityError(f"a format width of {number}; at most "
                                        f"{self.limits.width}")
        if any("*" in part for part in parts) or re.search(r"\{[^{}]*\{", spec):
            if isinstance(values, dict):
                values = list(values.values())
            elif not isinstance(values, list | tuple):
                values = [values]
            for value in values:
                self._check_width(value, "a format width")

    def sandbox_concat(self, values: Iterable[Any]) -> str:
        """``a ~ b``, refusing a text past ``limits.value`` (doubling a text in a few
        ``set`` statements reached gigabytes)."""
        parts = [str(v) for v in values]
        self._check_size(sum(len(p) for p in parts), "joining with ~")
        return "".join(parts)

    # -- Jinja's sandbox hooks -------------------------------------------------------------
    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        return not (self.immutable and modifies_known_mutable(obj, attr))

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if (operator_name == "**" and isinstance(right, int | float)
                and abs(right) > self.limits.exponent):
            raise SecurityError(f"exponent over {self.limits.exponent}")
        if operator_name in ("*", "**") and isinstance(left, int) and isinstance(right, int):
            self._check_number(operator_name, left, right)
        if operator_name == "*":
            for seq, count in ((left, right), (right, left)):
                if (isinstance(seq, str | list | tuple) and isinstance(count, int)
                        and len(seq) * count > self.limits.repeat):
                    raise SecurityError(f"repeating makes over {self.limits.repeat} items")
        if operator_name == "%":
            self._check_format(left, right)
        ops: dict[str, Callable[[Any, Any], Any]] = {"*": operator.mul, "**": operator.pow,
                                                     "%": operator.mod}
        return ops[operator_name](left, right)

    def _check_number(self, operator_name: str, left: int, right: int) -> None:
        """Refuse a product or power over ``limits.number_bits`` before it is made: one
        big-number operation holds the interpreter lock from start to end, so the time
        cap cannot stop it and the whole app stops with it (``10 ** 99 ** 99 ** 99``,
        each exponent allowed, is a number of millions of digits)."""
        if operator_name == "*":
            bits = left.bit_length() + right.bit_length()
        elif right <= 0 or abs(left) <= 1:
            return  # a float, 0, 1 or -1
        else:
            bits = (abs(left).bit_length() - 1) * right + 1
        if bits > self.limits.number_bits:
            raise SecurityError(f"a number of over {self.limits.number_bits} bits")

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        name = getattr(__obj, "__name__", "")
        if isinstance(getattr(__obj, "__self__", None), str):
            text = __obj.__self__
            if name in _WIDENING:
                # str.ljust/center/zfill/expandtabs(10**9): no width past the limit.
                for value in (*args, *kwargs.values()):
                    __self._check_width(value, "an argument")
            if name == "replace" and len(args) >= 2:
                __self._check_size(
                    len(text) + text.count(str(args[0])) * len(str(args[1])), "replace()")
            elif name == "join" and args:
                items = [str(item) for item in args[0]]
                __self._check_size(sum(map(len, items)) + len(text) * len(items), "join()")
                return text.join(items)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        # '{:>999999999}'.format(1): the widths are in the text the method is bound to;
        # '{:>{}}'.format(1, 999999999): in the values.
        text = value.__self__
        self._check_format(text)
        call = wrapped

        def checked(*args: Any, **kwargs: Any) -> str:
            mapping = args[0] if value.__name__ == "format_map" and args else {}
            self._check_format(text, [*args, *kwargs.values(), *(
                mapping.values() if isinstance(mapping, dict) else [])])
            return call(*args, **kwargs)

        return checked

    def _cap_filters(self) -> None:
        """Filters that take a width or repeat their input check their numbers first."""
        filters = self.filters
        center, indent, fmt, join, replace, tojson, wordwrap = (
            filters["center"], filters["indent"], filters["format"], filters["join"],
            filters["replace"], filters["tojson"], filters["wordwrap"])
        check_width, check_size = self._check_width, self._check_size

        def capped_center(value: Any, width: int = 80) -> str:
            check_width(width, "a width")
            return str(center(value, width))

        def capped_indent(value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> Any:
            check_width(width, "an indent")
            if isinstance(width, str):
                check_size(len(width) * (str(value).count("\n") + 1), "indent")
            return indent(value, width, *args, **kwargs)

        def capped_format(value: Any, *args: Any, **kwargs: Any) -> str:
            self._check_format(value, kwargs or args)
            return str(fmt(value, *args, **kwargs))

        def capped_join(context: Any, value: Any, d: str = "", attribute: Any = None
                        ) -> str:
            items = list(value)
            check_size(len(str(d)) * len(items) + sum(len(str(i)) for i in items), "join")
            return str(join(context, items, d, attribute))

        def capped_replace(context: Any, s: Any, old: str, new: str,
                           count: int | None = None) -> str:
            check_size(len(str(s)) + str(s).count(str(old)) * len(str(new)), "replace")
            return str(replace(context, s, old, new, count))

        def capped_tojson(context: Any, value: Any, indent: Any = None) -> Any:
            check_width(indent, "an indent")
            if isinstance(indent, int) and indent > self.limits.json_indent:
                raise SecurityError(f"an indent of {indent}; at most "
                                    f"{self.limits.json_indent}")
            return tojson(context, value, indent)

        def capped_wordwrap(environment: Any, s: str, width: int = 79, *args: Any,
                            **kwargs: Any) -> str:
            check_width(width, "a width")
            return str(wordwrap(environment, s, width, *args, **kwargs))

        # Keep Jinja's way of passing the context or environment to the wrapped filters.
        for wrapper, original in ((capped_join, join), (capped_replace, replace),
                                  (capped_tojson, tojson), (capped_wordwrap, wordwrap)):
            setattr(wrapper, "jinja_pass_arg", getattr(original, "jinja_pass_arg", None))  # noqa: B010
        filters.update(center=capped_center, indent=capped_indent, format=capped_format,
                       join=capped_join, replace=capped_replace, tojson=capped_tojson,
                       wordwrap=capped_wordwrap)

    # -- compiling and rendering -----------------------------------------------------------
    def parse_template(self, source: str, field: str = "template"
                       ) -> jinja_nodes.Template:
        """The parsed template (for :mod:`jinja2.meta`, e.g. its free variables);
        :class:`TemplateProblem` on ``field`` (with the line) for a source over
        ``limits.source`` characters or a syntax error."""
        if len(source) > self.limits.source:
            raise TemplateProblem(f"{len(source)} characters; at most {self.limits.source}",
                                  field=field)
        try:
            return self.parse(source)
        except TemplateSyntaxError as exc:
            raise TemplateProblem(exc.message or "syntax error", exc.lineno,
                                  field=field) from None

    def compile_template(self, source: str, field: str = "template") -> Template:
        """The compiled template, with the refusals of :meth:`parse_template`."""
        return self.from_string(self.parse_template(source, field))

    def render_bounded(self, template: Template, context: dict[str, Any]) -> str:
        """``template.render(context)`` within the output and time caps: the output is
        counted piece by piece (:class:`OutputTooLarge` past ``limits.output``, before
        it is built whole) and a trace function in this thread stops the render with a
        :class:`~jinja2.sandbox.SecurityError` after ``limits.seconds``. Jinja's errors
        and the template's own (``1 / 0``) are raised as they are; see :meth:`problem_of`."""
        seconds, output = self.limits.seconds, self.limits.output
        deadline = time.monotonic() + seconds
        previous = sys.gettrace()

        def watch(frame: FrameType, event: str, arg: Any) -> Any:
            if time.monotonic() > deadline:
                raise SecurityError(f"the template ran longer than {seconds:g} s")
            return watch

        sys.settrace(watch)
        try:
            parts: list[str] = []
            size = 0
            for piece in template.generate(context):
                size += len(piece)
                if size > output:
                    raise OutputTooLarge(output)
                parts.append(piece)
            return "".join(parts)
        finally:
            sys.settrace(previous)

    @staticmethod
    def problem_of(exc: BaseException, field: str = "template") -> TemplateProblem:
        """What a failed :meth:`render_bounded` means to the user, with the template's line: a
        refusal of the sandbox, an undefined value, another Jinja error or the
        template's own mistake (``TypeError``, ``ZeroDivisionError``...). Anything else
        is a bug of the caller: re-raised."""
        line = line_of(exc)
        if isinstance(exc, SecurityError):
            return TemplateProblem(f"not allowed in the sandbox: {exc}", line, field=field)
        if isinstance(exc, UndefinedError):
            return TemplateProblem(f"{exc.message}", line, field=field)
        if isinstance(exc, TemplateError):
            return TemplateProblem(str(exc), line, field=field)
        if isinstance(exc, TypeError | ValueError | ArithmeticError | LookupError):
            return TemplateProblem(f"{type(exc).__name__}: {exc}", line, field=field)
        raise exc


__all__ = ["BoundedSandbox", "OutputTooLarge", "SandboxLimits", "TemplateProblem", "line_of"]
