"""Report files: CSV safe to open in a spreadsheet, and PDF (fpdf2, offline).

CSV: a text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
would run as a formula in Excel, LibreOffice or Google Sheets (CSV injection, CWE-1236);
such cells get a leading ``'``, as OWASP advises. Numbers are written as numbers.

PDF: a title, the period, the summary, a bar chart of the report's main figure and the
table. A Unicode TrueType font (DejaVu Sans) is used when the system has one, so any
username prints; otherwise the PDF core font, with characters it lacks shown as ``?``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/local/share/fonts/DejaVuSans.ttf",
    "/Library/Fonts/DejaVuSans.ttf",
    "C:/Windows/Fonts/DejaVuSans.ttf",
)


def escape_cell(value: Any) -> Any:
    """A CSV cell that no spreadsheet runs as a formula: text starting with a formula
    character gets a leading ``'``; numbers, booleans and None pass unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def to_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The report as CSV text (header first), every cell escaped."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([escape_cell(c) for c in columns])
    for row in rows:
        writer.writerow([escape_cell(cell) for cell in row])
    return buffer.getvalue()


def main_column(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int | None:
    """The index of the first numeric column after the label column, for the chart."""
    for index in range(1, len(columns)):
        if rows and all(isinstance(r[index], int | float) and not isinstance(r[index], bool)
                        for r in rows):
            return index
    return None


def _find_font() -> Path | None:
    for candidate in FONT_CANDIDATES:
        path = Path(candidate)
        if path.is_file():
            return path
    return None


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_text(v)}" for k, v in value.items()) or "-"
    return "-" if value is None else str(value)


def to_pdf(title: str, subtitle: str, columns: Sequence[str],
           rows: Sequence[Sequence[Any]], summary: Mapping[str, Any]) -> bytes:
    """The report as a PDF document (A4 portrait)."""
    from fpdf import FPDF  # imported here: the rest of the plugin works without it

    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_title(title)
    pdf.set_creator("PlexiChat Desktop - Analytics Dashboard")
    font_path = _find_font()
    if font_path is not None:
        pdf.add_font("body", "", str(font_path))
        bold = font_path.with_name(font_path.stem + "-Bold.ttf")
        # Table headings are bold: without the bold face, fpdf2 refuses to draw them.
        pdf.add_font("body", "B", str(bold if bold.is_file() else font_path))
        family = "body"

        def clean(text: str) -> str:
            return text
    else:
        family = "helvetica"

        def clean(text: str) -> str:
            return text.encode("latin-1", "replace").decode("latin-1")

    pdf.add_page()
    pdf.set_font(family, size=17)
    pdf.cell(0, 9, clean(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, size=9.5)
    pdf.set_text_color(90, 98, 112)
    pdf.cell(0, 6, clean(subtitle), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    if summary:
        pdf.ln(2)
        pdf.set_font(family, size=10)
        for key, value in summary.items():
            pdf.multi_cell(0, 5.5, clean(f"{key.replace('_', ' ')}: {_text(value)}"),
                           new_x="LMARGIN", new_y="NEXT")
    column = main_column(columns, rows)
    if column is not None and rows:
        _bar_chart(pdf, family, clean, [str(r[0]) for r in rows],
                   [float(r[column]) for r in rows], columns[column])
    pdf.ln(3)
    pdf.set_font(family, size=8.5 if len(columns) > 4 else 9.5)
    if rows:
        from fpdf.fonts import FontFace

        numeric = [all(isinstance(r[i], int | float) and not isinstance(r[i], bool)
                       for r in rows) for i in range(len(columns))]
        pdf.set_draw_color(210, 214, 222)
        with pdf.table(text_align=tuple("RIGHT" if n else "LEFT" for n in numeric),
                       line_height=5.2, first_row_as_headings=True, repeat_headings=1,
                       headings_style=FontFace(emphasis="BOLD", fill_color=(232, 236, 242)),
                       cell_fill_color=(246, 247, 249), cell_fill_mode="ROWS",
                       borders_layout="HORIZONTAL_LINES") as table:
            header = table.row()
            for name in columns:
                header.cell(clean(name.replace("_", " ")))
            for source in rows:
                row = table.row()
                for cell in source:
                    row.cell(clean(_text(cell)))
    else:
        pdf.cell(0, 6, "No rows in this period.", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _bar_chart(pdf: Any, family: str, clean: Any, labels: list[str], values: list[float],
               name: str) -> None:
    """Bars of ``values`` drawn with PDF rectangles, the largest labelled."""
    pdf.ln(3)
    left, width, height = pdf.l_margin, pdf.w - pdf.l_margin - pdf.r_margin, 42.0
    top = pdf.get_y()
    if top + height + 12 > pdf.h - pdf.b_margin:
        pdf.add_page()
        top = pdf.get_y()
    peak = max(values) if values and max(values) > 0 else 1.0
    pdf.set_font(family, size=8)
    pdf.set_text_color(90, 98, 112)
    highest = max(values)
    shown = _text(int(highest)) if highest == int(highest) else _text(highest)
    pdf.cell(0, 4, clean(f"{name.replace('_', ' ')} (highest {shown})"),
             new_x="LMARGIN", new_y="NEXT")
    top += 5
    step = width / max(1, len(values))
    gap = min(step * 0.2, 1.5)
    pdf.set_fill_color(53, 99, 233)
    for i, value in enumerate(values):
        bar = height * (value / peak)
        if bar > 0:
            pdf.rect(left + i * step + gap / 2, top + height - bar, max(step - gap, 0.2),
                     bar, style="F")
    pdf.set_draw_color(180, 186, 196)
    pdf.line(left, top + height, left + width, top + height)
    pdf.set_fill_color(255, 255, 255)  # the table after the chart must not inherit the blue
    pdf.set_xy(left, top + height + 0.5)
    pdf.cell(width / 2, 4, clean(labels[0]))
    pdf.cell(width / 2, 4, clean(labels[-1]), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)


def _parse(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC)
    except ValueError:
        return None


def day_text(value: str | None) -> str:
    """``6 Dec 2026`` from an ISO timestamp (``?`` when missing)."""
    moment = _parse(value)
    return "?" if moment is None else f"{moment.day} {moment:%b %Y}"


def moment_text(value: str | None) -> str:
    """``6 Dec 2026 09:03 UTC`` from an ISO timestamp (``?`` when missing)."""
    moment = _parse(value)
    return "?" if moment is None else f"{moment.day} {moment:%b %Y %H:%M} UTC"


def stamp(now: dt.datetime | None = None) -> str:
    """``20261206-0815`` (UTC), for file names."""
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d-%H%M%S")
