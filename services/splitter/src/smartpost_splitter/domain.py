"""Split rules as pure functions: per-page facts in, letter boundaries and evidence out. No I/O here.

The PDF adapter turns every page into a small :class:`PageFacts` (text-derived markers, evidence, size) in worker
processes; the :class:`Segmenter` consumes those facts in page order and emits a :class:`Segment` as soon as a
letter is complete, so the caller can split and upload it while later pages are still being read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING

# Pydantic-free imports only: the sandbox workers import this module (through Failure), and the contract models
# would cost each of them ~11 MB.
from smartpost_shared.vocabulary import SplitFailureReason, SplitStrategy
from smartpost_splitter.pages import (
    A4_PORTRAIT_PT,
    A4_TOLERANCE_PT,
    DEFAULT_IDENTIFIER_PATTERNS,
    DEFAULT_SIMILARITY,
    FINGERPRINT_TOP_MM,
    FIRST_PAGE_MARK,
    MM,
    CompiledPlan,
    PageFacts,
    SplitPlan,
    address_from_zone,
    address_key,
    address_zone_mm,
    line_fingerprint,
    starts_by_itself,
    unique,
)

if TYPE_CHECKING:
    from smartpost_shared.contracts.common import SplitRule

__all__ = [
    "A4_PORTRAIT_PT",
    "A4_TOLERANCE_PT",
    "DEFAULT_IDENTIFIER_PATTERNS",
    "FINGERPRINT_TOP_MM",
    "MM",
    "CompiledPlan",
    "Failure",
    "PageFacts",
    "PartEvidence",
    "RuleError",
    "Segment",
    "SegmentKind",
    "Segmenter",
    "SplitPlan",
    "address_from_zone",
    "address_key",
    "address_zone_mm",
    "document_warnings",
    "no_letter_failure",
    "ocr_failure",
    "plan_from_rule",
    "starts_by_itself",
    "with_fingerprint",
]


class RuleError(ValueError):
    """The split rule cannot be applied (missing or invalid parameter); the text is shown to staff."""


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
        identifiers = unique([v for p in self.pages for v in p.identifiers])
        property_refs = unique([v for p in self.pages for v in p.property_refs])
        unit_refs = unique([v for p in self.pages for v in p.unit_refs])
        return PartEvidence(
            address_lines=address,
            identifiers=identifiers,
            property_refs=property_refs,
            unit_refs=unit_refs,
            warnings=tuple(self.warnings(address_found=bool(address))),
            context_lines=first_page.context_lines,
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
    context_lines: tuple[str, ...] = ()


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
        # identifier / address block: a letter starts where the value changes; for the address block also on a
        # page that looks like a first page (page number 1, or a salutation), even when the address repeats.
        marker = page.marker
        first_looking = False
        if strategy is SplitStrategy.ADDRESS_BLOCK and marker is not None and marker.startswith(FIRST_PAGE_MARK):
            marker, first_looking = marker[len(FIRST_PAGE_MARK) :], True
        start = marker is not None and (marker != self._current_marker or first_looking)
        if marker is not None:
            self._current_marker = marker
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
