"""Per-page split rules, pure and light: page facts, the address window, markers and evidence. No I/O here.

This is the part of the domain that the text-extraction worker processes run. It imports nothing but the standard
library, :mod:`smartpost_shared.vocabulary` and :mod:`smartpost_shared.postal`, so a spawned worker does not load
pydantic and the contract models (measured: 18 MB less per worker). :mod:`smartpost_splitter.domain` builds on it.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from smartpost_shared.postal import is_postal_endorsement
from smartpost_shared.vocabulary import SplitStrategy

MM = 72.0 / 25.4
A4_PORTRAIT_PT = (595.28, 841.89)
A4_TOLERANCE_PT = 2 * MM  # GOV.UK Notify accepts +-2 mm; exports rounding to 595 x 842 pass

# DIN 5008 address field (domain.md (c)): 20 mm from the left, 85 mm wide, top at 27 mm (form A) / 45 mm (form B);
# the recipient ("Anschriftzone") is the lower 27.3 mm, under the 17.7 mm remark zone with the sender line.
ADDRESS_LEFT_MM = 20.0
ADDRESS_WIDTH_MM = 85.0
ADDRESS_FIELD_TOP_MM = {"A": 27.0, "B": 45.0}
REMARK_ZONE_MM = 17.7
ADDRESS_FIELD_HEIGHT_MM = 45.0
MAX_ADDRESS_LINES = 6

# Layout fingerprint: the normalised text lines of the letter head (top 100 mm: letterhead, sender line, address
# field, information block). Measured on generated letters: first pages share >= 0.54 of the sample's head lines,
# continuation pages 0.0 (body text starts higher and differs), so 0.35 leaves room on both sides.
FINGERPRINT_TOP_MM = 100.0
DEFAULT_SIMILARITY = 0.35

# Evidence patterns. Extractors that keep reading order may join label and value with a newline or nothing
# (pdf-performance.md), so every separator is whitespace-tolerant including none.
# Every quantifier is bounded: the patterns run in linear time on any page (a megabyte of tabs after a label).
# "Unser Zeichen" (our reference, DIN 5008 information block) counts; "Ihr Zeichen" is the recipient's own number.
# "Debitor" / "Debitorennummer" is the customer number in accounting-led ERPs; "Pers.-Kto", "Vertrag E-0001234",
# "Kd.-Nr." are the abbreviations of line-printer exports ("Verw.-Nr." is left out: often the property's number).
DEFAULT_IDENTIFIER_PATTERNS = (
    (
        # The lookahead only makes the search fast (one character test per position before the alternatives:
        # 0.24 -> 0.10 ms per page); it names the first letter of every label below.
        r"(?i:(?=[kmeprdu])(?:kontakt|kunden|kd\.?|mieter|eigentümer|eigentuemer|eigent\.?|personen|pers\.?"
        r"|referenz)[-\s]{0,3}(?:nr\.?|nummer|id|konto|kto\.?)"
        r"|debitor(?:en)?(?:[-\s]{0,3}(?:nr\.?|nummer|konto))?|unser[ \t]{1,3}zeichen|ref\.)"
        r"[ \t]{0,20}:?\s{0,20}"
        r"(?P<value>[A-Z]{1,3}-?\d{3,12}|\d{3,12})\b"
    ),
    # A contract number: "Vertrag E-0001234", "Vertrags-Nr. 4711", "Vertragskonto …". Not inside a word
    # ("Mietvertrag 2019") and never a year ("Vertrag 2024").
    (
        r"(?<![A-Za-zÄÖÜäöüß])(?i:vertrag(?:s?[-\s]{0,3}(?:nr\.?|nummer|konto|kto\.?))?)[ \t]{0,20}:?\s{0,20}"
        r"(?!(?:19|20)\d\d\b)(?P<value>[A-Z]{1,3}-?\d{3,12}|\d{3,12})\b"
    ),
)
# Property and unit as exports print them: with or without colon, in the information block, the subject line or
# the body ("Objekt: 1020", "Objekt 1020 / WE 01", "für Objekt 1020, Wohnung 01", "Liegenschaft Parkallee 7,
# 10115 Berlin", "WEG Parkallee 7", "Whg. 3", "Whg.-Nr. 03", "ME 12"). The value is a short stretch of text; the
# matcher looks the account's own property numbers, names, addresses and unit numbers up in it (a dictionary from
# master data), so a value that names nothing known does no harm. A value stops at a column separator ("·", "|",
# "–") so that a header line "WEG Parkallee 7 · Abrechnung 2024" yields the address alone.
_NUMBER_SUFFIX = r"(?:[ \t]?-?[ \t]?(?:Nr\.?|Nummer))?"
_COLON = r"[ \t]{0,20}:\s{0,20}"
_VALUE = r"(?P<value>[^\r\n·•|–]{1,80})"
_PROPERTY_LABEL = (
    r"\b(?:Objekt|OBJEKT|Liegenschaft|LIEGENSCHAFT|Verwaltungsobjekt|VERWALTUNGSOBJEKT|Wirtschaftseinheit"
    r"|WIRTSCHAFTSEINHEIT|(?:Wirtsch|WIRTSCH)\.?[ \t]?-?[ \t]?(?:Einh|EINH)\.|Obj\.|OBJ\.)"
)
_UNIT_LABEL = (
    r"\b(?:Einheit|EINHEIT|Nutzeinheit|NUTZEINHEIT|Wohneinheit|WOHNEINHEIT|Wohnung|WOHNUNG|Whg\.?|WHG\.?|Einh\.|EINH\."
    r"|WE|ME|SE|NE|Stellplatz)"
)
# "Objekt-Schl. 1880.01.0011": a legacy key (property.house.unit); the matcher keys on its leading number.
_PROPERTY_SUFFIX = (
    r"(?:[ \t]?-?[ \t]?(?:Nr\.?|Nummer|NR\.?|NUMMER|Schl\.?|SCHL\.?|Schlüssel|SCHLÜSSEL|Schluessel|SCHLUESSEL))?"
)
# "Objekt-Nr./Einh. 1020/020", "Obj./WE 1020/7": property and unit under one label pair, values split the same way.
_PAIR_LABEL = (
    r"\b(?:Objekt|OBJEKT|Obj\.|OBJ\.|Liegenschaft|LIEGENSCHAFT)" + r"(?:[ \t]?-?[ \t]?(?:Nr\.?|NR\.?))?"
    r"[ \t]?/[ \t]?(?P<label>Einheit|EINHEIT|Einh\.|EINH\.|Wohnung|WOHNUNG|Whg\.?|WHG\.?|WE|ME|SE|NE)"
    r"(?:[ \t]?-?[ \t]?(?:Nr\.?|NR\.?))?[ \t]{0,20}:?[ \t]{0,20}"
)
# A unit number is not followed by "/3", ".01" (a compound key) or ". OG" (a floor: "Wohnung 1. OG links").
_NOT_A_UNIT_NUMBER = (
    r"(?![ \t]?[/.][ \t]?\d)"
    r"(?!\.[ \t]{0,3}(?:OG|EG|DG|UG|Obergeschoss|Erdgeschoss|Dachgeschoss|Untergeschoss|Etage|Stock))"
)
PROPERTY_PATTERNS = (
    re.compile(_PAIR_LABEL.replace("(?P<label>", "(?:") + r"(?P<value>[0-9A-Z][0-9A-Z-]{0,19})(?=[ \t]?/[ \t]?\d)"),
    re.compile(_PROPERTY_LABEL + _PROPERTY_SUFFIX + _COLON + _VALUE),
    # Without colon the value must start like a reference or a name: "Objekt 1020", "Liegenschaft Parkallee 7".
    re.compile(_PROPERTY_LABEL + _PROPERTY_SUFFIX + r"[ \t]{1,20}(?!Nr\b|Nummer\b)(?=[0-9A-ZÄÖÜ])" + _VALUE),
    # "WEG Parkallee 7": the owners' association named by its address (upper case only: "Weg" is a street word).
    re.compile(r"\bWEG[ \t]{1,20}(?=[A-ZÄÖÜ])" + _VALUE),
)
UNIT_PATTERNS = (
    re.compile(_PAIR_LABEL + r"[0-9A-Z][0-9A-Z-]{0,19}[ \t]?/[ \t]?(?P<value>\d{1,4}[a-zA-Z]?)\b" + _NOT_A_UNIT_NUMBER),
    re.compile(_UNIT_LABEL + _NUMBER_SUFFIX + _COLON + r"(?P<value>[^\r\n·•|–]{1,60})"),
    # Without colon only a number (with an optional letter or a bracketed position), reported with its kind so
    # that the same unit printed twice reads the same: "Wohnung 01", "ME 12", "Whg.-Nr. 03" -> "Whg. 03".
    re.compile(
        r"(?P<label>"
        + _UNIT_LABEL
        + r")"
        + _NUMBER_SUFFIX
        + r"[ \t]{0,20}(?P<value>\d{1,4}[a-zA-Z]?\b"
        + _NOT_A_UNIT_NUMBER
        + r"(?:[ \t]{0,3}\([^)\r\n]{1,40}\))?)"
    ),
)
# Labels above their values: an information block printed as a small table ("Objekt-Nr.  Wohnung  Kunden-Nr.
# Datum" on one line, "1020  03  K-000123  01.03.2025" on the next) or a label alone on its line with the value
# on the next ("Objekt" / "1020", "Kundennummer" / "4711"). A header line must consist of known labels only (and
# name a property, unit or number), so prose never becomes a table; its values are read column by column (cells
# split at runs of two or more spaces, else at single spaces when the counts agree, else by column position);
# whatever does not line up is not read (no evidence rather than wrong evidence).
_HEAD_LABELS = (
    (
        "property",
        (
            r"(?:Objekt|Liegenschaft|Verwaltungsobjekt|Wirtschaftseinheit|Obj\.|WEG)"
            r"(?:[ \t]?-?[ \t]?(?:Nr\.?|Nummer|Bezeichnung|Name))?"
        ),
    ),
    (
        "unit",
        (
            r"(?P<unit_kind>Nutzeinheit|Wohneinheit|Einheit|Wohnung|Whg\.?|Einh\.|WE|ME|SE|NE|Stellplatz)"
            r"(?:[ \t]?-?[ \t]?(?:Nr\.?|Nummer))?"
        ),
    ),
    (
        "identifier",
        (
            r"(?:Kontakt|Kunden|Mieter|Eigentümer|Personen|Referenz)[ \t]?-?[ \t]?(?:Nr\.?|Nummer|ID|Konto)"
            r"|Personenkonto|Debitor(?:en)?(?:[ \t]?-?[ \t]?(?:Nr\.?|Nummer|Konto))?|Unser[ \t]Zeichen"
            r"|Ref\.(?:[ \t]?-?[ \t]?Nr\.?)?"
        ),
    ),
    (
        "other",
        (
            r"Datum|Seite|Blatt|Telefon|Tel\.|Telefax|Fax|E-Mail|Ihr[ \t]Zeichen|Ihre[ \t]Nachricht(?:[ \t]vom)?"
            r"|Sachbearbeiter(?:in)?|Ansprechpartner(?:in)?|Bearbeiter(?:in)?|Durchwahl|Abrechnungszeitraum"
            r"|Abrechnungsjahr|Wirtschaftsjahr|Zeitraum|Vertrag(?:s[ \t]?-?[ \t]?(?:Nr\.?|Nummer))?"
            r"|Rechnungs[ \t]?-?[ \t]?Nr\.?|Rechnungsnummer|Mandant|Betrag|Fälligkeit|Fällig[ \t]am|Jahr"
        ),
    ),
)
_HEAD_LABEL = re.compile(
    "|".join(f"(?P<{kind}>{pattern})" for kind, pattern in _HEAD_LABELS) + r"(?=[ \t]{0,3}:?(?:[ \t]|$))",
    re.IGNORECASE,
)
_HEAD_LABEL_END = re.compile(r"[ \t]{0,3}:?")
_CELL = re.compile(r"\S+(?: \S+)*")  # a cell: words separated by single spaces
_WORD = re.compile(r"\S+")
_IDENTIFIER_VALUE = re.compile(r"(?:[A-Z]{1,3}-?\d{3,12}|\d{3,12})")
_UNIT_VALUE = re.compile(r"(?:(?P<kind>[A-Za-zÄÖÜäöü.]{1,12})[ \t]?)?(?P<number>\d{1,4}[a-zA-Z]?)")
_SINGLE_VALUE_MAX = 60  # "Objekt" / "1020": the line under a lone label is a value only if it is short
_COLUMN_SLACK = 2  # characters a value may start left or right of its label
_TABLE_MAX_LINE = 300  # longer lines are prose, not an information block


@dataclass(frozen=True, slots=True)
class _HeadCell:
    kind: str
    start: int
    unit_kind: str | None


def _header_cells(line: str) -> list[_HeadCell] | None:
    """The labels of a header line if the line is made of known labels only, else None."""
    cells: list[_HeadCell] = []
    pos = len(line) - len(line.lstrip())
    while pos < len(line):
        match = _HEAD_LABEL.match(line, pos)
        if match is None:
            return None
        kind = match.lastgroup if match.lastgroup in {"property", "unit", "identifier", "other"} else None
        if kind is None:  # the unit's inner group is the last one matched
            kind = "unit"
        cells.append(_HeadCell(kind, pos, match.group("unit_kind")))
        end = _HEAD_LABEL_END.match(line, match.end())
        pos = end.end() if end else match.end()
        while pos < len(line) and line[pos] in " \t":
            pos += 1
    if not cells or all(c.kind == "other" for c in cells):
        return None
    return cells


def _value_cells(heads: list[_HeadCell], line: str) -> list[str] | None:
    """The values under ``heads``, one per label, or None if they do not line up."""
    if len(heads) == 1:
        value = line.strip()
        return [value] if value and len(value) <= _SINGLE_VALUE_MAX else None
    spaced = [(m.start(), m.group()) for m in _CELL.finditer(line.replace("\t", "  "))]
    if len(spaced) == len(heads):
        return [v for _, v in spaced]
    words = [m.group() for m in _WORD.finditer(line)]
    if len(words) == len(heads):
        return words
    # By column: the cell that starts where its label starts (allowing a little slack).
    out: list[str] = []
    for head in heads:
        near = [v for start, v in spaced if abs(start - head.start) <= _COLUMN_SLACK]
        if len(near) != 1:
            return None
        out.append(near[0])
    return out


def find_table_values(text: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(identifiers, property refs, unit refs) printed under their labels (see ``_HEAD_LABELS``)."""
    found: dict[str, list[str]] = {"identifier": [], "property": [], "unit": []}
    lines = [ln for ln in text.splitlines() if ln.strip()]
    for line, below in itertools.pairwise(lines):
        if len(line) > _TABLE_MAX_LINE or len(below) > _TABLE_MAX_LINE:
            continue
        heads = _header_cells(line)
        if heads is None or _header_cells(below) is not None:
            continue
        values = _value_cells(heads, below)
        if values is None:
            continue
        for head, raw in zip(heads, values, strict=True):
            value = _table_value(head, _WHITESPACE.sub(" ", raw).strip(" ,;:/"))
            if value is not None:
                found[head.kind].append(value)
    return unique(found["identifier"]), unique(found["property"]), unique(found["unit"])


