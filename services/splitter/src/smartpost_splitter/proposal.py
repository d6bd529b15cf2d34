"""Which split rule fits an uploaded PDF best: run the cheap rules on the extracted page facts, score consistency.

Pure, no I/O. The worker (:func:`smartpost_splitter.adapters.scan.proposal_pages`) reads each page once and
reports small facts (:class:`ProposalPage`): the address window in form A and B, the printed page number, whether
the page looks like a first page, the first "Seite 1" label, the contact numbers. Every candidate rule is then run
through the splitter's own :class:`~smartpost_splitter.domain.Segmenter` (so the proposal cuts exactly as the split
will), and its parts are judged by what a serial letter looks like:

- every part has exactly one recipient address (and it does not change inside the part),
- every part carries at most one contact number, and exactly one where the export prints numbers,
- the page numbering starts at 1 with every part and never restarts inside one,
- page counts are plausible (no part of more than ``PLAUSIBLE_PAGES`` pages, no pages before the first letter).

The score is the mean of the criteria the document allows (a PDF without page numbers is not judged on them);
ties go to the rule staff know best (Anschriftfeld first). The reasons are German, for the upload step.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from smartpost_shared.contracts.common import SplitRule
from smartpost_splitter.domain import Segment, Segmenter, SegmentKind, plan_from_rule
from smartpost_splitter.pages import (
    DEFAULT_IDENTIFIER_PATTERNS,
    FIRST_PAGE_MARK,
    PageFacts,
    ProposalPage,
    address_key,
)

PLAUSIBLE_PAGES = 12  # a serial letter longer than this is more likely two letters merged
MAX_FIXED_PAGES = 6
MIN_LETTERS = 2  # a fixed page count or a separator keyword must give at least two letters


@dataclass(frozen=True)
class Assessment:
    """One candidate rule, how it cuts the document and why it scores as it does."""

    rule: dict[str, Any]
    name: str  # German name of the rule as the UI shows it
    letters: int
    score: float  # 0..1
    reasons: list[str] = field(default_factory=list)  # German

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "name": self.name,
            "letters": self.letters,
            "score": round(self.score, 3),
            "reasons": self.reasons,
        }


def candidate_rules(pages: list[ProposalPage]) -> list[tuple[dict[str, Any], str]]:
    """The cheap rules worth trying on these pages, in tie-break order (best known first)."""
    rules: list[tuple[dict[str, Any], str]] = [
        ({"strategy": "address_block", "address_form": form}, f"Anschriftfeld (Form {form})")
        for form in ("B", "A")
        if any(p.address_b if form == "B" else p.address_a for p in pages)
    ]
    labels = Counter(p.first_label for p in pages if p.first_label)
    if labels:
        label = labels.most_common(1)[0][0]
        rules.append(({"strategy": "first_page", "first_page_text": label}, f"Erste Seite (Text „{label}“)"))
    if any(p.identifiers for p in pages):
        rules.append(
            ({"strategy": "identifier", "identifier_pattern": DEFAULT_IDENTIFIER_PATTERNS[0]}, "Kontaktnummer")
        )
    keyword = _separator_keyword(pages)
    if keyword is not None:
        rules.append(({"strategy": "keyword", "keyword": keyword}, f"Trennseite (Text „{keyword}“)"))
    if any(p.blank for p in pages):
        rules.append(({"strategy": "blank_separator"}, "Leerseite als Trenner"))
    rules += [
        ({"strategy": "fixed_pages", "pages_per_letter": size}, f"Feste Seitenzahl ({size})")
        for size in range(1, MAX_FIXED_PAGES + 1)
        if len(pages) % size == 0 and len(pages) // size >= MIN_LETTERS
    ]
    return rules


def _separator_keyword(pages: list[ProposalPage]) -> str | None:
    """A line that stands on several short pages and on no other page: a separator sheet ("Trennseite")."""
    on_short = Counter(word for p in pages if p.short for word in p.words)
    elsewhere = {word for p in pages if not p.short for word in p.words}
    found = [(n, word) for word, n in on_short.items() if n >= MIN_LETTERS and word not in elsewhere]
    if not found:
        return None
    return max(found)[1]


def _facts(page: ProposalPage, rule: dict[str, Any]) -> PageFacts:
    strategy = rule["strategy"]
    marker: str | None = None
    address = page.address_a if rule.get("address_form") == "A" else page.address_b
    if strategy == "address_block" and address:
        key = address_key(address)
        marker = FIRST_PAGE_MARK + key if page.first_look else key
    elif strategy == "first_page":
        marker = "1" if page.first_label == rule["first_page_text"] else None
    elif strategy == "keyword":
        marker = "1" if rule["keyword"] in page.words else None
    elif strategy == "identifier":
        marker = page.identifiers[0] if page.identifiers else None
    return PageFacts(
        index=page.index,
        width_pt=595.28,
        height_pt=841.89,
        text_chars=0 if page.blank else 1,
        marker=marker,
        address_lines=address,
        identifiers=page.identifiers,
    )


def _segments(pages: list[ProposalPage], rule: dict[str, Any]) -> list[Segment]:
    segmenter = Segmenter(plan_from_rule(SplitRule.model_validate(rule)))
    out: list[Segment] = []
    for page in pages:
        out += segmenter.feed(_facts(page, rule))
    return out + segmenter.finish()


def assess(pages: list[ProposalPage], rule: dict[str, Any], name: str) -> Assessment:  # noqa: C901 - one criterion after the other
    by_index = {p.index: p for p in pages}
    segments = _segments(pages, rule)
    letters = [s for s in segments if s.kind is SegmentKind.LETTER]
    leading = sum(s.page_count for s in segments if s.kind is not SegmentKind.LETTER)
    if not letters:
        return Assessment(rule, name, 0, 0.0, ["ergibt keinen einzigen Brief"])
    n = len(letters)
    criteria: list[float] = []
    reasons: list[str] = [f"{n} Briefe"]

    def own(segment: Segment) -> list[ProposalPage]:
        return [by_index[i] for i in range(segment.first, segment.last + 1) if i in by_index]

    # One address per part (either window form: the rule under test may not read the address itself).
    one_address = 0
    for segment in letters:
        keys = {address_key(p.address_b or p.address_a) for p in own(segment) if p.address_b or p.address_a}
        one_address += len(keys) == 1
    if any(p.address_a or p.address_b for p in pages):
        criteria.append(one_address / n)
        reasons.append(f"{one_address} von {n} mit genau einer Anschrift")
    # At most one contact number per part, exactly one where numbers are printed.
    if any(p.identifiers for p in pages):
        one_id = 0
        for segment in letters:
            ids = {i for p in own(segment) for i in p.identifiers}
            one_id += len(ids) == 1
        criteria.append(one_id / n)
        reasons.append(f"{one_id} von {n} mit genau einer Kontaktnummer")
    # Page numbering restarts with every part and never inside one.
    if any(p.number is not None for p in pages):
        restarts = 0
        for segment in letters:
            inside = own(segment)
            first_ok = bool(inside) and (inside[0].number == 1 or (inside[0].number is None and inside[0].first_look))
            restarts += first_ok and not any(p.number == 1 for p in inside[1:])
        criteria.append(restarts / n)
        reasons.append(f"bei {restarts} von {n} beginnt die Seitenzählung mit Seite 1 und nur dort")
    # Plausible page counts, nothing left before the first letter.
    counts = [s.page_count for s in letters]
    plausible = sum(1 for c in counts if c <= PLAUSIBLE_PAGES)
    criteria.append(plausible / n)
    reasons.append(
        f"{min(counts)}–{max(counts)} Seiten je Brief" if min(counts) != max(counts) else f"je {counts[0]} Seite(n)"
    )
    if plausible < n:
        reasons.append(f"{n - plausible} Brief(e) länger als {PLAUSIBLE_PAGES} Seiten")
    score = sum(criteria) / len(criteria)
    if leading:
        score *= 1 - leading / max(len(pages), 1)
        reasons.append(f"{leading} Seite(n) vor dem ersten Brief gehören zu keinem Brief")
    return Assessment(rule, name, n, score, reasons)


def propose(pages: list[ProposalPage]) -> list[Assessment]:
    """Every candidate, best first (ties keep the candidate order: Anschriftfeld, erste Seite, Nummer, ...)."""
    if not pages:
        return []
    assessed = [assess(pages, rule, name) for rule, name in candidate_rules(pages)]
    order = {id(a): i for i, a in enumerate(assessed)}
    return sorted((a for a in assessed if a.letters), key=lambda a: (-round(a.score, 3), order[id(a)]))


def explain(best: Assessment, others: list[Assessment], *, pages_read: int, pages_total: int) -> str:
    """One German sentence for staff: what is proposed and why."""
    text = f"Vorschlag: „{best.name}“ – " + ", ".join(best.reasons) + f" (Stimmigkeit {best.score:.0%})."
    if others:
        text += (
            " Andere Regeln: " + "; ".join(f"„{o.name}“ {o.letters} Briefe, {o.score:.0%}" for o in others[:3]) + "."
        )
    if pages_read < pages_total:
        text += f" Geprüft wurden die ersten {pages_read} von {pages_total} Seiten."
    return text
