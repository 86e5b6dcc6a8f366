"""Captures (a value of the answer into a variable) and assertions (a value compared).

Every failure says what was looked at, what was expected and what was found, so a red
row in a report is readable without opening the response.
"""

from __future__ import annotations

import json
import re
from typing import Any

from api_tester.models import Assertion, Capture
from api_tester.sender import Exchange

_MISSING = object()


class CheckProblem(ValueError):
    """A capture or assertion that cannot be evaluated as written (a bad JSONPath or
    regex, a body that is not JSON)."""


def _json(exchange: Exchange) -> Any:
    try:
        return exchange.json()
    except (ValueError, UnicodeDecodeError):
        raise CheckProblem(f"the body is not JSON (content type "
                           f"{exchange.content_type or 'none'!r})") from None


_PATHS: dict[str, tuple[Any, bool]] = {}  # expression -> (parsed, indefinite)


# Path steps that may select several values (Jayway JsonPath's "indefinite" paths).
_MANY = frozenset({"Descendants", "Slice", "Filter", "Union", "Intersect", "Where",
                   "WhereNot", "Wildcard", "SortedThis", "Keys"})


def _indefinite(node: Any) -> bool:
    name = type(node).__name__.lstrip("_")  # jsonpath-ng's _Union, _Intersect
    if name in ("Child", "Operation"):
        return any(_indefinite(part) for part in (node.left, node.right)
                   if hasattr(part, "find"))
    if name == "Fields":
        return len(node.fields) != 1 or node.fields[0] == "*"
    if name == "Index":
        return len(getattr(node, "indices", (None,))) != 1
    return name in _MANY


def jsonpath(exchange: Exchange, expr: str) -> Any:
    """What ``expr`` selects, or ``_MISSING`` when nothing: the value for a path that names
    one (``$.items[0].id``), always a list for one that may select several (a filter, a
    wildcard, ``..``, a slice): with one match too, so an assertion on a filter keeps its
    meaning whatever the data holds (as Jayway JsonPath does)."""
    matches, indefinite = _find(exchange, expr)
    if not matches:
        return _MISSING
    return matches if indefinite or len(matches) > 1 else matches[0]


def _find(exchange: Exchange, expr: str) -> tuple[list[Any], bool]:
    """The values ``expr`` selects, and whether it is a path that may select several."""
    known = _PATHS.get(expr)
    if known is None:
        from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
        from jsonpath_ng.ext import parse  # imported on first use: keeps start-up cheap
        try:
            compiled = parse(expr)
        except (JsonPathLexerError, JsonPathParserError, Exception) as exc:
            raise CheckProblem(f"JSONPath {expr!r} is not valid: {exc}") from None
        known = (compiled, _indefinite(compiled))
        if len(_PATHS) < 1000:
            _PATHS[expr] = known
    compiled, indefinite = known
    return [m.value for m in compiled.find(_json(exchange))], indefinite


def _regex(exchange: Exchange, expr: str) -> Any:
    try:
        pattern = re.compile(expr)
    except re.error as exc:
        raise CheckProblem(f"regex {expr!r} is not valid: {exc}") from None
    match = pattern.search(exchange.text())
    if match is None:
        return _MISSING
    return match.group(1) if pattern.groups else match.group(0)


def pick(exchange: Exchange, source: str, expr: str) -> Any:
    if source == "status":
        return exchange.status
    if source == "header":
        value = exchange.header(expr)
        return _MISSING if value is None else value
    if source == "jsonpath":
        return jsonpath(exchange, expr)
    if source == "regex":
        return _regex(exchange, expr)
    if source == "duration":
        return round(exchange.total_ms, 3)
    return exchange.text()


