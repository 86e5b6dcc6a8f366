"""The read-only rule of the SQL editor: what a user's query may be, checked before it runs.

The engine is hardened on its own (the query database is opened read-only, external
access is off and the configuration locked, extensions never load), so this check is the
second wall and the one that explains: a refused query gets a message naming the
statement or function and why, instead of DuckDB's permission error.

The check uses DuckDB's own parser (``extract_statements`` for the statement kinds,
``json_serialize_sql`` for the tree of a SELECT), not regular expressions, so comments,
quoting and odd spacing cannot hide a statement or a function call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb

__all__ = ["FILE_FUNCTIONS", "CheckedQuery", "SqlRefused", "check_sql"]

# Table functions that read files, URLs or other databases, or run SQL given as a string.
FILE_FUNCTIONS = frozenset({
    "read_csv", "read_csv_auto", "sniff_csv", "read_parquet", "parquet_scan",
    "parquet_metadata", "parquet_schema", "parquet_file_metadata", "parquet_kv_metadata",
    "parquet_bloom_probe", "read_json", "read_json_auto", "read_json_objects",
    "read_json_objects_auto", "read_ndjson", "read_ndjson_auto", "read_ndjson_objects",
    "read_text", "read_blob", "glob", "read_xlsx", "st_read", "st_read_meta",
    "iceberg_scan", "iceberg_metadata", "iceberg_snapshots", "delta_scan",
    "sqlite_scan", "sqlite_attach", "postgres_scan", "postgres_attach", "mysql_scan",
    "query", "query_table", "load_aws_credentials", "duckdb_secrets",
    "json_execute_serialized_sql",
})
# Prefixes of such functions in extensions this list does not name one by one.
FILE_PREFIXES = ("read_", "parquet_", "iceberg_", "delta_", "sqlite_", "postgres_",
                 "mysql_", "st_read")
# A table name that DuckDB would treat as a file ("replacement scan"): a path or URL.
_FILE_LIKE = re.compile(
    r"[/\\]|://|\.(csv|tsv|txt|json|jsonl|ndjson|parquet|xlsx|xls|gz|zst|db|duckdb|"
    r"sqlite|arrow|avro)$", re.IGNORECASE)
ALLOWED_STATEMENTS = {"SELECT", "EXPLAIN"}
MAX_SQL_CHARS = 200_000


class SqlRefused(ValueError):
    """The query is not allowed (or does not parse); the message says why and where."""


@dataclass
class CheckedQuery:
    """A query that passed: its text (one statement, no trailing ``;``) and the tables
    it reads (lower-case names, CTE names included), for refreshing live sources."""

    sql: str
    tables: set[str] = field(default_factory=set)


def _statement_kind(statement: Any) -> str:
    return str(statement.type).rsplit(".", 1)[-1].upper()


def check_sql(con: duckdb.DuckDBPyConnection, sql: str) -> CheckedQuery:
    """Parse ``sql`` with ``con`` and return it when it is one read-only query.

    Raises :class:`SqlRefused` for an empty text, a syntax error (DuckDB's message, with
    its line), more than one statement, any statement but SELECT/EXPLAIN (ATTACH, COPY,
    INSTALL, LOAD, SET, PRAGMA, CREATE, ...), a table function that reads files or runs
    SQL text (``read_csv``, ``glob``, ``query``...), or a table named like a file path.
    """
    text = sql.strip()
    if not text:
        raise SqlRefused("sql: the query is empty")
    if len(text) > MAX_SQL_CHARS:
        raise SqlRefused(f"sql: the query is {len(text)} characters; at most "
                         f"{MAX_SQL_CHARS} are accepted")
    try:
        statements = con.extract_statements(text)
    except duckdb.Error as exc:
        raise SqlRefused(f"sql: {_first_line(exc)}") from None
    if not statements:
        raise SqlRefused("sql: the query is empty (only comments?)")
    if len(statements) > 1:
        raise SqlRefused(f"sql: {len(statements)} statements were given; run one query "
                         "at a time")
    kind = _statement_kind(statements[0])
    if kind not in ALLOWED_STATEMENTS:
        # DuckDB files INSTALL under LOAD: name the statement as the user wrote it.
        word = re.match(r"\s*([A-Za-z]+)", statements[0].query)
        shown = word.group(1).upper() if word else kind
        raise SqlRefused(
            f"sql: {shown} is refused: the editor is read-only and offline (SELECT and "
            "EXPLAIN only; ATTACH, COPY, INSTALL, LOAD, SET, PRAGMA and writes are not "
            "allowed)")
    query = statements[0].query.strip().rstrip(";").strip()
    tree_source = query
    if kind == "EXPLAIN":
        tree_source = re.sub(r"^\s*explain(\s+analyze)?\s+", "", query, flags=re.I)
    tables = _check_tree(con, tree_source)
    return CheckedQuery(query, tables)


def _check_tree(con: duckdb.DuckDBPyConnection, query: str) -> set[str]:
    row = con.execute("SELECT json_serialize_sql(?)", [query]).fetchone()
    tree = json.loads(row[0]) if row else {"error": True}
    if tree.get("error"):
        message = str(tree.get("error_message") or "the query could not be analysed")
        raise SqlRefused(f"sql: {message}")
    tables: set[str] = set()
    for node in _walk(tree.get("statements", [])):
        kind = node.get("type")
        if kind == "TABLE_FUNCTION":
            function = node.get("function") or {}
            name = str(function.get("function_name", "")).lower()
            if name in FILE_FUNCTIONS or name.startswith(FILE_PREFIXES):
                raise SqlRefused(
                    f"sql: the table function {name}() is refused: queries read the "
                    "loaded datasets only (drop a file on the page to load it)")
        elif kind == "BASE_TABLE":
            name = str(node.get("table_name", ""))
            if _FILE_LIKE.search(name):
                raise SqlRefused(
                    f"sql: {name!r} looks like a file; queries read the loaded datasets "
                    "only (drop the file on the page to load it)")
            tables.add(name.lower())
        elif node.get("class") == "FUNCTION":
            name = str(node.get("function_name", "")).lower()
            if name in FILE_FUNCTIONS:
                raise SqlRefused(f"sql: the function {name}() is refused")
    return tables


def _walk(value: Any) -> Iterator[dict[str, Any]]:
    # The serialised tree nests dicts in lists in dicts; every node is a dict.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:3]) if lines else type(exc).__name__
