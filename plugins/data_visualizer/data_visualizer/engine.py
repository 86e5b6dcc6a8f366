"""The in-process query engine: datasets in DuckDB files, one hardened reader for queries.

Layout under the plugin's data dir::

    datasets/<name>.<version>.duckdb   the table ``data`` of one loaded file
    datasets/<name>.json               what it is: file name, format, rows, columns

Queries never run on a connection that can read files. The *reader* is an in-memory
DuckDB that attaches every dataset file read-only, shows each as a view named like the
dataset, holds the live sources' tables, and only then turns external access off and
locks its configuration (no extension is ever installed or auto-loaded: the app works
offline). Loading a file happens in a separate instance (:func:`loaders.load_file`) into
a new file; the reader is then rebuilt and swapped in, so queries already running finish
on the old one and nothing waits for a load. A failed load changes nothing.

All methods here block; the plugin calls them in worker threads.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import logging
import math
import re
import secrets
import shutil
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from data_visualizer.loaders import OFFLINE_CONFIG, LoadResult, load_file
from data_visualizer.sqlguard import CheckedQuery, SqlRefused, check_sql

__all__ = ["Dataset", "Engine", "NameError_", "QueryCancelled", "QueryResult", "QueryTimeout",
           "field_kind", "ident", "json_value", "safe_name"]

NAME = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")
MAX_RESULT_BYTES = 64 * 1024 * 1024  # values a query hands to the page, at most (about)
log = logging.getLogger(__name__)


class NameError_(ValueError):
    """A dataset name that is not usable (the message names the field and the rule)."""


class QueryTimeout(RuntimeError):
    """The query ran past its time limit and was interrupted."""


class QueryCancelled(RuntimeError):
    """The query was interrupted on request."""


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def safe_name(filename: str) -> str:
    """A dataset name from a file name: ``Sales 2024.csv`` -> ``sales_2024``."""
    stem = Path(filename).name.split(".")[0] or "data"
    name = re.sub(r"[^a-z0-9_]+", "_", stem.lower()).strip("_") or "data"
    if name[0].isdigit():
        name = "t_" + name
    return name[:48]


def field_kind(duck_type: str) -> str:
    """The Vega-Lite measurement type of a DuckDB column type."""
    t = duck_type.upper()
    if t.startswith(("TIMESTAMP", "DATE")) or t == "TIME":
        return "temporal"
    if t.startswith(("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
                     "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE",
                     "DECIMAL", "REAL")):
        return "quantitative"
    return "nominal"


def json_value(value: Any) -> Any:
    """A DuckDB value as JSON: timestamps as ISO text (Vega parses them), decimals and
    intervals as numbers (seconds), NaN and infinities as null, blobs as hex."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return str(value)


@dataclass
class Dataset:
    """One loaded file (or a live source's table)."""

    name: str
    filename: str
    format: str
    rows: int
    columns: list[dict[str, str]]
    file: str
    loaded_at: float
    size: int
    options: dict[str, Any] = field(default_factory=dict)
    live: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("file")
        for column in data["columns"]:
            column["kind"] = field_kind(column["type"])
        return data


@dataclass
class QueryResult:
    """Columns (name, DuckDB type, Vega-Lite kind), rows as lists, and whether rows were
    cut at the limit."""

    columns: list[dict[str, str]]
    rows: list[list[Any]]
    truncated: bool
    seconds: float
    tables: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Live:
    columns: list[tuple[str, str]]
    rows: deque[tuple[Any, ...]]
    updated: float = 0.0


