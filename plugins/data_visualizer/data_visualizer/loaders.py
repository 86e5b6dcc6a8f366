"""Reading a user's file into a DuckDB table: format, CSV dialect, types, clear errors.

Each load runs in a DuckDB instance of its own, the only one that may read files, and
writes the table ``data`` into a new database file; the query engine attaches that file
read-only afterwards (see :mod:`data_visualizer.engine`). A failed load leaves nothing
behind and never touches the dataset it would replace.

CSV/TSV: the dialect (delimiter, decimal comma) is decided here from the first 64 KiB,
with Python's csv module, because DuckDB's sniffer, left alone, reads a ragged file as
one text column instead of refusing it. DuckDB then loads with that dialect in strict
mode and infers the column types; a value that does not fit the type guessed from the
sample (mixed types) makes the load go again with every row sampled, so the column
becomes text instead of failing. A malformed file is a :class:`LoadError` naming the
line (DuckDB's own line number for long files, a scan with the csv module otherwise).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

__all__ = ["FORMATS", "LoadError", "LoadResult", "detect_format", "load_file", "sniff_csv"]

FORMATS = ("csv", "tsv", "json", "ndjson", "parquet", "xlsx")
_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "csv", ".json": "json",
               ".ndjson": "ndjson", ".jsonl": "ndjson", ".parquet": "parquet",
               ".pq": "parquet", ".xlsx": "xlsx", ".xlsm": "xlsx"}
SNIFF_BYTES = 64 * 1024
DELIMITERS = (",", ";", "\t", "|")
_DECIMAL_COMMA = re.compile(r"^-?\d{1,3}(\.\d{3})*,\d+$|^-?\d+,\d+$")
_LINE = re.compile(r"CSV Error on Line: (\d+)")
MAX_JSON_RECHECK = 256 * 1024 * 1024
# Settings of every loader instance: nothing is fetched or loaded behind the user's back.
OFFLINE_CONFIG = {"autoload_known_extensions": False, "autoinstall_known_extensions": False}


class LoadError(ValueError):
    """The file cannot be loaded; ``line`` is the 1-based line of the problem when known."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


@dataclass
class LoadResult:
    """What a load made: the rows and columns of ``data`` and the options it used."""

    rows: int
    columns: list[dict[str, str]]
    options: dict[str, Any]


def detect_format(filename: str, head: bytes) -> str:
    """The format of a file from its name, else from its first bytes."""
    suffix = Path(filename).suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    stripped = head.lstrip(codecs.BOM_UTF8).lstrip()
    if stripped.startswith(b"["):
        return "json"
    if stripped.startswith(b"{"):
        return "ndjson"
    return "csv"


