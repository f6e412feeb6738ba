"""The establishment portal's bulk filing: a CSV file, one request a row.

Columns: subject_id, sub_service_code, description, mobile (required in the header), then
optional email and locale, the sub-service's fields as `field.<name>`, documents already
uploaded as `document_ids` (ids separated by spaces or semicolons) or `document.<kind>`
columns, and `cites_request_number`, the establishment's rejected request the row corrects.
Only the file's shape is checked here; what the values may be, intake decides. The file is UTF-8
text (Excel's "CSV UTF-8"; its "Unicode Text", UTF-16, is refused by name), its cells separated by
commas, or by semicolons when its header has none (Excel where the decimal separator is a comma);
columns left unnamed at the header's end (a comma ending every line), and empty cells a row ends
with past the header's last column (Excel's comma for a column once filled then cleared), are
nothing while empty.

Each row's idempotency key is derived from the establishment, the day (Riyadh's) and the
row's content, so a file uploaded again that day files nothing twice and answers the same
request numbers, and the same row on a later day is a new request (intake refuses it while the
earlier one is open).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import date

from tawasul_platform.i18n import Bilingual, Noun, at_most

REQUIRED = ("subject_id", "sub_service_code", "description", "mobile")
OPTIONAL = ("email", "locale", "document_ids", "cites_request_number")
FIELD_PREFIX = "field."
DOCUMENT_PREFIX = "document."
# Keys of rows filed in bulk: uuid5 in a namespace of their own.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://tawasul.example/establishment/bulk")
_ROWS = Noun("row", "rows", "صف واحد", "صفان", "صفوف", "صفًا", "صف")
_IDS = re.compile(r"[\s;]+")
_DOCUMENT_AT = re.compile(r"document_ids\[(\d+)\]")
# How Excel shows, and saves, a number of 12 digits or more in a General column
# (966551234567 as 9.66551E+11): the digits past the sixth are gone.
_SCIENTIFIC = re.compile(r"[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+")
# A catalog's sub-service code, as reports.general-inquiry.
_CODE = re.compile(r"[a-z0-9-]+\.[a-z0-9-]+")
_BOM = "\ufeff"


class BadFile(ValueError):
    """The file as a whole cannot be read: `fields` names what is wrong."""

    def __init__(self, fields: dict[str, Bilingual]) -> None:
        self.fields = fields
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))


@dataclass(frozen=True)
class Row:
    """One request of the file; `number` counts the file's rows after the header from 1,
    blank ones included, as a spreadsheet shows them. `document_columns[i]` is the column
    `document_ids[i]` came from."""

    number: int
    subject_id: str
    sub_service_code: str
    description: str
    mobile: str
    email: str = ""
    locale: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    document_ids: tuple[str, ...] = ()
    document_columns: tuple[str, ...] = ()
    cites_request_number: str = ""

    def column(self, name: str) -> str:
        """The file's column that intake's field `name` (in a refusal) came from."""
        if name.startswith("contact."):
            return name.removeprefix("contact.")
        if name.startswith("fields."):
            return FIELD_PREFIX + name.removeprefix("fields.")
        if found := _DOCUMENT_AT.fullmatch(name):
            index = int(found[1])
            if index < len(self.document_columns):
                return self.document_columns[index]
        return name

    def content(self) -> str:
        """What the row asks, whatever its place in the file."""
        content: dict[str, object] = {
            "subject_id": self.subject_id,
            "sub_service_code": self.sub_service_code,
            "description": self.description,
            "mobile": self.mobile,
            "email": self.email,
            "locale": self.locale,
            "fields": dict(sorted(self.fields.items())),
            "document_ids": list(self.document_ids),
        }
        # Only when there: a row citing no request keeps the key it had before the column was.
        if self.cites_request_number:
            content["cites_request_number"] = self.cites_request_number
        return json.dumps(content, ensure_ascii=False, separators=(",", ":"))

    def idempotency_key(self, establishment: str, day: date) -> str:
        """The same establishment, day and content give the same key. The day bounds it: the
        same row months later (a worker's yearly exit and re-entry) files anew rather than
        being answered with a request long closed."""
        return str(uuid.uuid5(NAMESPACE, f"{establishment}|{day.isoformat()}|{self.content()}"))


@dataclass(frozen=True)
class BadRow:
    """A row whose shape is wrong (a cell too many or too few): not sent to intake."""

    number: int
    fields: dict[str, str]


def parse(data: bytes, *, max_rows: int) -> list[Row | BadRow]:
    """The file's rows, blank ones skipped (but counted); BadFile when it cannot be read at
    all. A row whose quote is left open swallows the rows after it up to the next quote: a
    row read across lines one of which looks like a row of its own is refused, not filed with
    other rows inside its cells; and a row repeating an earlier one is refused as that one."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise BadFile({"file": _utf16()})
    try:
        # Not guessed when it is not UTF-8: a wrong guess would file IDs and names garbled.
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadFile({"file": _not_utf8(exc.start)}) from None
    # A file saved again with a BOM may start with two: none is the first column's name.
    text = text.lstrip(_BOM)
    lines = list(io.StringIO(text, newline=""))
    delimiter = _delimiter(lines[0] if lines else "")
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = [name.strip() for name in next(reader, [])]
    except csv.Error as exc:
        raise BadFile({"header": Bilingual(str(exc), "تعذرت قراءة صف العناوين")}) from None
    # Columns left unnamed after the last named one (a comma ending every line, as some
    # exports write) are nothing while no row has a value in them, as are a row's own.
    while header and not header[-1]:
        header.pop()
    _check_header(header)
    # Rows are numbered by record (a blank line is one, []), as a spreadsheet shows a cell's
    # line breaks within one row; the file's lines only tell what an open quote swallowed.
    number = 0
    read = reader.line_num
    rows: list[Row | BadRow] = []
    first: dict[str, int] = {}  # each row's content, and where it first stood
    try:
        for cells in reader:
            number += 1
            start, read = read, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) + 1 > max_rows:
                most = at_most(_ROWS, max_rows)
                raise BadFile({"file": Bilingual(f"{most} a file", f"{most.ar} في الملف")})
            # The k-th line after the row's first, a row of its own, is row number + k.
            swallowed = [
                number + offset
                for offset, line in enumerate(lines[start + 1 : read], start=1)
                if _looks_like_a_row(line, header, delimiter)
            ]
            if swallowed:
                rows.append(_open_quote(number, swallowed))
                # Its lines are rows, as its refusal numbers them and as the file reads once
                # the quote is closed: the rows after it keep those numbers.
                number += read - start - 1
                continue
            row = _row(number, header, cells)
            if isinstance(row, Row):
                content = row.content()
                if content in first:
                    row = _repeated(number, first[content])
                else:
                    first[content] = number
            rows.append(row)
    except csv.Error as exc:
        raise BadFile({f"rows[{number + 1}]": Bilingual(str(exc), "تعذرت قراءة الصف")}) from None
    if not rows:
        raise BadFile({"file": Bilingual("no rows after the header", "لا صفوف بعد صف العناوين")})
    return rows


