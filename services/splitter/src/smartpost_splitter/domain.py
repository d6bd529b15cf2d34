"""Split rules as pure functions: per-page facts in, letter boundaries and evidence out. No I/O here.

The PDF adapter turns every page into a small :class:`PageFacts` (text-derived markers, evidence, size) in worker
processes; the :class:`Segmenter` consumes those facts in page order and emits a :class:`Segment` as soon as a
letter is complete, so the caller can split and upload it while later pages are still being read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import StrEnum

from smartpost_shared.contracts.common import SplitRule, SplitStrategy
from smartpost_shared.contracts.documents import SplitFailureReason

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
DEFAULT_IDENTIFIER_PATTERNS = (
    (
        r"(?i:(?:kontakt|kunden|mieter|eigentümer|personen|referenz)[-\s]*(?:nr\.?|nummer|id|konto))\s*:?\s*"
        r"(?P<value>[A-Z]{1,3}-?\d{3,12}|\d{3,12})\b"
    ),
)
PROPERTY_PATTERN = re.compile(r"(?:Objekt|Liegenschaft)(?:-?Nr\.?)?\s*:\s*(?P<value>[^\r\n]+)")
UNIT_PATTERN = re.compile(r"(?:Einheit|Wohnung|Nutzeinheit)(?:-?Nr\.?)?\s*:\s*(?P<value>[^\r\n]+)")
POSTAL_CODE_LINE = re.compile(r"^(?:[A-Z]{1,2}[- ])?\d{4,5}\s+\S")
_WHITESPACE = re.compile(r"\s+")
_DIGITS = re.compile(r"\d")


class RuleError(ValueError):
    """The split rule cannot be applied (missing or invalid parameter); the text is shown to staff."""


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


def plan_from_rule(rule: SplitRule, *, evidence_patterns: tuple[str, ...] = DEFAULT_IDENTIFIER_PATTERNS) -> SplitPlan:
    """Check the rule's parameters for its strategy; raise :class:`RuleError` with a readable reason."""
    strategy = rule.strategy
    if strategy is SplitStrategy.FIRST_PAGE:
        if not (rule.first_page_text and rule.first_page_text.strip()) and rule.sample_page is None:
            raise RuleError(
                "Für „Erste Seite“ fehlt ein Erkennungstext (first_page_text, z. B. „Seite 1 von“) "
                "oder eine Musterseite (sample_page)."
            )
    elif strategy is SplitStrategy.IDENTIFIER:
        if not rule.identifier_pattern:
            raise RuleError("Für „Kennung“ fehlt der reguläre Ausdruck (identifier_pattern).")
        try:
            re.compile(rule.identifier_pattern)
        except re.error as exc:
            raise RuleError(f"Der reguläre Ausdruck „{rule.identifier_pattern}“ ist ungültig: {exc}.") from exc
    elif strategy is SplitStrategy.KEYWORD:
        if not (rule.keyword and rule.keyword.strip()):
            raise RuleError("Für „Trennseite“ fehlt das Schlüsselwort (keyword, z. B. „Trennseite“).")
    elif strategy is SplitStrategy.FIXED_PAGES and rule.pages_per_letter is None:
        raise RuleError("Für „Feste Seitenzahl“ fehlt die Seitenzahl pro Brief (pages_per_letter).")
    for pattern in evidence_patterns:
        re.compile(pattern)
    return SplitPlan(
        strategy=strategy,
        address_form=rule.address_form,
        first_page_text=rule.first_page_text.strip() if rule.first_page_text else None,
        identifier_pattern=rule.identifier_pattern,
        keyword=rule.keyword.strip() if rule.keyword else None,
        drop_separator=rule.drop_separator,
        pages_per_letter=rule.pages_per_letter,
        sample_page=rule.sample_page,
        similarity_threshold=rule.similarity_threshold or DEFAULT_SIMILARITY,
        evidence_patterns=evidence_patterns,
    )


def with_fingerprint(plan: SplitPlan, page_count: int, sample_text: str) -> SplitPlan:
    """Attach the layout fingerprint of the sample page (normalised lines of its head region) to the plan."""
    assert plan.sample_page is not None
    if plan.sample_page > page_count:
        raise RuleError(f"Die Musterseite {plan.sample_page} gibt es nicht: das Dokument hat {page_count} Seiten.")
    fingerprint = line_fingerprint(sample_text)
    if len(fingerprint) < 3:
        raise RuleError(f"Die Musterseite {plan.sample_page} enthält zu wenig Text für einen Vergleich.")
    return replace(plan, fingerprint=fingerprint)


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
    lines = clean_lines(zone_text)
    if not 2 <= len(lines) <= MAX_ADDRESS_LINES or clean_lines(beside_text):
        return ()
    if not any(POSTAL_CODE_LINE.match(line) for line in lines):
        return ()
    return tuple(lines)


