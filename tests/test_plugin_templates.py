"""The bounded Jinja sandbox plugins render users' templates in
(plexichat_desktop.plugins.templates): every memory, time and format-string bomb found in
review of the webhook manager's and the messaging hub's templates is refused, quickly,
naming the cap; ordinary templates are left alone."""

from __future__ import annotations

import sys
import time

import pytest
from jinja2.sandbox import SecurityError

from plexichat_desktop.plugins.api import PluginProblem
from plexichat_desktop.plugins.templates import (
    BoundedSandbox,
    OutputTooLarge,
    SandboxLimits,
    TemplateProblem,
    line_of,
)

BIG = 400_000_000  # far past every cap; building it would take gigabytes


@pytest.fixture(scope="module")
def sandbox() -> BoundedSandbox:
    return BoundedSandbox()


def render(env: BoundedSandbox, source: str, **context: object) -> str:
    return env.render_bounded(env.compile_template(source), dict(context))


def refused(env: BoundedSandbox, source: str, **context: object) -> SecurityError:
    started = time.monotonic()
    with pytest.raises(SecurityError) as info:
        render(env, source, **context)
    assert time.monotonic() - started < env.limits.seconds + 1.5, source
    return info.value


@pytest.mark.parametrize(("source", "needle"), [
    # range bombs
    ("{% for i in range(100000) %}{% endfor %}", "range of 100000 items; at most 1000"),
    ("{% for i in range(10**9) %}{% endfor %}", "range of 1000000000 items"),
    # repeats and powers
    ("{{ 'a' * 10**9 }}", "repeating makes over 10000 items"),
    ("{{ ['a'] * 20000 }}", "repeating makes over"),
    ("{{ 10000 * 'ab' }}", "repeating makes over"),
    ("{{ 2 ** 1000 }}", "exponent over 100"),
    ("{{ 2 ** (10 ** 9) }}", "exponent over 100"),
    # numbers that one operation, holding the interpreter lock, would take minutes to make
    ("{{ 10 ** 99 ** 99 ** 99 ** 99 }}", "a number of over 4096 bits"),
    ("{{ (10 ** 99) ** 99 }}", "a number of over 4096 bits"),
    ("{% set n = 10 ** 99 %}{{ n * n * n * n * n * n * n * n * n * n * n * n * n }}",
     "a number of over 4096 bits"),
    # widths of str methods and filters
    (f"{{{{ 'x'.ljust({BIG}) }}}}", f"an argument of {BIG}"),
    (f"{{{{ 'x'.rjust(width={BIG}) }}}}", f"an argument of {BIG}"),
    (f"{{{{ '1'.zfill({BIG}) }}}}", f"an argument of {BIG}"),
    (f"{{{{ 'a\\tb'.expandtabs({BIG}) }}}}", f"an argument of {BIG}"),
    (f"{{{{ 'x' | center({BIG}) }}}}", f"a width of {BIG}"),
    (f"{{{{ 'a b' | wordwrap({BIG}) }}}}", f"a width of {BIG}"),
    (f"{{{{ 'ab' | indent({BIG}, first=True) }}}}", f"an indent of {BIG}"),
    ("{{ ('a\\n' * 50) | indent('x' * 9000, first=True) | length }}", "indent would make"),
    ("{{ {'a': 1} | tojson(indent=100000) }}", "an indent of 100000"),
    ("{{ {'a': 1} | tojson(indent=17) }}", "an indent of 17; at most 16"),
    # format strings: widths written in them, or fed through * and {}
    (f"{{{{ '%{BIG}d' % 1 }}}}", "a format width"),
    (f"{{{{ '%.{BIG}f' % 1 }}}}", "a format width"),
    ("{{ '%99999999999999999999d' % 1 }}", "a format width"),
    (f"{{{{ ('%*d' % ({BIG}, 1)) }}}}", "a format width"),
    (f"{{{{ '%{BIG}d' | format(1) }}}}", "a format width"),
    (f"{{{{ '%*d' | format({BIG}, 1) }}}}", "a format width"),
    (f"{{{{ '{{:>{BIG}}}'.format(1) }}}}", "a format width"),
    (f"{{{{ '{{:>{{}}}}'.format(1, {BIG}) }}}}", "a format width"),
    (f"{{{{ '{{a:>{{w}}}}'.format(a=1, w={BIG}) }}}}", "a format width"),
    (f"{{{{ '{{a:>{{w}}}}'.format_map({{'a': 1, 'w': {BIG}}}) }}}}", "a format width"),
    # texts built past the value cap
    ("{{ ('x' * 10000) | join('y' * 10000) }}", "join would make"),
    ("{{ ('y' * 10000).join(['ab'] * 9000) }}", "join() would make"),
    ("{{ ('x' * 10000).replace('x', 'x' * 10000) }}", "replace() would make"),
    ("{{ ('x' * 10000) | replace('x', 'x' * 10000) }}", "replace would make"),
    ("{% set a = 'x' * 10000 %}{% set a = a~a~a~a~a~a~a~a~a~a %}"
     "{% set a = a~a~a~a~a~a~a~a~a~a %}{{ a | length }}", "joining with ~"),
])
def test_bombs_are_refused_naming_the_cap(sandbox: BoundedSandbox, source: str,
                                          needle: str) -> None:
    assert needle in str(refused(sandbox, source))