# How to save a file Excel wrote otherwise as the one kind of file read here.
_SAVE_AS_CSV_UTF8 = Bilingual(
    'in Excel, save the file again with File, Save As, and as the type "CSV UTF-8 (Comma '
    'delimited)"',
    "في Excel احفظ الملف من جديد من «ملف» ثم «حفظ باسم»، واختر نوع الملف الذي يبدأ بـ CSV UTF-8",
)


def _not_utf8(at: int) -> Bilingual:
    """Most often Excel's plain "CSV (Comma delimited)", which on Arabic Windows writes
    Windows-1256: how to save it as UTF-8."""
    return Bilingual(
        f"not UTF-8 text (byte {at}): {_SAVE_AS_CSV_UTF8}",
        f"ليس نصًا بترميز UTF-8 (البايت {at}): {_SAVE_AS_CSV_UTF8.ar}",
    )


def _utf16() -> Bilingual:
    """Excel's "Unicode Text" (UTF-16, tab-separated): named as such, as "not UTF-8 at byte 0"
    is not what someone who chose "Unicode" reads as their file's encoding. Refused rather
    than read, so that the file is the one kind the page asks for."""
    return Bilingual(
        f'UTF-16 text, as Excel\'s "Unicode Text" saves it, not UTF-8: {_SAVE_AS_CSV_UTF8}',
        f"نص بترميز UTF-16 كما يحفظه Excel بنوع «نص Unicode»، لا UTF-8: {_SAVE_AS_CSV_UTF8.ar}",
    )