class Engine:
    """Datasets and queries of one workspace (the plugin's data dir)."""

    def __init__(self, root: Path, *, threads: int = 2, memory_limit: str = "1GB",
                 live_keep: int = 20_000, reserved: Iterable[str] = ()):
        self.root = root
        self.folder = root / "datasets"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.tmp = root / "tmp"
        self.threads = threads
        self.memory_limit = memory_limit
        self.live_keep = live_keep
        self.reserved = frozenset(reserved)
        self.datasets: dict[str, Dataset] = {}
        # Datasets whose file DuckDB could not open (damaged on disk): name -> reason.
        self.broken: dict[str, str] = {}
        self._live: dict[str, _Live] = {}
        self._lock = threading.RLock()
        self._reader: duckdb.DuckDBPyConnection | None = None
        self._running: dict[str, tuple[duckdb.DuckDBPyConnection, list[str]]] = {}
        self._read_index()
        self._rebuild()

    # -- datasets ----------------------------------------------------------------------
    def _read_index(self) -> None:
        for meta in sorted(self.folder.glob("*.json")):
            try:
                data = json.loads(meta.read_text(encoding="utf-8"))
                dataset = Dataset(**data)
            except (OSError, ValueError, TypeError):
                continue  # a half-written or foreign file: not a dataset
            if (self.folder / dataset.file).exists():
                self.datasets[dataset.name] = dataset
        # Files of loads that never finished (the app stopped mid-load) or replaced ones.
        keep = {d.file for d in self.datasets.values()}
        for path in self.folder.iterdir():
            name = path.name
            if path.is_dir() and name.endswith(".work"):
                shutil.rmtree(path, ignore_errors=True)
            elif name.endswith(".json.tmp") or (
                    name.endswith(".duckdb") and name not in keep) or (
                    name.endswith(".duckdb.wal") and name[:-4] not in keep):
                path.unlink(missing_ok=True)

    def check_name(self, name: str, *, field_name: str = "name") -> str:
        """``name`` if it can name a dataset, else :class:`NameError_` saying why."""
        if not NAME.match(name):
            raise NameError_(f"{field_name}: {name!r} must be 1-48 lower-case letters, "
                             "digits or _, not starting with a digit")
        if name in self.reserved or name in self._live:
            raise NameError_(f"{field_name}: {name!r} is the name of a live source")
        return name

    def load(self, path: Path, filename: str, name: str, fmt: str, *,
             sheet: str | None = None, query_id: str | None = None) -> Dataset:
        """Load ``path`` as dataset ``name`` (replacing one of that name only when the load
        succeeds). Raises ``loaders.LoadError``."""
        self.check_name(name)
        version = f"{int(time.time())}{secrets.token_hex(3)}"
        target = self.folder / f"{name}.{version}.duckdb"

        def keep(con: duckdb.DuckDBPyConnection) -> None:
            if query_id:
                self._running[query_id] = (con, [])

        try:
            result: LoadResult = load_file(path, fmt, target, sheet=sheet,
                                           threads=self.threads, on_connection=keep)
        finally:
            if query_id:
                self._running.pop(query_id, None)
        dataset = Dataset(name=name, filename=Path(filename).name, format=fmt,
                          rows=result.rows, columns=result.columns, file=target.name,
                          loaded_at=time.time(), size=path.stat().st_size,
                          options=result.options)
        with self._lock:
            old = self.datasets.get(name)
            meta = self.folder / f"{name}.json"
            partial = meta.with_suffix(".json.tmp")
            partial.write_text(json.dumps(asdict(dataset)), encoding="utf-8")
            partial.replace(meta)
            self.datasets[name] = dataset
            self._rebuild()
            if old is not None and old.file != dataset.file:
                # Queries still running on the previous reader keep the file open; on
                # POSIX the unlink only hides the name.
                (self.folder / old.file).unlink(missing_ok=True)
        return dataset

    def drop(self, name: str) -> None:
        """Forget dataset ``name`` (KeyError when there is none)."""
        with self._lock:
            dataset = self.datasets.pop(name)
            (self.folder / f"{name}.json").unlink(missing_ok=True)
            self._rebuild()
            (self.folder / dataset.file).unlink(missing_ok=True)

    # -- live sources ------------------------------------------------------------------
    def set_live(self, name: str, columns: Sequence[tuple[str, str]],
                 rows: Iterable[Sequence[Any]], *, append: bool = False) -> int:
        """Replace (or extend) the live table ``name`` (``columns``: (name, DuckDB type)).
        Only the newest ``live_keep`` rows are kept. Returns the number of rows added."""
        new_rows = [tuple(r) for r in rows]
        with self._lock:
            live = self._live.get(name)
            if live is None or not append or live.columns != list(columns):
                live = _Live(list(columns), deque(maxlen=self.live_keep))
                self._live[name] = live
                recreate = True
            else:
                recreate = False
            live.rows.extend(new_rows)
            live.updated = time.time()
            assert self._reader is not None
            cursor = self._reader.cursor()
            try:
                if recreate:
                    self._create_live(cursor, name, live)
                elif new_rows:
                    self._insert(cursor, name, live.columns, new_rows)
                    excess = _count(cursor, name) - self.live_keep
                    if excess > 0:
                        # Oldest first in insertion order: rowid grows with each insert.
                        cursor.execute(f"DELETE FROM {ident(name)} WHERE rowid IN (SELECT "
                                       f"rowid FROM {ident(name)} ORDER BY rowid LIMIT {excess})")
            finally:
                cursor.close()
        return len(new_rows)

    def live_info(self, name: str) -> dict[str, Any] | None:
        """Rows, columns and last update of a live table, or None before its first fill."""
        live = self._live.get(name)
        if live is None:
            return None
        return {"name": name, "rows": len(live.rows), "updated": live.updated,
                "columns": [{"name": n, "type": t, "kind": field_kind(t)}
                            for n, t in live.columns]}

    def live_updated(self, name: str) -> float:
        live = self._live.get(name)
        return live.updated if live is not None else 0.0

    @staticmethod
    def _insert(cursor: duckdb.DuckDBPyConnection, name: str,
                columns: Sequence[tuple[str, str]], rows: Sequence[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" for _ in columns)
        cursor.executemany(f"INSERT INTO {ident(name)} VALUES ({marks})", list(rows))

    def _create_live(self, cursor: duckdb.DuckDBPyConnection, name: str, live: _Live) -> None:
        spec = ", ".join(f"{ident(n)} {t}" for n, t in live.columns)
        cursor.execute(f"CREATE OR REPLACE TABLE {ident(name)} ({spec})")
        if live.rows:
            self._insert(cursor, name, live.columns, list(live.rows))

    # -- the reader ----------------------------------------------------------------------
    def _rebuild(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(":memory:", config={
            **OFFLINE_CONFIG, "threads": self.threads, "memory_limit": self.memory_limit,
            "temp_directory": str(self.tmp)})
        self.broken.clear()
        for dataset in list(self.datasets.values()):
            alias = ident("ds__" + dataset.name)
            path = str(self.folder / dataset.file).replace("'", "''")
            try:
                con.execute(f"ATTACH '{path}' AS {alias} (READ_ONLY)")
                con.execute(f"CREATE VIEW {ident(dataset.name)} AS SELECT * FROM "
                            f"{alias}.main.data")
            except duckdb.Error as exc:
                # One damaged file must not take the other datasets (or the plugin) down;
                # loading the file again under its name replaces it.
                log.warning("dataset %s cannot be opened: %s", dataset.name, exc)
                self.broken[dataset.name] = _first_line(exc)
                del self.datasets[dataset.name]
        for name, live in self._live.items():
            self._create_live(con, name, live)
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        self._reader = con

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of the current reader (close it when done)."""
        with self._lock:
            assert self._reader is not None
            return self._reader.cursor()

    def check(self, sql: str) -> CheckedQuery:
        """:func:`sqlguard.check_sql` on the reader (raises ``SqlRefused``)."""
        cursor = self.cursor()
        try:
            return check_sql(cursor, sql)
        finally:
            cursor.close()

    def columns_of(self, source_sql: str) -> list[dict[str, str]]:
        """Names, types and kinds of what a query returns (nothing is run). The query is
        checked first (:func:`sqlguard.check_sql`): DuckDB runs every statement of a text,
        so an unchecked ``SELECT 1); CREATE VIEW ...`` would write to the reader."""
        checked = self.check(source_sql)
        cursor = self.cursor()
        try:
            cursor.execute(f"DESCRIBE {checked.sql}")
            return [{"name": str(r[0]), "type": str(r[1]), "kind": field_kind(str(r[1]))}
                    for r in cursor.fetchall()]
        except duckdb.Error as exc:
            raise SqlRefused(f"sql: {_first_line(exc)}") from None
        finally:
            cursor.close()

    def run(self, sql: str, *, max_rows: int = 10_000, timeout: float = 30.0,
            query_id: str | None = None, checked: CheckedQuery | None = None,
            max_bytes: int = MAX_RESULT_BYTES) -> QueryResult:
        """Run one read-only query (checked here unless ``checked`` is given): at most
        ``max_rows`` rows, and about ``max_bytes`` of values, are returned
        (``truncated`` says when there were more: 10 000 rows of 1 MB texts must not
        become a 10 GB answer). Past
        ``timeout`` seconds, or on :meth:`interrupt` with ``query_id``, it is interrupted
        (:class:`QueryTimeout`, :class:`QueryCancelled`). Errors of the query itself
        (an unknown column...) are ``SqlRefused`` with DuckDB's message."""
        checked = checked or self.check(sql)
        cursor = self.cursor()
        key = query_id or secrets.token_hex(8)
        reasons: list[str] = []
        self._running[key] = (cursor, reasons)

        def expire() -> None:
            reasons.append("timeout")
            cursor.interrupt()

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        started = time.perf_counter()
        timer.start()
        try:
            cursor.execute(checked.sql)
            description = cursor.description or []
            fetched: list[tuple[Any, ...]] = []
            size = 0
            cut = False
            while len(fetched) <= max_rows:
                batch = cursor.fetchmany(min(256, max_rows + 1 - len(fetched)))
                if not batch:
                    break
                for row in batch:
                    size += sum(_size_of(v) for v in row)
                    if size > max_bytes and fetched:
                        cut = True
                        break
                    fetched.append(row)
                if cut:
                    break
        except duckdb.InterruptException:
            if "timeout" in reasons:
                raise QueryTimeout(f"the query ran past its limit of {timeout:g} s and was "
                                   "stopped") from None
            raise QueryCancelled("the query was stopped") from None
        except duckdb.Error as exc:
            raise SqlRefused(f"sql: {_first_line(exc)}") from None
        finally:
            timer.cancel()
            self._running.pop(key, None)
            cursor.close()
        seconds = time.perf_counter() - started
        columns = [{"name": str(d[0]), "type": str(d[1]), "kind": field_kind(str(d[1]))}
                   for d in description]
        truncated = cut or len(fetched) > max_rows
        rows = [[json_value(v) for v in row] for row in fetched[:max_rows]]
        return QueryResult(columns, rows, truncated, round(seconds, 4), sorted(checked.tables))

    def open_export(self, sql: str, *, timeout: float, query_id: str | None = None,
                    stream_timeout: float = 600.0
                    ) -> tuple[list[str], Iterator[list[Any]], Callable[[], None]]:
        """The header and every row of a checked query, for a CSV export of the full
        result. The query runs here, for at most ``timeout`` seconds to its first row
        (as :meth:`run`: ``QueryTimeout``, ``QueryCancelled`` on :meth:`interrupt` with
        ``query_id`` or :meth:`close`, ``SqlRefused`` for the query's own errors, all
        before anything is sent); the rows are then fetched in batches as the caller
        iterates, for at most ``stream_timeout`` seconds, and stopped the same ways
        (the iterator raises then: the download must end as failed, not cut short as if
        complete). The third item ends the export at once, rows read or not (a caller that
        no longer wants them). DuckDB's COPY cannot be used: the reader writes no files."""
        checked = self.check(sql)
        cursor = self.cursor()
        key = query_id or secrets.token_hex(8)
        reasons: list[str] = []
        entry = (cursor, reasons)
        self._running[key] = entry

        def expire() -> None:
            reasons.append("timeout")
            with contextlib.suppress(duckdb.Error, RuntimeError):
                cursor.interrupt()

        def finish(timer: threading.Timer) -> None:
            timer.cancel()
            if self._running.get(key) is entry:
                self._running.pop(key, None)
                cursor.close()

        def stopped(what: str, limit: float) -> Exception:
            if "timeout" in reasons:
                return QueryTimeout(f"the {what} ran past its limit of {limit:g} s and was "
                                    "stopped")
            return QueryCancelled(f"the {what} was stopped")

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            cursor.execute(checked.sql)
        except duckdb.InterruptException:
            finish(timer)
            raise stopped("query", timeout) from None
        except duckdb.Error as exc:
            finish(timer)
            raise SqlRefused(f"sql: {_first_line(exc)}") from None
        timer.cancel()
        header = [str(d[0]) for d in cursor.description or []]
        streaming = threading.Timer(stream_timeout, expire)
        streaming.daemon = True
        streaming.start()

        def rows() -> Iterator[list[Any]]:
            try:
                while batch := cursor.fetchmany(5000):
                    for row in batch:
                        yield [_csv_value(v) for v in row]
            except duckdb.Error as exc:
                # Interrupted while fetching, or between fetches ("no open result set").
                if reasons:
                    raise stopped("export", stream_timeout) from None
                raise SqlRefused(f"sql: {_first_line(exc)}") from None
            finally:
                finish(streaming)

        iterator = rows()
        # A generator never started runs no finally: a response that was never sent (its
        # client gone first) left the cursor open and registered. Closed when dropped.
        weakref.finalize(iterator, finish, streaming)
        return header, iterator, lambda: finish(streaming)

    def load_progress(self, query_id: str) -> float | None:
        """Percent done of the running load ``query_id`` (DuckDB's estimate), or None."""
        entry = self._running.get(query_id)
        if entry is None:
            return None
        try:
            progress = float(entry[0].query_progress())
        except (duckdb.Error, RuntimeError):
            return None
        return progress if progress >= 0 else None

    @staticmethod
    def was_interrupted(exc: BaseException) -> bool:
        """True for the error DuckDB raises in a query (or load) that was interrupted."""
        return isinstance(exc, duckdb.InterruptException)

    def interrupt(self, query_id: str) -> bool:
        """Stop the running query (or load) ``query_id``; False when none runs under it."""
        entry = self._running.get(query_id)
        if entry is None:
            return False
        con, reasons = entry
        reasons.append("cancel")

        def keep_interrupting() -> None:
            # DuckDB drops an interrupt that arrives before the query has started; repeat
            # it until the query is gone (at most ~10 s).
            for _ in range(200):
                if self._running.get(query_id) is not entry:
                    return
                try:
                    con.interrupt()
                except (duckdb.Error, RuntimeError):
                    return
                time.sleep(0.05)

        threading.Thread(target=keep_interrupting, daemon=True,
                         name=f"interrupt {query_id}").start()
        return True

    def summarize(self, name: str, *, timeout: float = 30.0,
                  query_id: str | None = None) -> list[dict[str, Any]]:
        """Per column: type, min, max, distinct values (approx.), mean, quartiles and the
        share of nulls (DuckDB's SUMMARIZE). Like a query, it is interrupted past
        ``timeout`` seconds (:class:`QueryTimeout`) or on :meth:`interrupt` with
        ``query_id`` (:class:`QueryCancelled`): a wide, large dataset takes long."""
        cursor = self.cursor()
        key = query_id or secrets.token_hex(8)
        reasons: list[str] = []
        entry = (cursor, reasons)
        self._running[key] = entry
        done = threading.Event()

        def expire() -> None:
            reasons.append("timeout")
            # DuckDB drops an interrupt that arrives before the query has started: repeat
            # it until the summary is over.
            while not done.wait(0.05):
                with contextlib.suppress(duckdb.Error, RuntimeError):
                    cursor.interrupt()

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            cursor.execute(f"SUMMARIZE SELECT * FROM {ident(name)}")
            names = [str(d[0]) for d in cursor.description or []]
            return [{k: json_value(v) for k, v in zip(names, row, strict=True)}
                    for row in cursor.fetchall()]
        except duckdb.InterruptException:
            if "timeout" in reasons:
                raise QueryTimeout(f"the summary ran past its limit of {timeout:g} s and "
                                   "was stopped") from None
            raise QueryCancelled("the summary was stopped") from None
        finally:
            done.set()
            timer.cancel()
            if self._running.get(key) is entry:
                self._running.pop(key, None)
            cursor.close()

    def close(self) -> None:
        """Interrupt what runs and close the reader."""
        for con, reasons in list(self._running.values()):
            reasons.append("cancel")
            with contextlib.suppress(duckdb.Error):
                con.interrupt()
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None


def _size_of(value: Any) -> int:
    """About how many bytes ``value`` takes in an answer (texts, blobs and lists count
    their length; anything else a few bytes)."""
    if isinstance(value, (str, bytes, bytearray)):
        return len(value)
    if isinstance(value, (list, tuple)):
        return sum(_size_of(v) for v in value) + 2
    if isinstance(value, dict):
        return sum(_size_of(k) + _size_of(v) for k, v in value.items()) + 2
    return 8


def _count(cursor: duckdb.DuckDBPyConnection, name: str) -> int:
    row = cursor.execute(f"SELECT count(*) FROM {ident(name)}").fetchone()
    return int(row[0]) if row else 0


#: Text a spreadsheet (Excel, LibreOffice, Google Sheets) would run as a formula when it
#: starts a cell (CSV injection, CWE-1236); as analytics_dashboard's exports.py does.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: Any) -> Any:
    """A CSV cell no spreadsheet runs as a formula: text starting with a formula
    character gets a leading ``'`` (as OWASP advises); numbers, booleans and None pass
    unchanged (a negative number stays a number)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv_value(value: Any) -> Any:
    converted = json_value(value)
    if isinstance(converted, (dict, list)):
        return json.dumps(converted)
    return converted


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:3]) if lines else type(exc).__name__
