"""Pure rules: evidence patterns on different extractor layouts, address plausibility, segmentation."""

from __future__ import annotations

import re

import pytest

from smartpost_shared.contracts.common import SplitRule, SplitStrategy
from smartpost_splitter.domain import (
    DEFAULT_IDENTIFIER_PATTERNS,
    PageFacts,
    RuleError,
    Segmenter,
    SegmentKind,
    address_from_zone,
    plan_from_rule,
)
from smartpost_splitter.pages import find_identifiers, find_property_refs, find_unit_refs, tolerant_literal

PATTERNS = tuple(re.compile(p) for p in DEFAULT_IDENTIFIER_PATTERNS)


@pytest.mark.parametrize(
    "text",
    [
        "Kontakt-Nr.: K-004711\r\nObjekt: x",
        "Kontakt-Nr.:\r\nK-004711",
        "Kontakt-Nr.:K-004711",
        "Kontakt-Nr. K-004711",
        "Kundennummer: K-004711",
        "Kunden-Nr.\nK-004711",
    ],
)
def test_identifier_found_in_any_reading_order_layout(text: str) -> None:
    assert find_identifiers(text, PATTERNS) == ("K-004711",)


def test_layout_reordered_block_does_not_invent_identifiers() -> None:
    # A layout extractor puts all labels first: the value directly after the label is then another label.
    assert find_identifiers("Kontakt-Nr.:\nObjekt:\nEinheit:\nK-004711", PATTERNS) == ()


def test_property_and_unit_refs() -> None:
    text = "Objekt: WEG-0815 Lindenstraße 5\r\nEinheit:  WE 03 (1. OG links)\r\nLiegenschaft: Hauptstr. 1"
    assert find_property_refs(text) == ("WEG-0815 Lindenstraße 5", "Hauptstr. 1")
    assert find_unit_refs(text) == ("WE 03 (1. OG links)",)


def test_address_plausibility() -> None:
    address = "Herrn Max Müller\r\nLindenstraße 5\r\n12345 Musterstadt"
    assert address_from_zone(address, "") == ("Herrn Max Müller", "Lindenstraße 5", "12345 Musterstadt")
    assert address_from_zone("Frau A\r\nGasse 1\r\n1010 Wien\r\nÖSTERREICH", "")[-1] == "ÖSTERREICH"
    assert address_from_zone(address, "weiter im Text") == ()  # body text runs through the window
    assert address_from_zone("Die Kosten wurden\r\nnach Verbrauch verteilt", "") == ()
    assert address_from_zone("12345 Musterstadt", "") == ()
    assert address_from_zone("\n".join(["a"] * 6 + ["12345 X"]), "") == ()


def test_tolerant_literal() -> None:
    pattern = tolerant_literal("Seite 1 von")
    assert pattern.search("Seite 1 von 3")
    assert pattern.search("SEITE\r\n1von 3")
    assert not pattern.search("Seite 11 von 12")
    assert not pattern.search("Seite 2 von 3")


def _page(index: int, marker: str | None = None, chars: int = 100, images: bool = False) -> PageFacts:
    return PageFacts(index, 595.28, 841.89, chars, images, marker)


def _run(rule: SplitRule, pages: list[PageFacts]) -> list[tuple[int, int, SegmentKind]]:
    segmenter = Segmenter(plan_from_rule(rule))
    out = [s for p in pages for s in segmenter.feed(p)] + segmenter.finish()
    return [(s.first, s.last, s.kind) for s in out]


def test_identifier_change_and_leading_pages() -> None:
    rule = SplitRule(strategy=SplitStrategy.IDENTIFIER, identifier_pattern="K-\\d+")
    pages = [_page(0), _page(1, "K-1"), _page(2), _page(3, "K-1"), _page(4, "K-2"), _page(5)]
    assert _run(rule, pages) == [
        (0, 0, SegmentKind.LEADING),
        (1, 3, SegmentKind.LETTER),
        (4, 5, SegmentKind.LETTER),
    ]