def _decode_head(head: bytes) -> tuple[str, str]:
    """(text, encoding) of the sniffed bytes; a cut multi-byte character at the end is
    dropped. Only UTF-8 (with or without BOM) is read as is; see :func:`_to_utf8`."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Excel's "Unicode Text": refused before with a field count that made no sense.
        text = head.decode("utf-16", errors="ignore")
        return text, "utf-16"
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8):]
    try:
        return head.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3:
            return head[:exc.start].decode("utf-8"), "utf-8"
        return head.decode("cp1252", errors="replace"), "cp1252"


def sniff_csv(head: bytes, fmt: str = "csv") -> dict[str, Any]:
    """The dialect of a CSV/TSV from its first bytes: ``delim``, ``decimal_separator``
    (``","`` for a ``;`` file whose numbers use a decimal comma) and ``encoding``.

    The delimiter is the candidate that splits the first records into the same number of
    fields (more than one), preferring the most fields; TSV files always use a tab."""
    text, encoding = _decode_head(head)
    lines = text.splitlines(keepends=True)
    if len(head) >= SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line was cut by the sample
    sample = "".join(lines[:200])
    best: tuple[int, int, str] = (0, 0, ",")
    candidates = ("\t",) if fmt == "tsv" else DELIMITERS
    for delim in candidates:
        try:
            records = list(csv.reader(io.StringIO(sample), delimiter=delim))
        except csv.Error:
            continue
        records = [r for r in records if r]
        if not records:
            continue
        widths = [len(r) for r in records]
        first = widths[0]
        consistent = sum(1 for w in widths if w == first)
        score = (consistent, first)
        if first > 1 and score > best[:2]:
            best = (consistent, first, delim)
    delim = best[2] if best[1] > 1 else ("\t" if fmt == "tsv" else ",")
    options: dict[str, Any] = {"delim": delim, "encoding": encoding}
    if delim == ";":
        values = [v.strip() for r in csv.reader(io.StringIO(sample), delimiter=";")
                  for v in r[:50]]
        if any(_DECIMAL_COMMA.match(v) for v in values):
            options["decimal_separator"] = ","
    return options


def _to_utf8(source: Path, target: Path, encoding: str) -> None:
    # DuckDB reads UTF-8; a Windows-1252 export (Excel's "CSV") is rewritten once.
    with source.open("r", encoding=encoding, errors="replace", newline="") as src, \
            target.open("w", encoding="utf-8", newline="") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _csv_sql(path: Path, options: dict[str, Any], full_sample: bool) -> str:
    parts = [_quote(str(path)), f"delim={_quote(options['delim'])}", "quote='\"'",
             "escape='\"'", "strict_mode=true",
             # Never let the sniffer skip leading lines it finds irregular: that drops
             # rows silently instead of naming the line that is wrong.
             "skip=0"]
    if "decimal_separator" in options:
        parts.append(f"decimal_separator={_quote(options['decimal_separator'])}")
    if full_sample:
        parts.append("sample_size=-1")
    return f"read_csv({', '.join(parts)})"


def _locate_csv_problem(path: Path, delim: str) -> tuple[str, int] | None:
    """Scan with the csv module for the first record whose field count differs from the
    header's, or an unterminated quote; (reason, line) or None."""
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.reader(handle, delimiter=delim, strict=True)
        width: int | None = None
        start = 1
        try:
            for record in reader:
                if record:
                    if width is None:
                        width = len(record)
                    elif len(record) != width:
                        return (f"expected {width} fields (as in the header), found "
                                f"{len(record)}", start)
                start = reader.line_num + 1
        except csv.Error as exc:
            return f"{exc} (a quote opened here is never closed?)", start
    return None


def _duckdb_reason(exc: BaseException) -> str:
    lines = [s.strip() for s in str(exc).splitlines() if s.strip()]
    for line in lines:
        if line.startswith(("Expected Number of Columns", "Error when converting",
                            "Value with unterminated quote", "Invalid unicode")):
            return line
    head = lines[0] if lines else type(exc).__name__
    return re.sub(r"^[A-Za-z ]+Error: ", "", head)


def _load_csv(con: duckdb.DuckDBPyConnection, path: Path, fmt: str, work: Path,
              encoding: str | None = None) -> dict[str, Any]:
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if not head.strip():
        raise LoadError("the file is empty", 1)
    options = sniff_csv(head, fmt)
    if encoding is not None:
        options["encoding"] = encoding
    source = path
    if options["encoding"] != "utf-8":
        source = work / "utf8.csv"
        _to_utf8(path, source, options["encoding"])
    for full_sample in (False, True):
        try:
            reader = _csv_sql(source, options, full_sample)
            con.execute(f"CREATE TABLE data AS SELECT * FROM {reader}")
            options["types_from"] = "every row" if full_sample else "a sample"
            return options
        except duckdb.Error as exc:
            if isinstance(exc, duckdb.InterruptException):
                raise
            if isinstance(exc, duckdb.ConversionException) and not full_sample:
                continue  # mixed types past the sample: decide the types on every row
            if ("Invalid unicode" in str(exc) and options["encoding"] == "utf-8"
                    and head.isascii()):
                # Plain ASCII in the sniffed start and not UTF-8 later: Excel's CSV with
                # its first "é" rows in, Windows-1252 (it was refused). A start holding
                # UTF-8 letters is UTF-8 with a bad byte: refused, never garbled.
                return _load_csv(con, path, fmt, work, encoding="cp1252")
            match = _LINE.search(str(exc))
            if match:
                raise LoadError(f"line {match.group(1)}: {_duckdb_reason(exc)}",
                                int(match.group(1))) from None
            found = _locate_csv_problem(source, options["delim"])
            if found is not None:
                reason, line = found
                raise LoadError(f"line {line}: {reason}", line) from None
            raise LoadError(f"not a readable CSV file: {_duckdb_reason(exc)}") from None
    raise AssertionError("unreachable")