def address_key(lines: tuple[str, ...]) -> str:
    return "\n".join(line.casefold() for line in lines)


def _unique(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def find_identifiers(text: str, patterns: tuple[re.Pattern[str], ...]) -> tuple[str, ...]:
    found: list[str] = []
    for pattern in patterns:
        found.extend(_match_value(m) for m in pattern.finditer(text))
    return _unique(found)


def _match_value(match: re.Match[str]) -> str:
    groups = match.groupdict()
    if groups.get("value"):
        return groups["value"].strip()
    if match.re.groups:
        return (match.group(1) or match.group(0)).strip()
    return match.group(0).strip()


def find_property_refs(text: str) -> tuple[str, ...]:
    return _unique([_WHITESPACE.sub(" ", m.group("value")).strip() for m in PROPERTY_PATTERN.finditer(text)])


def find_unit_refs(text: str) -> tuple[str, ...]:
    return _unique([_WHITESPACE.sub(" ", m.group("value")).strip() for m in UNIT_PATTERN.finditer(text)])


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
            return address_key(address_lines) if address_lines else None
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
        return _unique(identifiers), find_property_refs(text), find_unit_refs(text)


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


# ----------------------------------------------------------------------------------------------------------------
# Segmentation
# ----------------------------------------------------------------------------------------------------------------


class SegmentKind(StrEnum):
    LETTER = "letter"
    LEADING = "leading"  # pages before the first recognised letter start


@dataclass
class Segment:
    """One letter: source pages ``first``..``last`` (0-based, inclusive) and what was found on them."""

    first: int
    last: int
    pages: list[PageFacts] = field(default_factory=list)
    separator: PageFacts | None = None  # the dropped separator page before it, if any
    kind: SegmentKind = SegmentKind.LETTER

    @property
    def page_count(self) -> int:
        return self.last - self.first + 1

    def evidence(self) -> PartEvidence:
        first_page = self.pages[0]
        address = first_page.address_lines
        if not address and self.separator is not None:
            address = self.separator.address_lines
        identifiers = _unique([v for p in self.pages for v in p.identifiers])
        property_refs = _unique([v for p in self.pages for v in p.property_refs])
        unit_refs = _unique([v for p in self.pages for v in p.unit_refs])
        return PartEvidence(
            address_lines=address,
            identifiers=identifiers,
            property_refs=property_refs,
            unit_refs=unit_refs,
            warnings=tuple(self.warnings(address_found=bool(address))),
        )

    def warnings(self, *, address_found: bool) -> list[str]:
        warnings: list[str] = []
        if self.kind is SegmentKind.LEADING:
            warnings.append(
                f"Seiten {self.first + 1}-{self.last + 1} stehen vor dem ersten erkannten Briefanfang; "
                "bitte prüfen (Deckblatt oder fehlende Erkennung?)."
            )
        if not address_found:
            warnings.append("Keine Anschrift im Adressfeld (DIN 5008 Sichtfenster) gefunden.")
        odd = [p.index + 1 for p in self.pages if not p.is_a4_portrait]
        if odd:
            warnings.append(f"Seite(n) {_ranges(odd)} nicht A4 hochkant: beim Postversand nicht druckbar.")
        scanned = [p.index + 1 for p in self.pages if p.needs_ocr]
        if scanned:
            warnings.append(f"Seite(n) {_ranges(scanned)} ohne Text (gescannt?): Inhalt nicht auswertbar.")
        return warnings


@dataclass(frozen=True)
class PartEvidence:
    address_lines: tuple[str, ...]
    identifiers: tuple[str, ...]
    property_refs: tuple[str, ...]
    unit_refs: tuple[str, ...]
    warnings: tuple[str, ...]


def _ranges(pages: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"``."""
    out: list[str] = []
    start = prev = pages[0]
    for page in [*pages[1:], None]:
        if page is not None and page == prev + 1:
            prev = page
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if page is not None:
            start = prev = page
    return ", ".join(out)


class Segmenter:
    """Feed page facts in order; get each letter as soon as the next one starts (bounded memory)."""

    def __init__(self, plan: SplitPlan) -> None:
        self.plan = plan
        self._current: Segment | None = None
        self._current_marker: str | None = None
        self._pending_separator: PageFacts | None = None
        self._after_separator = False
        self.pages_seen = 0
        self.separators = 0
        self.letters = 0

    def feed(self, page: PageFacts) -> list[Segment]:  # noqa: PLR0911 - one branch per strategy
        self.pages_seen += 1
        strategy = self.plan.strategy
        if strategy is SplitStrategy.BLANK_SEPARATOR:
            if page.is_blank:
                self.separators += 1
                return self._close()
            return self._start_or_continue(page, start=self._current is None)
        if strategy is SplitStrategy.KEYWORD:
            if page.marker is not None:
                self.separators += 1
                done = self._close()
                if self.plan.drop_separator:
                    self._pending_separator = page
                    return done
                return done + self._start_or_continue(page, start=True)
            return self._start_or_continue(page, start=self._current is None)
        if strategy is SplitStrategy.FIXED_PAGES:
            size = self.plan.pages_per_letter or 1
            return self._start_or_continue(page, start=self._current is None or self._current.page_count >= size)
        if strategy is SplitStrategy.FIRST_PAGE:
            return self._start_or_continue(page, start=page.marker is not None, leading=True)
        # identifier / address block: a letter starts where the value changes
        start = page.marker is not None and page.marker != self._current_marker
        if page.marker is not None:
            self._current_marker = page.marker
        return self._start_or_continue(page, start=start, leading=True)

    def finish(self) -> list[Segment]:
        return self._close()

    def _start_or_continue(self, page: PageFacts, *, start: bool, leading: bool = False) -> list[Segment]:
        if self._current is not None and not start:
            self._current.last = page.index
            self._current.pages.append(page)
            return []
        done = self._close()
        kind = SegmentKind.LEADING if leading and not start else SegmentKind.LETTER
        self._current = Segment(page.index, page.index, [page], self._pending_separator, kind)
        self._pending_separator = None
        return done

    def _close(self) -> list[Segment]:
        segment, self._current = self._current, None
        if segment is None:
            return []
        if segment.kind is SegmentKind.LETTER:
            self.letters += 1
        return [segment]


# ----------------------------------------------------------------------------------------------------------------
# Whole-document verdicts and messages
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    code: SplitFailureReason
    reason: str


STRATEGY_NAMES = {
    SplitStrategy.FIRST_PAGE: "Erste Seite",
    SplitStrategy.ADDRESS_BLOCK: "Adressfeld",
    SplitStrategy.IDENTIFIER: "Kennung",
    SplitStrategy.KEYWORD: "Trennseite (Schlüsselwort)",
    SplitStrategy.BLANK_SEPARATOR: "Leere Trennseite",
    SplitStrategy.FIXED_PAGES: "Feste Seitenzahl",
}


def ocr_failure(filename: str, pages_total: int, pages_scanned: int) -> Failure | None:
    """Fail when most pages are images without text: splitting them needs OCR, which is not supported yet."""
    if pages_scanned * 2 <= pages_total:
        return None
    return Failure(
        SplitFailureReason.NEEDS_OCR,
        f"„{filename}“: {pages_scanned} von {pages_total} Seiten enthalten keinen Text, nur Bilder (gescannt?). "
        "Texterkennung (OCR) wird noch nicht unterstützt; bitte das Dokument als Text-PDF aus der "
        "Software exportieren.",
    )


def no_letter_failure(filename: str, plan: SplitPlan, pages_total: int) -> Failure:
    hint = {
        SplitStrategy.FIRST_PAGE: "kein Erkennungstext bzw. keine Seite ähnlich der Musterseite gefunden",
        SplitStrategy.ADDRESS_BLOCK: f"keine Anschrift im Adressfeld (Form {plan.address_form}) gefunden",
        SplitStrategy.IDENTIFIER: f"der Ausdruck „{plan.identifier_pattern}“ kommt nicht vor",
        SplitStrategy.KEYWORD: f"das Schlüsselwort „{plan.keyword}“ kommt nicht vor",
        SplitStrategy.BLANK_SEPARATOR: "nur leere Seiten",
        SplitStrategy.FIXED_PAGES: "keine Seiten",
    }[plan.strategy]
    return Failure(
        SplitFailureReason.NO_LETTER_FOUND,
        f"„{filename}“ ({pages_total} Seiten): mit der Trennregel „{STRATEGY_NAMES[plan.strategy]}“ wurde kein "
        f"Brief erkannt ({hint}). Bitte Trennregel oder Dokument prüfen.",
    )


def document_warnings(segments_total: int, not_a4: int, scanned: int, last_short: bool, plan: SplitPlan) -> list[str]:
    warnings: list[str] = []
    if not_a4:
        warnings.append(f"{not_a4} Seite(n) sind nicht A4 hochkant (Postversand nicht möglich, Portal ok).")
    if scanned:
        warnings.append(f"{scanned} Seite(n) ohne Text (gescannt?); OCR wird nicht unterstützt.")
    if last_short and plan.strategy is SplitStrategy.FIXED_PAGES:
        warnings.append(f"Die Seitenzahl ist kein Vielfaches von {plan.pages_per_letter}: der letzte Brief ist kürzer.")
    if segments_total == 1:
        warnings.append("Nur ein Brief erkannt: bitte prüfen, ob die Trennregel passt.")
    return warnings