def test_blank_separators_collapse_and_leading_blanks_vanish() -> None:
    rule = SplitRule(strategy=SplitStrategy.BLANK_SEPARATOR)
    pages = [_page(0, chars=0), _page(1), _page(2), _page(3, chars=0), _page(4, chars=0), _page(5), _page(6, chars=0)]
    assert _run(rule, pages) == [(1, 2, SegmentKind.LETTER), (5, 5, SegmentKind.LETTER)]


def test_scanned_page_is_not_a_blank_separator() -> None:
    rule = SplitRule(strategy=SplitStrategy.BLANK_SEPARATOR)
    assert _run(rule, [_page(0), _page(1, chars=0, images=True)]) == [(0, 1, SegmentKind.LETTER)]


def test_keyword_separators_dropped_or_kept() -> None:
    pages = [_page(0, "1"), _page(1), _page(2), _page(3, "1"), _page(4)]
    dropped = SplitRule(strategy=SplitStrategy.KEYWORD, keyword="Trennseite")
    assert _run(dropped, pages) == [(1, 2, SegmentKind.LETTER), (4, 4, SegmentKind.LETTER)]
    kept = SplitRule(strategy=SplitStrategy.KEYWORD, keyword="Trennseite", drop_separator=False)
    assert _run(kept, pages) == [(0, 2, SegmentKind.LETTER), (3, 4, SegmentKind.LETTER)]


def test_fixed_pages() -> None:
    rule = SplitRule(strategy=SplitStrategy.FIXED_PAGES, pages_per_letter=2)
    assert [s[:2] for s in _run(rule, [_page(i) for i in range(5)])] == [(0, 1), (2, 3), (4, 4)]


def test_rule_errors_are_readable() -> None:
    with pytest.raises(RuleError, match="identifier_pattern"):
        plan_from_rule(SplitRule(strategy=SplitStrategy.IDENTIFIER))


def test_grey_png_round_trips_through_a_standard_decoder() -> None:
    import io

    from PIL import Image

    from smartpost_splitter.adapters.pdf import grey_png

    width, height, stride = 5, 3, 8  # stride > width: pdfium pads rows
    pixels = bytes((x * 40 + y) % 256 if x < width else 0xEE for y in range(height) for x in range(stride))
    image = Image.open(io.BytesIO(grey_png(pixels, width, height, stride)))
    assert (image.format, image.mode, image.size) == ("PNG", "L", (width, height))
    assert list(image.getdata()) == [(x * 40 + y) % 256 for y in range(height) for x in range(width)]


def _loaded_after(modules: str, watched: set[str]) -> list[str]:
    """Which of ``watched`` top-level packages a fresh interpreter has loaded after importing ``modules``."""
    import ast
    import subprocess
    import sys

    code = f"import sys, {modules}; print(sorted({{m.split('.')[0] for m in sys.modules}} & {watched!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return list(ast.literal_eval(out.strip()))


def test_worker_side_modules_load_neither_pydantic_nor_pikepdf() -> None:
    # A spawned text worker imports only these; pydantic + contracts (18 MB) and pikepdf (6 MB) stay out of it.
    watched = {"pydantic", "pikepdf", "smartpost_splitter"}
    assert _loaded_after("smartpost_splitter.adapters.scan, smartpost_splitter.pages", watched) == [
        "smartpost_splitter"
    ]


def test_the_cutting_side_of_a_worker_loads_no_pydantic() -> None:
    # The sandbox workers also cut parts (pikepdf) and check the source; the contract models (pydantic, ~11 MB per
    # worker) stay out of them: the failure reasons they report are the pydantic-free enum of the vocabulary.
    modules = "smartpost_splitter.adapters.pdf, smartpost_splitter.adapters.sandbox, smartpost_splitter.limits"
    assert _loaded_after(modules, {"pydantic", "pikepdf"}) == ["pikepdf"]
    from smartpost_shared.contracts.documents import SplitFailureReason as ReasonInContracts
    from smartpost_shared.vocabulary import SplitFailureReason as ReasonInVocabulary

    assert ReasonInContracts is ReasonInVocabulary