def _locate_json_problem(path: Path, fmt: str) -> tuple[str, int] | None:
    """(reason, line) of the first JSON syntax error, or None (also for files too large
    to parse again in memory)."""
    import json

    if fmt == "ndjson":
        with path.open("r", encoding="utf-8-sig", errors="replace") as handle:
            for number, text in enumerate(handle, 1):
                if text.strip():
                    try:
                        json.loads(text)
                    except ValueError as exc:
                        return str(exc).split(":")[0], number
        return None
    if path.stat().st_size > MAX_JSON_RECHECK:
        return None
    try:
        json.loads(path.read_text(encoding="utf-8-sig", errors="replace"))
    except json.JSONDecodeError as exc:
        return exc.msg, exc.lineno
    except ValueError:
        return None
    return None


def _load_json(con: duckdb.DuckDBPyConnection, path: Path, fmt: str) -> dict[str, Any]:
    layout = "newline_delimited" if fmt == "ndjson" else "auto"
    try:
        con.execute(f"CREATE TABLE raw AS SELECT * FROM read_json({_quote(str(path))}, "
                    f"format={_quote(layout)}, sample_size=-1)")
    except duckdb.InterruptException:
        raise
    except duckdb.Error as exc:
        # DuckDB counts bytes within a record; Python's parser names the line.
        found = _locate_json_problem(path, fmt)
        if found is not None:
            reason, line = found
            raise LoadError(f"line {line}: not valid JSON ({reason})", line) from None
        raise LoadError(f"not valid JSON ({_duckdb_reason(exc)})") from None
    if fmt == "json" and not _json_closed(path):
        # DuckDB reads '[{"a": 1}, {"a": 2},' (a file cut short) as the rows it has.
        found = _locate_json_problem(path, fmt)
        line = found[1] if found else None
        where = f"line {line}: " if line else ""
        raise LoadError(f"{where}not valid JSON (the file ends before its closing bracket: "
                        "cut short?)", line)
    # Values of mixed types come back as the JSON type; text charts and filters better.
    columns = con.execute("SELECT column_name, column_type FROM (DESCRIBE raw)").fetchall()
    select = []
    for name, dtype in columns:
        ident = '"' + str(name).replace('"', '""') + '"'
        if dtype == "JSON":
            select.append(f"CASE WHEN json_type({ident}) IN ('OBJECT', 'ARRAY') THEN "
                          f"{ident}::VARCHAR ELSE json_extract_string({ident}, '$') END "
                          f"AS {ident}")
        else:
            select.append(ident)
    con.execute(f"CREATE TABLE data AS SELECT {', '.join(select)} FROM raw")
    con.execute("DROP TABLE raw")
    return {"format": layout}


