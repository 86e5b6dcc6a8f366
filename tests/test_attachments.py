"""Download names for plugin routes (plexichat_desktop.plugins.attachments)."""

from urllib.parse import unquote

import pytest
from starlette.responses import Response

from plexichat_desktop.plugins.attachments import MAX_NAME, attachment_headers, clean_filename


@pytest.mark.parametrize(("name", "expected"), [
    ("report.csv", "report.csv"),
    ("売上 ダッシュボード.json", "売上 ダッシュボード.json"),
    ("../../etc/passwd", "_.._etc_passwd"),
    ('a "quoted"\r\nname.md', "a _quoted_ name.md"),
    ("C:\\temp\\x?.txt", "C__temp_x_.txt"),
    ("...hidden", "hidden"),
    ("", "download"),
    ("\x00\x1f", "download"),
])
def test_clean_filename(name: str, expected: str) -> None:
    assert clean_filename(name) == expected


def test_a_long_name_keeps_its_extension() -> None:
    cleaned = clean_filename("x" * 500 + ".json")
    assert len(cleaned) == MAX_NAME and cleaned.endswith("x.json")


def test_ascii_names_need_no_utf8_part() -> None:
    assert attachment_headers("scan-1.csv") == {
        "Content-Disposition": 'attachment; filename="scan-1.csv"'}


def test_any_name_makes_a_header_starlette_can_send() -> None:
    for name in ("売上.json", "été 😀.csv", 'he said "hi"\n.txt', "\u2028x.md"):
        headers = attachment_headers(name)
        value = headers["Content-Disposition"]
        value.encode("latin-1")  # what failed with the name written as it is
        Response(b"", headers=headers)  # the header as the server sends it
        fallback = value.split('filename="')[1].split('"')[0]
        assert fallback.isascii() and fallback
        utf8 = value.partition("; filename*=UTF-8''")[2]
        assert unquote(utf8 or fallback) == clean_filename(name)