def _table_value(head: _HeadCell, value: str) -> str | None:
    """The evidence a table cell gives under its label, or None (empty, a dash, not the label's kind of value)."""
    if not value or value in {"-", "–"}:
        return None
    if head.kind == "property":
        return value[:80]
    if head.kind == "identifier":
        return value if _IDENTIFIER_VALUE.fullmatch(value) else None
    if head.kind == "unit":
        unit = _UNIT_VALUE.fullmatch(value)
        if unit is not None:
            return f"{unit.group('kind') or head.unit_kind or 'Einheit'} {unit.group('number')}"
    return None


# Kept for callers of the old names: the first pattern of each kind.
PROPERTY_PATTERN = PROPERTY_PATTERNS[1]
UNIT_PATTERN = UNIT_PATTERNS[1]
# A page that looks like the first page of a letter: its page number is 1 ("Seite 1 von 3", "Seite 1/3", "Blatt 1",
# "- 1 -"), or it has no page number and greets the reader ("Sehr geehrte ...", "Guten Tag").
_PAGE_NUMBER_OF = re.compile(r"\b(?:Seite|Blatt|SEITE|BLATT)[ \t]{1,5}(\d{1,4})[ \t]{0,5}(?:von|/)[ \t]{0,5}\d{1,4}\b")
_PAGE_NUMBER_ALONE = re.compile(
    r"^[ \t]{0,80}(?:(?:Seite|Blatt|SEITE|BLATT)[ \t]{1,5}(\d{1,4})|-[ \t]{0,3}(\d{1,4})[ \t]{0,3}-)[ \t]{0,80}$",
    re.MULTILINE,
)
# At the end of a letterhead line ("HAUSVERWALTUNG X BLATT 2": text extraction collapses the gap before it). Read
# only in the page's first lines, where the letterhead is; further down such a line is a table of contents.
_PAGE_NUMBER_AT_END = re.compile(r"\s(?:Seite|Blatt|SEITE|BLATT)[ \t]{1,5}(\d{1,4})[ \t]{0,80}$")
_LETTERHEAD_LINES = 3
# Line-printer exports greet in capitals too ("SEHR GEEHRTE EIGENTUEMERIN,").
_SALUTATION = re.compile(
    r"^[ \t]{0,80}(?:(?i:sehr[ \t]{1,5}geehrte|guten[ \t]{1,5}tag)|Liebe[rs]?[ \t]|Hallo[ \t])", re.MULTILINE
)
FIRST_PAGE_MARK = "\x01"  # prefix of an address-block marker on a page that looks like a first page
POSTAL_CODE_LINE = re.compile(r"^(?:[A-Z]{1,2}[- ])?\d{4,5}\s+\S")
_WHITESPACE = re.compile(r"\s+")
_DIGITS = re.compile(r"\d")