def _delimiter(first_line: str) -> str:
    """The file's separator, by its header: a header with no comma cannot be read as
    comma-separated (the required columns are four), and one with ';' is Excel's CSV where
    the decimal separator is a comma. The header alone decides: no row's content can."""
    return ";" if "," not in first_line and ";" in first_line else ","


def _looks_like_a_row(line: str, header: list[str], delimiter: str) -> bool:
    """Whether a line read into a cell is a row of its own: its cells at least as many as the
    header's named columns (a row may end with unnamed ones) and, where subject_id stands, a
    person's ten-digit ID (in any script's digits, as Arabic-Indic ones typed) or, where
    sub_service_code stands, a catalog code (a row whose ID is mistyped is a row still). A
    line of a multi-line description, commas and all, is neither."""
    cells = next(csv.reader([line], delimiter=delimiter), [])
    if len(cells) < len(header):
        return False
    subject = cells[header.index("subject_id")].strip()
    code = cells[header.index("sub_service_code")].strip()
    return (len(subject) == 10 and subject.isdecimal()) or bool(_CODE.fullmatch(code))


def _open_quote(number: int, swallowed: list[int]) -> BadRow:
    rows = ", ".join(str(n) for n in swallowed)
    return BadRow(
        number,
        {
            "row": Bilingual(
                f'a quote (") opened in this row closes only further down, so row(s) {rows} '
                "were read into it: check its quotes",
                f'علامة تنصيص (") فُتحت في هذا الصف ولم تُغلق إلا بعده، فقُرئ فيه الصف (الصفوف) '
                f"{rows}: راجع علامات التنصيص",
            )
        },
    )


def _repeated(number: int, first: int) -> BadRow:
    return BadRow(
        number,
        {
            "row": Bilingual(
                f"the same as row {first}, which files it once",
                f"مطابق للصف {first}، ويُقدَّم مرة واحدة",
            )
        },
    )


def _check_header(header: list[str]) -> None:
    problems: dict[str, Bilingual] = {}
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        problems["header"] = Bilingual(
            f"missing column(s): {', '.join(missing)}", f"أعمدة ناقصة: {'، '.join(missing)}"
        )
    unnamed = [f"{n} ({_letters(n)})" for n, name in enumerate(header, start=1) if not name]
    if unnamed:
        # Named by place: the cells under a column with no name would be lost unsaid.
        one = len(unnamed) == 1
        problems["header.(empty)"] = Bilingual(
            f"column{'' if one else 's'} {', '.join(unnamed)} "
            f"{'has' if one else 'have'} no name: name {'it' if one else 'them'} (a "
            f"sub-service's field as field.<name>) or delete {'it' if one else 'them'}",
            f"{'العمود' if one else 'الأعمدة'} {'، '.join(unnamed)} "
            f"{'بلا اسم' if one else 'بلا أسماء'}: {'سمِّه' if one else 'سمِّها'} (حقل الخدمة "
            f"الفرعية باسم field.<name>) أو {'احذفه' if one else 'احذفها'}",
        )
    for name in filter(None, header):
        known = name in REQUIRED or name in OPTIONAL
        prefixed = any(
            name.startswith(prefix) and len(name) > len(prefix)
            for prefix in (FIELD_PREFIX, DOCUMENT_PREFIX)
        )
        if not (known or prefixed):
            problems[f"header.{name}"] = Bilingual(
                "unknown column; sub-service fields are named field.<name>",
                "عمود غير معروف؛ تُسمّى حقول الخدمة الفرعية field.<name>",
            )
    duplicates = sorted({name for name in header if name and header.count(name) > 1})
    if duplicates:
        problems["header.repeated"] = Bilingual(
            f"repeated column(s): {', '.join(duplicates)}",
            f"أعمدة مكررة: {'، '.join(duplicates)}",
        )
    if problems:
        raise BadFile(problems)


