"""Metrics of one file's content: radon for Python, lizard for the other languages.

Pure functions of (name, bytes, language), so results can be cached by content hash and
computed in worker processes. Bad input never raises: a syntax error becomes a finding
(rule ``CA001``, severity high) with the raw line counts still given, undecodable bytes
are read as Latin-1 with a finding (``CA002``), and NUL bytes mark the file as binary.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import tokenize
from typing import Any

# Part of the cache key: bump it when what :func:`analyze` returns changes.
ANALYZER_VERSION = "3"  # 3: Python files read in their declared encoding (PEP 263)
BINARY_SNIFF = 8192


def content_key(data: bytes, language: str) -> str:
    return f"{hashlib.sha256(data).hexdigest()}:{language}:{ANALYZER_VERSION}"


def finding(rule: str, severity: str, message: str, line: int = 1, column: int = 1,
            ) -> dict[str, Any]:
    """A finding of this plugin's own (the tools' issues have the same shape)."""
    return {"tool": "code_analyzer", "rule": rule, "severity": severity, "message": message,
            "line": max(1, line), "column": max(1, column), "link": RULE_LINKS.get(rule),
            "fix_available": False}


RULE_LINKS = {
    "CA001": "https://docs.python.org/3/library/exceptions.html#SyntaxError",
    "CA002": "https://docs.python.org/3/howto/unicode.html",
    "CA003": "https://radon.readthedocs.io/en/latest/intro.html#cyclomatic-complexity",
}


def decode(data: bytes, language: str = "") -> tuple[str, dict[str, Any] | None]:
    """Text of ``data`` and, if it was not UTF-8 (or, for Python, the encoding its
    ``# -*- coding: ... -*-`` line declares, as Python reads it), the finding that says
    so."""
    encoding = "utf-8-sig"
    if language == "python":
        try:
            declared = tokenize.detect_encoding(io.BytesIO(data).readline)[0]
            encoding = "utf-8-sig" if codecs.lookup(declared).name == "utf-8" else declared
        except (SyntaxError, LookupError):
            pass  # an unknown or conflicting declaration: judged as UTF-8 below
    try:
        return data.decode(encoding), None
    except LookupError:  # rot13, zlib, hex: codecs Python knows but that are no text
        return decode(data)
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        return data.decode("latin-1"), finding(
            "CA002", "low", f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset "
                            f"{exc.start}); analysed as Latin-1", line)


def is_binary(data: bytes) -> bool:
    return b"\x00" in data[:BINARY_SNIFF]


def _line_counts(text: str) -> tuple[int, int]:
    lines = text.splitlines()
    return len(lines), sum(1 for line in lines if not line.strip())


def analyze(name: str, data: bytes, language: str) -> dict[str, Any]:
    """Metrics of one file. Keys: language, loc, sloc, comments, blank, functions
    [{name, line, end_line, complexity, params?}], complexity (sum), max_complexity,
    mi (Python only, else None), halstead (Python only), findings, binary."""
    if is_binary(data):
        return {"language": language, "binary": True, "loc": 0, "sloc": 0, "comments": 0,
                "blank": 0, "functions": [], "complexity": 0, "max_complexity": 0,
                "mi": None, "halstead": None, "findings": [], "imports": []}
    text, bad_encoding = decode(data, language)
    result = _python(text) if language == "python" else _lizard(name, text, language)
    result["language"] = language
    result["binary"] = False
    result.setdefault("imports", [])
    if bad_encoding:
        result["findings"].insert(0, bad_encoding)
    funcs = result["functions"]
    result["complexity"] = sum(f["complexity"] for f in funcs)
    result["max_complexity"] = max((f["complexity"] for f in funcs), default=0)
    return result


def _python(text: str) -> dict[str, Any]:
    import ast

    from radon.metrics import h_visit_ast, mi_compute
    from radon.raw import analyze as raw_analyze
    from radon.visitors import ComplexityVisitor

    findings: list[dict[str, Any]] = []
    loc, blank = _line_counts(text)
    empty = {"functions": [], "mi": None, "halstead": None, "imports": []}
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        findings.append(finding("CA001", "high", f"syntax error: {exc.msg}",
                                exc.lineno or 1, exc.offset or 1))
        return {"loc": loc, "sloc": loc - blank, "comments": 0, "blank": blank,
                **empty, "findings": findings}
    except (ValueError, RecursionError, MemoryError) as exc:  # e.g. absurdly deep nesting
        findings.append(finding("CA001", "high", f"cannot parse: {exc}"))
        return {"loc": loc, "sloc": loc - blank, "comments": 0, "blank": blank,
                **empty, "findings": findings}
    # One parse for everything: radon's cc_visit/mi_visit/h_visit would parse three times.
    raw = raw_analyze(text)
    # Lines that hold only a comment or docstring; MI keeps radon's own percentage
    # (lines with a comment, inline ones too) so the figure matches `radon mi`.
    comments = raw.single_comments + raw.multi
    visitor = ComplexityVisitor.from_ast(tree)
    h = h_visit_ast(tree).total
    comment_pct = (raw.comments + raw.multi) / raw.sloc * 100 if raw.sloc else 0
    mi = round(float(mi_compute(h.volume, visitor.total_complexity, raw.lloc,
                                comment_pct)), 2)
    halstead = {"volume": round(h.volume, 2), "difficulty": round(h.difficulty, 2),
                "effort": round(h.effort, 2), "bugs": round(h.bugs, 4),
                "vocabulary": h.vocabulary, "length": h.length}
    # blocks lists classes and, flat, every function and method.
    functions = [b for b in visitor.blocks if type(b).__name__ == "Function"]
    return {"loc": loc, "sloc": raw.sloc, "comments": comments, "blank": raw.blank,
            "functions": [{"name": b.fullname, "line": b.lineno, "end_line": b.endline,
                           "complexity": b.complexity} for b in functions],
            "mi": mi, "halstead": halstead, "findings": findings,
            "imports": python_imports(tree)}


def python_imports(tree: Any) -> list[list[Any]]:
    """``[module, level, names, eager]`` per import statement. ``eager`` is False inside
    a function or an ``if TYPE_CHECKING:`` block: such imports do not run when the module
    is imported, so they cannot take part in an import cycle."""
    import ast

    found: list[list[Any]] = []

    def visit(node: ast.AST, eager: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend([a.name, 0, [], eager] for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                found.append([child.module or "", child.level,
                              [a.name for a in child.names], eager])
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) or (
                    isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)):
                visit(child, False)
            else:
                visit(child, eager)

    visit(tree, True)
    return found


def _lizard(name: str, text: str, language: str) -> dict[str, Any]:
    from lizard import analyze_file

    loc, blank = _line_counts(text)
    info = analyze_file.analyze_source_code(name, text)
    functions = [{"name": f.name, "line": f.start_line, "end_line": f.end_line,
                  "complexity": f.cyclomatic_complexity, "params": f.parameter_count}
                 for f in info.function_list]
    sloc = info.nloc
    # lizard counts code lines (nloc); what is neither code nor blank is comment.
    comments = max(0, loc - blank - sloc)
    imports = None
    if language in ("javascript", "typescript", "tsx"):
        from code_analyzer.jsimports import js_imports
        imports = js_imports(text, language)
    return {"loc": loc, "sloc": sloc, "comments": comments, "blank": blank,
            "functions": functions, "mi": None, "halstead": None, "findings": [],
            "imports": imports or []}


def analyze_batch(batch: list[tuple[str, bytes, str]]) -> list[dict[str, Any]]:
    """:func:`analyze` over several files: one call per worker round trip."""
    return [analyze(name, data, language) for name, data, language in batch]
