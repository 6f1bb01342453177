"""Every CSV file the platform writes for people to open goes through here (CSV / formula injection).

Uploaded text is stored exactly as sent (`=== Heading ===`, `@user …` and `+1 …` are ordinary training
text). The danger is a spreadsheet opening a file: Excel, LibreOffice and Google Sheets run a cell
that begins with `=`, `+`, `-` or `@` (and, after their own trimming, a tab or carriage return) as a
formula — `=HYPERLINK(…)`, `=cmd|' /C calc'!A0`. So the neutralising happens at the point of writing,
by the OWASP "CSV Injection" rule:

- a cell that begins with `=`, `+`, `-`, `@`, tab or carriage return gets a leading single quote `'`,
  which spreadsheets read as "this cell is text" (and do not show);
- every cell is wrapped in double quotes and every double quote in it is doubled, so a field separator
  (`,` or `;`, whichever the spreadsheet guesses) or a quote inside a value never starts a new cell
  whose first character would then be a formula.

OWASP's own example: `=1+2";=1+2` is written as `"'=1+2"";=1+2"`.

No page or endpoint exports CSV today (dataset downloads are the normalised JSONL, which spreadsheets
do not evaluate). `tests/test_spreadsheet.py` checks that any CSV writer in `platform/` or `webui/`
lives here, so the first export cannot bypass the rule.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain

from django.http import StreamingHttpResponse
from django.utils.http import content_disposition_header

# The characters a spreadsheet takes as the start of a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CONTENT_TYPE = "text/csv; charset=utf-8"


def neutralise(value: object) -> str:
    """The cell's text as a spreadsheet must see it: a formula-looking start gets a leading `'`."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Line:
    """A file-like object whose write returns the line, so csv.writer can be streamed row by row."""

    def write(self, line: str) -> str:
        return line


def csv_lines(rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """Each row as one CSV line: every cell neutralised, quoted, and its quotes doubled."""
    writer = csv.writer(_Line(), quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    for row in rows:
        yield writer.writerow([neutralise(cell) for cell in row])


def csv_response(
    filename: str, header: Sequence[str], rows: Iterable[Sequence[object]]
) -> StreamingHttpResponse:
    """A streamed CSV download (header first), safe to open in a spreadsheet."""
    response = StreamingHttpResponse(csv_lines(chain([header], rows)), content_type=CONTENT_TYPE)
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response