def _row(number: int, header: list[str], cells: list[str]) -> Row | BadRow:
    """`header` the named columns; the cells past them (the header's unnamed columns, or a
    comma the row ends with that the header's line has not) may be empty, not filled."""
    if len(cells) < len(header):
        return BadRow(
            number,
            {
                "row": Bilingual(
                    f"{len(cells)} cells where the header has {len(header)} columns",
                    f"عدد الخلايا {len(cells)} وعدد أعمدة صف العناوين {len(header)}",
                )
            },
        )
    unnamed = [
        f"{n} ({_letters(n)})"
        for n, cell in enumerate(cells[len(header) :], start=len(header) + 1)
        if cell.strip()
    ]
    if unnamed:
        one = len(unnamed) == 1
        said = Bilingual(
            f"{'a value' if one else 'values'} in column{'' if one else 's'} "
            f"{', '.join(unnamed)}, which the header leaves unnamed: name "
            f"{'the column or empty it' if one else 'the columns or empty them'}",
            f"{'قيمة في العمود' if one else 'قيم في الأعمدة'} {'، '.join(unnamed)} "
            f"{'ولا اسم له' if one else 'ولا أسماء لها'} في صف العناوين: "
            f"{'سمِّ العمود أو أفرغه' if one else 'سمِّ الأعمدة أو أفرغها'}",
        )
        return BadRow(number, {"row": said})
    values = dict(zip(header, (cell.strip() for cell in cells), strict=False))
    # Only where a number is asked for: a description may say "2E+3" on purpose.
    mangled: dict[str, str] = {
        name: _scientific(value)
        for name, value in values.items()
        if (name in _NUMBERS or name.startswith(FIELD_PREFIX)) and _SCIENTIFIC.fullmatch(value)
    }
    if mangled:
        return BadRow(number, mangled)
    documents = [("document_ids", d) for d in _IDS.split(values.get("document_ids", "")) if d]
    documents += [(k, v) for k, v in values.items() if k.startswith(DOCUMENT_PREFIX) and v]
    return Row(
        number=number,
        subject_id=values["subject_id"],
        sub_service_code=values["sub_service_code"],
        description=values["description"],
        mobile=values["mobile"],
        email=values.get("email", ""),
        locale=values.get("locale", ""),
        fields={
            k.removeprefix(FIELD_PREFIX): v
            for k, v in values.items()
            if k.startswith(FIELD_PREFIX) and v
        },
        document_ids=tuple(d for _, d in documents),
        document_columns=tuple(column for column, _ in documents),
        cites_request_number=values.get("cites_request_number", ""),
    )


_NUMBERS = frozenset({"subject_id", "mobile", "cites_request_number"})


def _scientific(value: str) -> Bilingual:
    return Bilingual(
        f"{value} is how Excel shows a long number, its last digits lost: format the column as "
        "Text, type the number again, and save the file again",
        f"{value} هو ما يعرضه Excel لرقم طويل وقد ضاعت آخر أرقامه: اجعل تنسيق العمود «نص» "
        "واكتب الرقم من جديد ثم احفظ الملف مرة أخرى",
    )


def _letters(column: int) -> str:
    """A spreadsheet's name of its `column`-th column (from 1): A, ..., Z, AA, ..."""
    letters = ""
    while column:
        column, rest = divmod(column - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters
