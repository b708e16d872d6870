"""CSV files as spreadsheets write them, read the one way every import reads them.

Excel and Google Sheets write CRLF, Excel for Mac and some exports a bare CR, Unix tools
LF; Excel's "CSV UTF-8" starts with a byte-order mark; any cell may be quoted and hold a
comma or a line break. Participant imports, catalog feeds and code-pool uploads all take
such files (over HTTP and from the CLI), so they share this reader: one bad row is
reported in words a program manager understands and the rest of the file goes on.

Row numbers are the spreadsheet's: the header is row 1, the first record row 2.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence

import msgspec

from kernel.errors import Invalid

BOM = "\ufeff"
# Python's own default: a cell longer than this is a broken file, not data.
MAX_CELL = csv.field_size_limit()
# Far beyond any face value or count a spreadsheet holds, and below every integer type a
# store uses (SQLite and Postgres hold 2^63 - 1): a longer number is refused in words.
MAX_WHOLE_NUMBER = 2**53 - 1
# What a spreadsheet reads as the start of a formula (OWASP's list: a leading TAB or CR can
# also start one once the cell is trimmed).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text: str) -> str:
    """A cell for an export: a spreadsheet must not run what a participant or partner typed."""
    return "'" + text if text[:1] in FORMULA_STARTS else text


class Row(msgspec.Struct, frozen=True):
    """One record: its spreadsheet row number and its cells by (normalised) column name,
    stripped (a row shorter than the header lacks the last ones). `problem` says why the
    row cannot be used, when it cannot."""

    number: int
    cells: dict[str, str]
    problem: str | None = None

    def get(self, column: str) -> str | None:
        """The cell's text, or None when it is empty."""
        return self.cells.get(column) or None


class Sheet(msgspec.Struct, frozen=True):
    columns: list[str]
    rows: Iterator[Row]


def column_name(text: str) -> str:
    """`External ID ` and `external_id` name the same column."""
    return re.sub(r"[\s-]+", "_", text.strip().lstrip(BOM).strip()).lower()


def read_sheet(text: str, required: Sequence[str], known: Sequence[str]) -> Sheet:
    """Reads the header now (a file without the required columns is refused as a whole)
    and the rows lazily. Blank lines and rows whose cells are all empty are skipped."""
    text = text.removeprefix(BOM)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    try:
        header = next(reader, [])
    except csv.Error:
        header = []
    columns = [column_name(cell) for cell in header]
    missing = [c for c in required if c not in columns]
    if missing:
        raise Invalid(f"the CSV's first row must be a header naming {', '.join(missing)} "
                      f"(columns: {', '.join(known)})")
    return Sheet(columns=columns, rows=_rows(reader, columns))


def _delimiter(text: str) -> str:
    """Excel in a locale whose decimal mark is a comma (German, French, ...) separates cells
    with `;`, and a sheet pasted from elsewhere may use TAB: the header line says which
    (a column name never holds a comma)."""
    first = re.split(r"[\r\n]", text, maxsplit=1)[0]
    if "," not in first:
        for candidate in (";", "\t"):
            if candidate in first:
                return candidate
    return ","


def _rows(reader: Iterator[list[str]], columns: list[str]) -> Iterator[Row]:
    number = 1
    while True:
        number += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error:
            # A cell past the size limit: the reader drops the rest of that line and goes on.
            yield Row(number=number, cells={}, problem=f"a cell is longer than {MAX_CELL:,} characters")
            continue
        if not any(cell.strip() for cell in cells):
            continue
        named = {column: cell.strip() for column, cell in zip(columns, cells) if column}
        yield Row(number=number, cells=named, problem=_unstorable(named))


def _unstorable(cells: dict[str, str]) -> str | None:
    return next((problem for column, value in cells.items() if (problem := text_problem(column, value))), None)


def text_problem(column: str, value: str) -> str | None:
    """Why a text value cannot be stored (SQL refuses NUL and lone surrogates), or None."""
    if "\x00" in value:
        return f"{column} contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{column} is not valid text (it holds a lone surrogate)"
    return None


def whole_number(value: object, column: str, unit: str) -> int | None:
    """A cell (or a JSON feed's value) as a whole number of `unit`; None when empty.

    `12.5`, `1e3`, `lots` and numbers longer than any store holds are refused with the
    column's name and the value given, never Python's own words."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and (digits := re.fullmatch(r"\s*([+-]?)0*(\d+)\s*", value)):
        # Never int() on thousands of digits (Python refuses past 4,300, in its own words).
        number = int(digits.group(1) + digits.group(2)) if len(digits.group(2)) <= 20 else MAX_WHOLE_NUMBER + 1
    else:
        raise Invalid(f"{column} must be a whole number of {unit}, got {_shown(value)}", field=column)
    if abs(number) > MAX_WHOLE_NUMBER:
        raise Invalid(f"{column} is too large (at most {MAX_WHOLE_NUMBER:,} {unit}), got {_shown(value)}",
                      field=column)
    return number


def _shown(value: object) -> str:
    # Values come from a CSV cell (text) or a JSON feed (JSON types only).
    text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
    return f'"{text[:40]}…"' if len(text) > 40 else f'"{text}"'


_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_PHRASES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^Expected `str` of length <= (\d+)"), "{field} must be at most {0} characters"),
    (re.compile(r"^Expected `str` of length >= 1"), "{field} is required"),
    (re.compile(r"^Expected `str` of length >= (\d+)"), "{field} must be at least {0} characters"),
    (re.compile(r"^Expected `array` of length <= (\d+)"), "{field} may list at most {0} values"),
    (re.compile(r"^Expected `str` matching regex"), "{field} is not in the expected form"),
    (re.compile(r"^Expected `\w+`, got `null`"), "{field} is required"),
    (re.compile(r"^Object missing required field `([^`]+)`"), "{0} is required"),
    (re.compile(r"^Object contains unknown field `([^`]+)`"), "{0} is not a known column"),
    (re.compile(r"^Invalid enum value '([^']*)'"), "{field} \"{0}\" is not one of the allowed values"),
    (re.compile(r"^Expected `int` >= (-?\d+)"), "{field} must be at least {0}"),
    (re.compile(r"^Expected `int` <= (-?\d+)"), "{field} must be at most {0}"),
    (re.compile(r"^Expected `(\w+)`, got `(\w+)`"), "{field} must be {0}, not {1}"),
]


def describe(exc: msgspec.ValidationError) -> str:
    """msgspec's message about a row, in a program manager's words: `display_name must be
    at most 200 characters` rather than ``Expected `str` of length <= 200 - at `$.display_name` ``."""
    message = str(exc)
    at = _AT.search(message)
    field = re.sub(r"\[\d+\]$", "", at.group("path")) if at and at.group("path") else "a value"
    reason = message[:at.start()] if at else message
    for pattern, words in _PHRASES:
        found = pattern.match(reason)
        if found:
            return words.format(*found.groups(), field=field)
    return f"{field}: {reason}"


def read_file(path: str) -> str:
    """A CSV file's text for the CLI: UTF-8 with or without Excel's byte-order mark, line
    endings untouched (read_sheet takes them all). Anything else is refused in words."""
    try:
        data = open(path, "rb").read()
    except OSError as exc:
        raise Invalid(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid(f"{path} is not UTF-8 text: in Excel, save it as \"CSV UTF-8 (Comma delimited)\"; "
                      "in Google Sheets, File > Download > CSV") from None