@dataclass(frozen=True, slots=True)
class SplitPlan:
    """A validated split rule in the form the page scanner needs (picklable, sent to worker processes)."""

    strategy: SplitStrategy
    address_form: str = "B"
    first_page_text: str | None = None
    identifier_pattern: str | None = None
    keyword: str | None = None
    drop_separator: bool = True
    pages_per_letter: int | None = None
    sample_page: int | None = None  # 1-based
    fingerprint: frozenset[str] = frozenset()
    similarity_threshold: float = DEFAULT_SIMILARITY
    evidence_patterns: tuple[str, ...] = DEFAULT_IDENTIFIER_PATTERNS

    @property
    def needs_fingerprint(self) -> bool:
        return self.strategy is SplitStrategy.FIRST_PAGE and self.sample_page is not None


# ----------------------------------------------------------------------------------------------------------------
# Page facts
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PageFacts:
    """What the splitter needs to know about one page (small: the page text itself is not kept)."""

    index: int  # 0-based
    width_pt: float
    height_pt: float
    text_chars: int  # non-whitespace characters
    has_images: bool = False
    marker: str | None = None  # strategy-specific: identifier value, address key, "1" for a keyword/first page
    address_lines: tuple[str, ...] = ()
    identifiers: tuple[str, ...] = ()
    property_refs: tuple[str, ...] = ()
    unit_refs: tuple[str, ...] = ()
    context_lines: tuple[str, ...] = ()  # only on pages with an address (see context_lines)
    thumbnail: bytes | None = None

    @property
    def is_blank(self) -> bool:
        return self.text_chars == 0 and not self.has_images

    @property
    def needs_ocr(self) -> bool:
        return self.text_chars == 0 and self.has_images

    @property
    def is_a4_portrait(self) -> bool:
        width, height = A4_PORTRAIT_PT
        return abs(self.width_pt - width) <= A4_TOLERANCE_PT and abs(self.height_pt - height) <= A4_TOLERANCE_PT


def address_zone_mm(form: str) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the DIN 5008 "Anschriftzone" in millimetres from the top-left corner."""
    top = ADDRESS_FIELD_TOP_MM[form] + REMARK_ZONE_MM
    return (ADDRESS_LEFT_MM, top, ADDRESS_LEFT_MM + ADDRESS_WIDTH_MM, ADDRESS_FIELD_TOP_MM[form] + 45.0)


def clean_lines(text: str) -> list[str]:
    return [line for line in (_WHITESPACE.sub(" ", raw).strip() for raw in text.splitlines()) if line]


def address_from_zone(zone_text: str, beside_text: str) -> tuple[str, ...]:
    """The recipient lines if the window zone holds a plausible address, else ``()``.

    Plausible: 2-6 lines, one of them a postal-code line, and nothing printed directly right of the window at the
    same height (continuation pages run body text straight through the zone; an address block stops at 105 mm).
    """
    # "Einschreiben Einwurf", a tracking number: how the letter travels, not who gets it (smartpost_shared.postal).
    lines = [line for line in clean_lines(zone_text) if not is_postal_endorsement(line)]
    if not 2 <= len(lines) <= MAX_ADDRESS_LINES or clean_lines(beside_text):
        return ()
    if not any(POSTAL_CODE_LINE.match(line) for line in lines):
        return ()
    return tuple(lines)


def address_key(lines: tuple[str, ...]) -> str:
    return "\n".join(line.casefold() for line in lines)


def unique(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def find_identifiers(text: str, patterns: tuple[re.Pattern[str], ...]) -> tuple[str, ...]:
    found: list[str] = []
    for pattern in patterns:
        found.extend(_match_value(m) for m in pattern.finditer(text))
    return unique(found)


def _match_value(match: re.Match[str]) -> str:
    groups = match.groupdict()
    if groups.get("value"):
        return groups["value"].strip()
    if match.re.groups:
        return (match.group(1) or match.group(0)).strip()
    return match.group(0).strip()


def find_property_refs(text: str) -> tuple[str, ...]:
    return _find_values(PROPERTY_PATTERNS, text)


def find_unit_refs(text: str) -> tuple[str, ...]:
    return _find_values(UNIT_PATTERNS, text)


def _find_values(patterns: tuple[re.Pattern[str], ...], text: str) -> tuple[str, ...]:
    """Values in page order; a match overlapping an earlier one is not read again.

    "WE 03" in "Einheit: WE 03"; "Einh.: 1020/020 Datum …" in "Objekt-Nr./Einh.: 1020/020".
    """
    matches = sorted((m for pattern in patterns for m in pattern.finditer(text)), key=lambda m: (m.start(), -m.end()))
    values: list[str] = []
    covered_until = -1
    for match in matches:
        if match.start() < covered_until:
            continue
        covered_until = max(covered_until, match.end())
        values.append(_clean_value(match))
    return unique(values)


def _clean_value(match: re.Match[str]) -> str:
    value = _WHITESPACE.sub(" ", match.group("value")).strip(" ,;/")
    label = match.groupdict().get("label")
    return f"{label} {value}" if label else value


def page_number(text: str) -> int | None:
    """The page's own number if it prints one ("Seite 2 von 3", "Seite 2/3", "Blatt 2", "- 2 -"), else None."""
    match = _PAGE_NUMBER_OF.search(text)
    if match:
        return int(match.group(1))
    match = _PAGE_NUMBER_ALONE.search(text)
    if match:
        return int(match.group(1) or match.group(2))
    for line in _first_lines(text, _LETTERHEAD_LINES):
        match = _PAGE_NUMBER_AT_END.search(line)
        # After a name ("GMBH BLATT 2"), not after a word of prose ("die Kosten stehen auf Blatt 3").
        before = line[: match.start()].split() if match else []
        if match and before and not before[-1][0].islower():
            return int(match.group(1))
    return None


def _first_lines(text: str, count: int, skip: frozenset[str] = frozenset()) -> list[str]:
    """The first ``count`` non-empty lines (whitespace collapsed), leaving out those in ``skip``."""
    out: list[str] = []
    for raw in text.splitlines():
        line = _WHITESPACE.sub(" ", raw).strip()
        if line and line not in skip:
            out.append(line)
            if len(out) >= count:
                break
    return out


MAX_CONTEXT_LINES = 40
MAX_CONTEXT_CHARS = 160
_LINES_AFTER_SALUTATION = 2  # the opening sentence says what the letter is about; the rest is the statement


def context_lines(text: str, address: tuple[str, ...]) -> tuple[str, ...]:
    """The first page's lines outside the address window, up to two lines after the salutation.

    Letterhead, information block, subject and opening sentence: where an export names the property without a
    label ("Wohnanlage Rosenhof · Abrechnung 2024"). The matcher looks the account's own property names and
    addresses up in them; the body further down (comparisons, other properties) is left out on purpose.
    """
    window = {_WHITESPACE.sub(" ", line).strip() for line in address}
    out: list[str] = []
    after: int | None = None
    for raw in text.splitlines():
        line = _WHITESPACE.sub(" ", raw).strip()
        if not line or line in window:
            continue
        if after is not None:
            if after >= _LINES_AFTER_SALUTATION:
                break
            after += 1
        elif _SALUTATION.match(line):
            after = 0
        out.append(line[:MAX_CONTEXT_CHARS])
        if len(out) >= MAX_CONTEXT_LINES:
            break
    return tuple(out)


