"""Reading real files into DuckDB: the awkward CSVs people have, the other formats, and a
malformed file named by its line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from data_visualizer.loaders import LoadError, detect_format, load_file, sniff_csv

Write = Callable[[str, str | bytes], Path]


def load(path: Path, fmt: str, tmp_path: Path, **kwargs: object) -> tuple[list[tuple], dict]:
    target = tmp_path / f"{path.stem}-{fmt}.duckdb"
    result = load_file(path, fmt, target, **kwargs)  # type: ignore[arg-type]
    con = duckdb.connect(str(target), read_only=True)
    try:
        rows = con.execute("SELECT * FROM data").fetchall()
        types = dict(con.execute(
            "SELECT column_name, column_type FROM (DESCRIBE data)").fetchall())
    finally:
        con.close()
    assert result.rows == len(rows)
    return rows, {"types": types, **result.options}


def test_a_bom_semicolons_a_decimal_comma_and_quoted_newlines(write_file: Write,
                                                                tmp_path: Path) -> None:
    path = write_file("excel.csv", "\ufeffname;amount;note\r\nAnn;1,5;\"two\r\nlines\"\r\n"
                                   "Bob;2,25;plain\r\n")
    rows, info = load(path, "csv", tmp_path)
    assert info["delim"] == ";" and info["decimal_separator"] == ","
    # The BOM is not part of the first column's name, the comma is a decimal point.
    assert list(info["types"]) == ["name", "amount", "note"]
    assert info["types"]["amount"] == "DOUBLE"
    assert rows == [("Ann", 1.5, "two\r\nlines"), ("Bob", 2.25, "plain")]


def test_mixed_types_past_the_sample_become_text_instead_of_failing(
        write_file: Write, tmp_path: Path) -> None:
    lines = ["id,value"] + [f"{i},{i * 2}" for i in range(30_000)] + ["30000,n/a"]
    path = write_file("mixed.csv", "\n".join(lines) + "\n")
    rows, info = load(path, "csv", tmp_path)
    assert info["types"] == {"id": "BIGINT", "value": "VARCHAR"}
    assert info["types_from"] == "every row"
    assert len(rows) == 30_001 and rows[-1] == (30000, "n/a")


@pytest.mark.parametrize(("content", "line", "words"), [
    ("a,b,c\n1,2,3\n4,5\n", 3, "expected 3 fields"),
    ("a,b\n1,2\n3,\"open quote\n5,6\n", 3, "quote"),
    ("a,b\n1,2\n3,4,5\n6,7\n", 3, "expected 2 fields"),
])
def test_a_malformed_small_csv_names_its_line(write_file: Write, tmp_path: Path,
                                              content: str, line: int, words: str) -> None:
    path = write_file("bad.csv", content)
    with pytest.raises(LoadError) as caught:
        load_file(path, "csv", tmp_path / "bad.duckdb")
    assert caught.value.line == line
    assert f"line {line}" in str(caught.value) and words in str(caught.value)
    assert not (tmp_path / "bad.duckdb").exists()  # nothing left behind


def test_a_malformed_row_deep_in_a_long_csv_names_its_line(write_file: Write,
                                                            tmp_path: Path) -> None:
    lines = ["id,x,y"] + [f"{i},{i},{i}" for i in range(50_000)]
    lines[40_001] += ",extra"  # the 40,000th record, on line 40,002 of the file
    path = write_file("long.csv", "\n".join(lines) + "\n")
    with pytest.raises(LoadError) as caught:
        load_file(path, "csv", tmp_path / "long.duckdb")
    assert caught.value.line == 40_002
    assert "Expected Number of Columns: 3 Found: 4" in str(caught.value)


def test_tsv_and_a_windows_1252_file(write_file: Write, tmp_path: Path) -> None:
    rows, info = load(write_file("t.tsv", "city\tpop\nKöln\t1084831\n"), "tsv", tmp_path)
    assert info["delim"] == "\t" and rows == [("Köln", 1084831)]
    path = write_file("latin.csv", b"city,temp\n" + "Málaga,21\n".encode("cp1252"))
    rows, info = load(path, "csv", tmp_path)
    assert info["encoding"] == "cp1252" and rows == [("Málaga", 21)]
    # Audit: the first accented letter past the sniffed start (Excel exports) was refused
    # ("not utf-8 encoded"); and Excel's "Unicode Text" (UTF-16) too, with a field count.
    late = write_file("late.csv", b"city,temp\n" + b"Plain,1\n" * 12_000
                      + "Café,2\n".encode("cp1252"))
    rows, info = load(late, "csv", tmp_path)
    assert info["encoding"] == "cp1252" and rows[-1] == ("Café", 2) and len(rows) == 12_001
    # A UTF-8 start and a bad byte later is a broken UTF-8 file, never re-read (and
    # garbled) as Windows-1252 (review).
    broken = write_file("broken.csv", "city,temp\nCafé,1\n".encode() + b"Plain,1\n" * 12_000
                        + b"Bad\xff,2\n")
    with pytest.raises(LoadError, match="line"):
        load(broken, "csv", tmp_path)
    wide = write_file("unicode.csv", "a,b\n1,2\nÄ,3\n".encode("utf-16"))
    rows, info = load(wide, "csv", tmp_path)
    assert info["encoding"] == "utf-16" and rows == [("1", 2), ("Ä", 3)]



def test_json_array_ndjson_with_mixed_values_and_bad_json(write_file: Write,
                                                          tmp_path: Path) -> None:
    rows, _ = load(write_file("a.json", json.dumps([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}])),
                   "json", tmp_path)
    assert rows == [(1, "x"), (2, "y")]
    rows, info = load(write_file("m.ndjson", '{"v": 1}\n{"v": "two"}\n{"v": [3]}\n'),
                      "ndjson", tmp_path)
    assert info["types"] == {"v": "VARCHAR"} and rows == [("1",), ("two",), ("[3]",)]
    bad = write_file("bad.json", '[{"a": 1},\n {"a": 2},\n {"a": }]')
    with pytest.raises(LoadError) as caught:
        load_file(bad, "json", tmp_path / "badjson.duckdb")
    assert caught.value.line == 3 and "line 3" in str(caught.value)


def test_a_json_array_cut_short_is_refused_not_loaded_in_part(write_file: Write,
                                                             tmp_path: Path) -> None:
    # Review finding: DuckDB loaded the rows before the cut and said nothing.
    cut = write_file("cut.json", '[{"a": 1},\n {"a": 2},\n')
    with pytest.raises(LoadError, match=r"line 3: not valid JSON") as info:
        load_file(cut, "json", tmp_path / "cut.duckdb")
    assert info.value.line == 3 and not (tmp_path / "cut.duckdb").exists()
    rows, _ = load(write_file("fine.json", '[{"a": 1}]\n\n'), "json", tmp_path)
    assert rows == [(1,)]


def test_parquet_and_xlsx(tmp_path: Path) -> None:
    parquet = tmp_path / "p.parquet"
    con = duckdb.connect()
    con.execute("COPY (SELECT range AS n, (range * 1.5)::DOUBLE AS x FROM range(1000)) "
                f"TO '{parquet}'")
    con.close()
    rows, info = load(parquet, "parquet", tmp_path)
    assert len(rows) == 1000 and info["types"] == {"n": "BIGINT", "x": "DOUBLE"}

    import datetime as dt

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sales"
    sheet.append(["day", "region", "amount"])
    sheet.append([dt.date(2024, 1, 1), "north", 10.5])
    sheet.append([dt.date(2024, 1, 2), "south", 7])
    book.create_sheet("Other").append(["x"])
    xlsx = tmp_path / "book.xlsx"
    book.save(xlsx)
    rows, info = load(xlsx, "xlsx", tmp_path)
    assert info["sheet"] == "Sales" and info["sheets"] == ["Sales", "Other"]
    assert info["types"]["day"].startswith(("DATE", "TIMESTAMP"))
    assert [r[1:] for r in rows] == [("north", 10.5), ("south", 7.0)]
    with pytest.raises(LoadError, match="no sheet named 'Nope'"):
        load_file(xlsx, "xlsx", tmp_path / "nope.duckdb", sheet="Nope")


def test_not_a_file_of_its_format(write_file: Write, tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="Parquet") as bad:
        load_file(write_file("x.parquet", b"not parquet at all"), "parquet", tmp_path / "1.duckdb")
    assert str(tmp_path) not in str(bad.value)  # no path of the app's own (audit)
    with pytest.raises(LoadError, match="XLSX"):
        load_file(write_file("x.xlsx", b"PK\x03\x04broken"), "xlsx", tmp_path / "2.duckdb")
    with pytest.raises(LoadError, match="empty"):
        load_file(write_file("e.csv", b"\n\n"), "csv", tmp_path / "3.duckdb")


def test_format_and_dialect_detection() -> None:
    assert detect_format("data.TSV", b"") == "tsv"
    assert detect_format("upload", b"PAR1....") == "parquet"
    assert detect_format("upload", b"\xef\xbb\xbf [{\"a\": 1}]") == "json"
    assert detect_format("upload", b'{"a": 1}\n') == "ndjson"
    assert detect_format("upload", b"a,b\n") == "csv"
    assert sniff_csv(b"a|b|c\n1|2|3\n")["delim"] == "|"
    # A comma inside a quoted field does not make the comma the delimiter.
    assert sniff_csv(b'name;note\n"Ann";"a, b, c"\n"Bob";"d, e"\n')["delim"] == ";"