def capture(exchange: Exchange, spec: Capture) -> str:
    """The captured value as text (JSON for objects and lists). A filter's one match is
    captured as itself (``$.users[?(@.name=='ann')].id`` gives the id to put in a URL),
    several as a JSON list."""
    if spec.source == "jsonpath":
        matches, indefinite = _find(exchange, spec.expr)
        value: Any = (_MISSING if not matches else matches[0]
                      if len(matches) == 1 or not indefinite else matches)
    else:
        value = pick(exchange, spec.source, spec.expr)
    if value is _MISSING:
        raise CheckProblem(f"capture {spec.name!r}: {spec.source} {spec.expr!r} found "
                           "nothing in the response")
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _same(a: Any, b: Any) -> bool:
    """JSON's equality, all the way down: true is not 1, null is nothing but null (Python's
    made ``true eq 1`` pass, also inside objects and lists)."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def _equal(actual: Any, expected: Any, *, typed: bool = True) -> bool:
    """``actual`` equals ``expected``. An expected value from a variable is always text:
    "true", "null", "3" or '{"a": 1}' stand for the JSON they spell (``true eq
    "{{flag}}"`` never matched). ``typed``: the actual value has JSON types (a JSONPath
    result), so its text is only text; a header, a regex group or a status is text or a
    number by nature, and stands for what it spells too."""
    if _same(actual, expected):
        return True
    if isinstance(expected, str) and not isinstance(actual, str):
        try:
            return _same(actual, json.loads(expected))
        except ValueError:
            return False
    if isinstance(actual, str) and not isinstance(expected, str) and not typed:
        if isinstance(expected, bool) or expected is None:
            return actual.strip() == json.dumps(expected)
        a = _number(actual)
        return a is not None and isinstance(expected, int | float) and a == expected
    return False


def _contains(actual: Any, expected: Any) -> bool:
    """An object holds a key (text) or every key and value of an object; a list an
    equal item; text a substring. (An object expected in an object was a 500: Python's
    ``in`` hashes it.)"""
    if isinstance(actual, dict):
        if isinstance(expected, dict):
            return all(k in actual and _equal(actual[k], v) for k, v in expected.items())
        return isinstance(expected, str) and expected in actual
    if isinstance(actual, list):
        return any(_equal(item, expected) for item in actual)
    return str(expected) in str(actual)


def _shown(value: Any) -> str:
    if value is _MISSING:
        return "nothing"
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def describe(spec: Assertion) -> str:
    what = spec.source if not spec.expr else f"{spec.source} {spec.expr}"
    if spec.op in ("exists", "not_exists", "valid"):
        return f"{what} {spec.op}"
    return f"{what} {spec.op} {_shown(spec.value)}"


def check(exchange: Exchange, spec: Assertion) -> dict[str, Any]:
    """``{"assertion", "passed", "actual", "message"}`` for one assertion."""
    label = describe(spec)
    try:
        passed, actual, message = _evaluate(exchange, spec)
    except CheckProblem as exc:
        return {"assertion": label, "passed": False, "actual": None, "message": str(exc)}
    return {"assertion": label, "passed": passed,
            "actual": None if actual is _MISSING else actual,
            "message": "" if passed else message}


def _evaluate(exchange: Exchange, spec: Assertion) -> tuple[bool, Any, str]:
    if spec.source == "schema":
        return _schema(exchange, spec)
    actual = pick(exchange, spec.source, spec.expr)
    where = spec.source if not spec.expr else f"{spec.source} {spec.expr!r}"
    op, expected = spec.op, spec.value
    if op == "exists":
        return actual is not _MISSING, actual, f"{where}: expected something, found nothing"
    if op == "not_exists":
        return actual is _MISSING, actual, f"{where}: expected nothing, found {_shown(actual)}"
    if actual is _MISSING:
        return False, actual, f"{where}: expected {op} {_shown(expected)}, found nothing"
    found = f"{where}: expected {op} {_shown(expected)}, found {_shown(actual)}"
    typed = spec.source == "jsonpath"
    if op == "eq":
        return _equal(actual, expected, typed=typed), actual, found
    if op == "ne":
        return not _equal(actual, expected, typed=typed), actual, found
    if op in ("lt", "le", "gt", "ge"):
        a, b = _number(actual), _number(expected)
        if a is None or b is None:
            return False, actual, f"{found} (both must be numbers)"
        result = {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]
        return result, actual, found
    if op in ("contains", "not_contains"):
        return _contains(actual, expected) == (op == "contains"), actual, found
    if op == "matches":
        try:
            ok = re.search(str(expected), actual if isinstance(actual, str) else
                           json.dumps(actual)) is not None
        except re.error as exc:
            raise CheckProblem(f"regex {expected!r} is not valid: {exc}") from None
        return ok, actual, found
    raise CheckProblem(f"operator {op!r} does not apply to {spec.source}")


def _schema(exchange: Exchange, spec: Assertion) -> tuple[bool, Any, str]:
    import jsonschema  # first use only: its import costs start-up time

    schema = spec.value
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError:
            raise CheckProblem("schema: the expected value is not a JSON Schema") from None
    if not isinstance(schema, dict | bool):
        raise CheckProblem("schema: the expected value must be a JSON Schema object")
    document = _json(exchange)
    try:
        validator_cls = jsonschema.validators.validator_for(schema)
        validator_cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise CheckProblem(f"schema: not a valid JSON Schema: {exc.message}") from None
    errors = sorted(validator_cls(schema).iter_errors(document), key=lambda e: list(e.path))
    if not errors:
        return True, None, ""
    first = errors[0]
    where = "$" + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in first.path)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return False, None, f"schema: {where}: {first.message}{more}"
