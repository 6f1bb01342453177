"""CSV files written for spreadsheets: formula-looking cells neutralised by the OWASP rule, in one place."""

import csv
import io
import re

import pytest

from softserve import spreadsheet
from tests.conftest import ROOT

REAL_TEXT = [
    "=== Houston re-signs Vizcaino === The Astros kept their shortstop.",
    "@united my flight was cancelled again",
    "+1 would buy again",
    "-5 degrees and the bus did not come",
    "\tindented by a tab",
    "\rcarriage return first",
    '=HYPERLINK("http://x","y")',
    "=cmd|' /C calc'!A0",
]
PLAIN = ["a fine review", "'already quoted", " =not first", "5 stars", "naïve café 🎉", "東京の天気", ""]


@pytest.mark.parametrize("text", REAL_TEXT)
def test_a_formula_start_gets_a_leading_quote(text):
    assert spreadsheet.neutralise(text) == "'" + text


@pytest.mark.parametrize("text", PLAIN)
def test_other_text_is_left_alone(text):
    assert spreadsheet.neutralise(text) == text


def test_owasp_examples_are_written_as_the_rule_says():
    # The two examples of OWASP's "CSV Injection" page: quote added, cell quoted, inner quotes doubled.
    assert list(spreadsheet.csv_lines([['=1+2";=1+2']])) == ['"\'=1+2"";=1+2"\r\n']
    assert list(spreadsheet.csv_lines([["=1+2'\" ;,=1+2"]])) == ['"\'=1+2\'"" ;,=1+2"\r\n']


def test_separators_and_quotes_never_open_a_new_cell():
    hostile = ['ok", =1+2', 'x","@SUM(A1)', "a;@SUM(A1)", "line\n=2+2", '=1+2";=1+2']
    rows = [["id", "text"], *[[i, text] for i, text in enumerate(hostile)], [None, 7.5]]
    text = "".join(spreadsheet.csv_lines(rows))
    back = list(csv.reader(io.StringIO(text, newline="")))
    # Each value stays one cell (quotes doubled, separators inside quotes), exact but for a leading `'`.
    expected = [[str(i), spreadsheet.neutralise(t)] for i, t in enumerate(hostile)]
    assert back == [["id", "text"], *expected, ["", "7.5"]]
    assert all(not cell.startswith(spreadsheet.FORMULA_STARTS) for row in back for cell in row)
    # A one-column file read with `;` (what a spreadsheet may guess) still has one cell per value.
    single = "".join(spreadsheet.csv_lines([[t] for t in hostile]))
    assert list(csv.reader(io.StringIO(single, newline=""), delimiter=";")) == [
        [spreadsheet.neutralise(t)] for t in hostile
    ]


def test_csv_response_is_a_neutralised_attachment():
    response = spreadsheet.csv_response("rows é.csv", ["text", "label"], [[t, "-1"] for t in REAL_TEXT])
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment; filename*=utf-8''rows%20%C3%A9.csv")
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(body, newline="")))
    assert rows[0] == ["text", "label"]
    assert rows[1:] == [["'" + t, "'-1"] for t in REAL_TEXT]


WRITER = re.compile(r"csv\.(writer|DictWriter)\b|text/csv")


def test_every_csv_writer_goes_through_the_helper():
    """The first CSV export anyone adds to the platform or the web UI must use softserve.spreadsheet."""
    helper = ROOT / "platform" / "softserve" / "spreadsheet.py"
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("platform", "webui")
        for path in (ROOT / folder).rglob("*")
        if path.suffix in (".py", ".html") and path != helper and WRITER.search(path.read_text())
    ]
    assert offenders == []
    assert WRITER.search(helper.read_text())  # the guard looks for what the helper itself uses