_SENDER_MARKS = ("·", "•", "|")
_SALUTATION_LINE = re.compile(
    r"^(?:herrn?|frau|firma|an|eheleute|familie|herrn? und frau|frau und herrn?)$", re.IGNORECASE
)
_TRAILING_PAGE_NUMBER = re.compile(r"\s+(?:Seite|Blatt|SEITE|BLATT)\s+\d{1,4}$")
_MIN_SENDER_NAME = 8


def addressed_to_sender(text: str, address_lines: tuple[str, ...]) -> bool:
    """Whether a numbered continuation page is addressed to the letter's own sender (a reply form).

    Page 3 of a letter ("HAUSVERWALTUNG SONNENSCHEIN GMBH BLATT 3" on top) whose window names that same company: a
    proxy form or SEPA mandate to be sent back in a window envelope. Strict on purpose, since the page then stays in
    the letter before it: the page prints a page number above 1, and the window's name line (sender lines and lone
    salutations skipped) is one of the page's first letterhead lines as a whole, apart from a trailing page number.
    A recipient merely sharing the first words of the letterhead, or a name on the same extracted line as the
    information block, is no match.
    """
    number = page_number(text)
    if number is None or number < 2:
        return False
    window = [_WHITESPACE.sub(" ", line).strip() for line in address_lines]
    name = next(
        (
            line
            for line in window
            if line and not any(mark in line for mark in _SENDER_MARKS) and not _SALUTATION_LINE.match(line)
        ),
        "",
    )
    if len(name) < _MIN_SENDER_NAME:
        return False
    folded = name.casefold()
    head = _first_lines(text, _LETTERHEAD_LINES, skip=frozenset(window))
    return any(_TRAILING_PAGE_NUMBER.sub("", line).casefold() == folded for line in head)