def test_the_output_stops_at_its_cap_while_it_is_written() -> None:
    # The clock (30 s) would stop it with a plain SecurityError: OutputTooLarge, and its
    # limit, say the cap stopped it while it was written.
    env = BoundedSandbox(SandboxLimits(output=50_000, seconds=30))
    with pytest.raises(OutputTooLarge) as info:
        render(env, "{% for a in range(1000) %}{% for b in range(1000) %}{{ 'x' * 10000 }}"
                    "{% endfor %}{% endfor %}")
    assert info.value.limit == 50_000 and "passed 50000 characters" in str(info.value)


def test_a_long_render_is_stopped_by_the_clock_and_the_trace_is_restored() -> None:
    env = BoundedSandbox(SandboxLimits(seconds=0.3))
    before = sys.gettrace()
    error = refused(env, "{% for i in range(1000) %}{% for j in range(1000) %}"
                         "{% for k in range(1000) %}{% endfor %}{% endfor %}{% endfor %}x")
    assert "ran longer than 0.3 s" in str(error)
    assert sys.gettrace() is before


def test_escapes_from_the_sandbox_are_refused(sandbox: BoundedSandbox) -> None:
    for source in ("{{ ''.__class__.__mro__ }}", "{{ cycler.__init__.__globals__ }}",
                   "{{ x.__class__.__base__.__subclasses__() }}"):
        with pytest.raises(SecurityError):
            render(sandbox, source, x="s")
    assert "lipsum" not in sandbox.globals


def test_immutable_refuses_changing_values_and_mutable_allows_it() -> None:
    source = "{% set items = [] %}{{ items.append(1) }}{{ payload.update({'a': 1}) }}{{ items }}"
    with pytest.raises(SecurityError):
        render(BoundedSandbox(), source, payload={})
    assert render(BoundedSandbox(immutable=False), source, payload={}) == "NoneNone[1]"


def test_strict_makes_an_undefined_value_an_error() -> None:
    from jinja2 import UndefinedError

    with pytest.raises(UndefinedError):
        render(BoundedSandbox(), "{{ nobody }}")
    assert render(BoundedSandbox(strict=False), "a{{ nobody }}b") == "ab"
    # Through tojson too, naming what is undefined (a Webhook Manager audit: "Object of
    # type StrictUndefined is not JSON serializable").
    with pytest.raises(UndefinedError, match="has no attribute 'nope'"):
        render(BoundedSandbox(), "{{ data.nope | tojson }}", data={})
    assert render(BoundedSandbox(), "{{ data | tojson(indent=1) }}", data={"a": 1}) == \
        '{\n "a": 1\n}'