def _json_closed(path: Path) -> bool:
    """False when a JSON document that opens with ``[`` or ``{`` does not end with the
    matching bracket (only the first and last bytes are read)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        first = handle.read(4096).lstrip(codecs.BOM_UTF8).lstrip()[:1]
        handle.seek(max(0, size - 4096))
        last = handle.read().rstrip()[-1:]
    closing = {b"[": b"]", b"{": b"}"}.get(first)
    return closing is None or last == closing


def _load_parquet(con: duckdb.DuckDBPyConnection, path: Path) -> dict[str, Any]:
    try:
        con.execute(f"CREATE TABLE data AS SELECT * FROM read_parquet({_quote(str(path))})")
    except duckdb.InterruptException:
        raise
    except duckdb.Error as exc:
        # DuckDB's words name the file by the upload's own path: said as "the file".
        reason = _duckdb_reason(exc).replace(f'"{path}"', "the file").replace(str(path),
                                                                              "the file")
        raise LoadError(f"not a readable Parquet file: {reason}") from None
    return {}


def _load_xlsx(con: duckdb.DuckDBPyConnection, path: Path, work: Path,
               sheet: str | None) -> dict[str, Any]:
    # DuckDB's Excel reader is an extension (never loaded: offline); openpyxl streams the
    # sheet into a CSV that the CSV path types like any other.
    import zipfile

    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise LoadError(f"not a readable XLSX workbook: {exc}") from None
    try:
        names = book.sheetnames
        if sheet is not None and sheet not in names:
            raise LoadError(f"sheet: no sheet named {sheet!r} (sheets: {', '.join(names)})")
        ws = book[sheet] if sheet is not None else book.worksheets[0]
        target = work / "sheet.csv"
        rows = 0
        with target.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            for values in ws.iter_rows(values_only=True):
                if values and any(v is not None for v in values):
                    writer.writerow(["" if v is None else
                                     v.isoformat() if hasattr(v, "isoformat") else v
                                     for v in values])
                    rows += 1
        if rows == 0:
            raise LoadError(f"sheet {ws.title!r} is empty")
    finally:
        book.close()
    options = _load_csv(con, target, "csv", work)
    return {"sheet": ws.title, "sheets": names, "delim": options["delim"]}


def load_file(path: Path, fmt: str, target: Path, *, sheet: str | None = None,
              threads: int = 2, on_connection: Callable[[duckdb.DuckDBPyConnection], None]
              | None = None) -> LoadResult:
    """Load ``path`` (format ``fmt``) as table ``data`` of a new DuckDB file ``target``.

    ``target`` must not exist; it is removed again when the load fails. Raises
    :class:`LoadError` with the line of the problem when one is known. ``on_connection``
    receives the loading connection (to interrupt it, or to read its progress).
    """
    if fmt not in FORMATS:
        raise LoadError(f"format: {fmt!r} is not one of {', '.join(FORMATS)}")
    work = target.parent / (target.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(target), config={**OFFLINE_CONFIG, "threads": threads})
    ok = False
    try:
        if on_connection is not None:
            on_connection(con)
        try:
            if fmt in ("csv", "tsv"):
                options = _load_csv(con, path, fmt, work)
            elif fmt in ("json", "ndjson"):
                options = _load_json(con, path, fmt)
            elif fmt == "parquet":
                options = _load_parquet(con, path)
            else:
                options = _load_xlsx(con, path, work, sheet)
        except duckdb.InterruptException:
            raise
        except duckdb.Error as exc:
            # Anything else DuckDB says about this file (a value it cannot store, the
            # memory limit...) is still about the file: said as such, not as a crash.
            raise LoadError(f"could not be loaded: {_duckdb_reason(exc)}") from None
        rows_row = con.execute("SELECT count(*) FROM data").fetchone()
        columns = [{"name": str(n), "type": str(t)} for n, t in con.execute(
            "SELECT column_name, column_type FROM (DESCRIBE data)").fetchall()]
        if not columns:
            raise LoadError("the file has no columns")
        con.execute("CHECKPOINT")
        ok = True
        return LoadResult(int(rows_row[0]) if rows_row else 0, columns,
                          {"format": fmt, **options})
    finally:
        con.close()
        for leftover in work.iterdir():
            leftover.unlink()
        work.rmdir()
        if not ok:
            for leftover in (target, target.with_name(target.name + ".wal")):
                leftover.unlink(missing_ok=True)