def looks_like_first_page(text: str) -> bool:
    """Page number 1, or no page number and a salutation: the page starts a letter."""
    number = page_number(text)
    if number is not None:
        return number == 1
    return bool(_SALUTATION.search(text))


def tolerant_literal(text: str) -> re.Pattern[str]:
    """A literal whose spaces match any whitespace including none (extractors differ), case-insensitive."""
    parts = [re.escape(part) for part in text.split()]
    return re.compile(r"\s*".join(parts), re.IGNORECASE)


def line_fingerprint(text: str) -> frozenset[str]:
    """Normalised text lines of a page: whitespace collapsed, digits masked, case folded."""
    return frozenset(_DIGITS.sub("#", line).casefold() for line in clean_lines(text))


def similarity(fingerprint: frozenset[str], page_lines: frozenset[str]) -> float:
    """Share of the sample page's lines that also occur on this page."""
    if not fingerprint:
        return 0.0
    return len(fingerprint & page_lines) / len(fingerprint)


@dataclass(frozen=True)
class CompiledPlan:
    """Regexes compiled once per worker."""

    plan: SplitPlan
    evidence: tuple[re.Pattern[str], ...]
    identifier: re.Pattern[str] | None
    keyword: re.Pattern[str] | None
    first_page_text: re.Pattern[str] | None

    @classmethod
    def of(cls, plan: SplitPlan) -> CompiledPlan:
        return cls(
            plan=plan,
            evidence=tuple(re.compile(p) for p in plan.evidence_patterns),
            identifier=re.compile(plan.identifier_pattern) if plan.identifier_pattern else None,
            keyword=tolerant_literal(plan.keyword) if plan.keyword else None,
            first_page_text=tolerant_literal(plan.first_page_text) if plan.first_page_text else None,
        )

    def marker(self, text: str, address_lines: tuple[str, ...], head_text: str = "") -> str | None:  # noqa: PLR0911 - one branch per strategy
        """The strategy's marker for a page of this text (``None`` = page carries no marker)."""
        strategy = self.plan.strategy
        if strategy is SplitStrategy.IDENTIFIER:
            assert self.identifier is not None
            match = self.identifier.search(text)
            return _match_value(match) if match else None
        if strategy is SplitStrategy.ADDRESS_BLOCK:
            if not address_lines:
                return None
            first_looking = looks_like_first_page(text)
            if not first_looking and addressed_to_sender(text, address_lines):
                # A reply form or SEPA mandate inside a letter ("Rückantwort" to the manager in a window envelope):
                # its window names the sender of the letter, not the next recipient.
                return None
            # The same address again starts a letter too when the page looks like a first page (an owner's two
            # letters for two units follow each other); the Segmenter reads the mark.
            key = address_key(address_lines)
            return FIRST_PAGE_MARK + key if first_looking else key
        if strategy is SplitStrategy.KEYWORD:
            assert self.keyword is not None
            return "1" if self.keyword.search(text) else None
        if strategy is SplitStrategy.FIRST_PAGE:
            if self.first_page_text is not None and self.first_page_text.search(text):
                return "1"
            if self.plan.fingerprint:
                score = similarity(self.plan.fingerprint, line_fingerprint(head_text))
                return "1" if score >= self.plan.similarity_threshold else None
            return None
        return None

    def evidence_of(self, text: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        identifiers = list(find_identifiers(text, self.evidence))
        if self.identifier is not None:
            identifiers.extend(_match_value(m) for m in self.identifier.finditer(text))
        table_ids, table_properties, table_units = find_table_values(text)
        return (
            unique([*identifiers, *table_ids]),
            unique([*find_property_refs(text), *table_properties]),
            unique([*find_unit_refs(text), *table_units]),
        )


def starts_by_itself(plan: SplitPlan, facts_marker: str | None, index: int, previous_is_separator: bool) -> bool:
    """Whether a page may be the first page of a letter (used to pre-render thumbnails in the workers)."""
    if index == 0:
        return True
    strategy = plan.strategy
    if strategy is SplitStrategy.FIXED_PAGES:
        return index % (plan.pages_per_letter or 1) == 0
    if strategy is SplitStrategy.BLANK_SEPARATOR:
        return previous_is_separator
    if strategy is SplitStrategy.KEYWORD:
        return previous_is_separator if plan.drop_separator else facts_marker is not None
    return facts_marker is not None


# --- facts for the split-strategy proposal (smartpost_splitter.proposal), read by the worker ---------------

_PROPOSAL_PATTERNS = tuple(re.compile(p) for p in DEFAULT_IDENTIFIER_PATTERNS)
_SHORT_PAGE_CHARS = 400
_KEYWORD_MAX = 40
_FIRST_LABEL = re.compile(r"\b(Seite|Blatt|SEITE|BLATT)[ \t]{1,5}1[ \t]{0,5}(von|/)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class ProposalPage:
    """What the proposer needs to know about one page (small; the text itself is not kept)."""

    index: int
    blank: bool
    address_a: tuple[str, ...] = ()
    address_b: tuple[str, ...] = ()
    number: int | None = None  # the printed page number ("Seite 2 von 3" -> 2)
    first_look: bool = False  # page number 1, or no number and a salutation
    first_label: str | None = None  # "Seite 1 von" as printed on a page numbered 1
    identifiers: tuple[str, ...] = ()
    short: bool = False  # little text: a separator page, a cover sheet
    words: frozenset[str] = frozenset()  # short lines without digits, case folded (separator keywords)


def proposal_page(
    index: int, text: str, address_a: tuple[str, ...], address_b: tuple[str, ...], *, has_images: bool = False
) -> ProposalPage:
    label = _FIRST_LABEL.search(text)
    lines = clean_lines(text)
    return ProposalPage(
        index=index,
        blank=not text.strip() and not has_images,
        address_a=address_a,
        address_b=address_b,
        number=page_number(text),
        first_look=looks_like_first_page(text),
        first_label=f"{label.group(1)} 1 {label.group(2)}" if label else None,
        identifiers=find_identifiers(text, _PROPOSAL_PATTERNS),
        short=0 < sum(len(line) for line in lines) <= _SHORT_PAGE_CHARS,
        words=frozenset(line.casefold() for line in lines if len(line) <= _KEYWORD_MAX and not _DIGITS.search(line)),
    )