def test_the_caps_are_parameters() -> None:
    env = BoundedSandbox(SandboxLimits(range=5, repeat=100_000, width=50, value=1_000,
                                       exponent=3, json_indent=2))
    assert render(env, "{{ range(5) | list | length }}") == "5"
    assert "range of 6 items; at most 5" in str(refused(env, "{{ range(6) | list }}"))
    assert render(env, "{{ ('a' * 50000) | length }}") == "50000"
    assert "of 51; at most 50" in str(refused(env, "{{ 'x'.ljust(51) }}"))
    assert "exponent over 3" in str(refused(env, "{{ 2 ** 4 }}"))
    assert render(BoundedSandbox(), "{{ 2 ** 100 * 3 ** 100 > 0 }}|{{ (-7) ** 99 < 0 }}|"
                                    "{{ 1 ** 99 }}|{{ 2 ** -2 }}") == "True|True|1|0.25"
    assert "over 64 bits" in str(refused(BoundedSandbox(SandboxLimits(number_bits=64)),
                                         "{{ 2 ** 64 }}"))
    assert "at most 2" in str(refused(env, "{{ [1] | tojson(indent=3) }}"))
    assert "at most 1000" in str(refused(env, "{{ 'a' * 600 ~ 'b' * 600 }}"))


def test_ordinary_templates_are_left_alone(sandbox: BoundedSandbox) -> None:
    output = render(sandbox,
                    "{{ 'order 123456789: %s' | format(1) }}|{{ '{:>5}|{}'.format(1, 2) }}|"
                    "{{ '%05.2f' % 3.14159 }}|{{ ['x', 'y'] | join(', ') }}|{{ 'a' ~ 'b' }}|"
                    "{{ '{} bytes'.format(size) }}|{{ 'ab' | center(6) }}|"
                    "{{ {'k': 1} | tojson(indent=2) | length }}|{{ 'a' * 3 }}|{{ 2 ** 10 }}",
                    size=5_000_000)
    assert output == ("order 123456789: 1|    1|2|03.14|x, y|ab|5000000 bytes|  ab  |"
                      "12|aaa|1024")


def test_template_problems_name_the_field_and_the_line() -> None:
    env = BoundedSandbox(SandboxLimits(source=100))
    with pytest.raises(TemplateProblem) as syntax:
        env.compile_template("a\n{% if %}", field="body")
    assert syntax.value.line == 2 and syntax.value.field == "body"
    assert str(syntax.value).startswith("body: line 2: Expected an expression")
    assert syntax.value.status == 422 and isinstance(syntax.value, PluginProblem)
    assert isinstance(syntax.value, ValueError)
    with pytest.raises(TemplateProblem, match="template: 101 characters; at most 100"):
        env.compile_template("x" * 101)
    with pytest.raises(TemplateProblem, match="line 1"):
        env.parse_template("{{", field="body")

    template = env.compile_template("ok\n{{ 'x'.ljust(10**9) }}")
    with pytest.raises(SecurityError) as error:
        env.render_bounded(template, {})
    assert line_of(error.value) == 2
    problem = env.problem_of(error.value, field="payload")
    assert str(problem) == ("payload: line 2: not allowed in the sandbox: an argument of "
                            "1000000000; at most 256000")
    assert problem.body() == {"detail": str(problem), "field": "payload"}

    with pytest.raises(ZeroDivisionError) as zero:
        render(env, "{{ 1 / 0 }}")
    assert str(env.problem_of(zero.value)) == \
        "template: line 1: ZeroDivisionError: division by zero"
    with pytest.raises(KeyboardInterrupt):
        env.problem_of(KeyboardInterrupt())


def test_extra_items_of_a_template_problem_go_into_its_answer() -> None:
    problem = TemplateProblem("undefined a, b", field="variables.a", missing=["a", "b"])
    assert problem.body() == {"detail": "variables.a: undefined a, b",
                              "field": "variables.a", "missing": ["a", "b"]}
