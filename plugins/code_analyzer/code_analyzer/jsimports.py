"""Imports of JavaScript and TypeScript files, read with tree-sitter grammar wheels.

The grammars come as wheels (tree-sitter-javascript, tree-sitter-typescript), not the
language pack, which downloads grammars at run time and fails offline. Without them the
function returns None and the import graph covers Python only (the plugin is "degraded").
An import is ``[specifier, eager]``: ``import type``, ``export type`` and dynamic
``import()`` do not run when the module loads, so they cannot make an import cycle.
"""

from __future__ import annotations

from functools import cache
from typing import Any

QUERY = """
(import_statement source: (string (string_fragment) @src)) @stmt
(export_statement source: (string (string_fragment) @src)) @stmt
(call_expression function: (identifier) @fn
                 arguments: (arguments . (string (string_fragment) @req)))
(call_expression function: (import) arguments: (arguments . (string (string_fragment) @dyn)))
"""


@cache
def _parser(language: str) -> tuple[Any, Any] | None:
    try:
        import tree_sitter as ts
        if language == "javascript":
            import tree_sitter_javascript as grammar
            lang = ts.Language(grammar.language())
        else:
            import tree_sitter_typescript as tsg
            lang = ts.Language(tsg.language_tsx() if language == "tsx"
                               else tsg.language_typescript())
    except ImportError:
        return None
    return ts.Parser(lang), ts.Query(lang, QUERY)


def available() -> bool:
    return _parser("javascript") is not None and _parser("typescript") is not None


def js_imports(text: str, language: str) -> list[list[Any]] | None:
    """``[specifier, eager]`` per import of a JS/TS/TSX source, or None without the
    grammars."""
    made = _parser(language)
    if made is None:
        return None
    import tree_sitter as ts

    parser, query = made
    tree = parser.parse(text.encode("utf-8", "surrogatepass"))
    found: list[list[Any]] = []
    for _, caps in ts.QueryCursor(query).matches(tree.root_node):
        if "src" in caps:
            stmt = caps["stmt"][0].text or b""
            type_only = stmt.startswith((b"import type", b"export type"))
            found.append([_text(caps["src"][0]), not type_only])
        elif "req" in caps and _text(caps["fn"][0]) == "require":
            found.append([_text(caps["req"][0]), True])
        elif "dyn" in caps:
            found.append([_text(caps["dyn"][0]), False])
    return found


def _text(node: Any) -> str:
    return (node.text or b"").decode("utf-8", "replace")
