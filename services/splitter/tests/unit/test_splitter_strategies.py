"""Every split strategy on generated serial letters: 100 % of letter boundaries where the marker is present."""

from __future__ import annotations

import hashlib
import io
from typing import TYPE_CHECKING, Any

import pytest
from PIL import Image

from smartpost_shared.contracts.common import SplitRule, SplitStrategy
from smartpost_shared.contracts.documents import DocumentSplit, DocumentSplitFailed, SplitFailureReason
from smartpost_shared.messaging import TransientError
from smartpost_shared.sample_letters import SampleLetterTruth, demo_recipients, write_serial_letter
from smartpost_shared.storage import (
    MemoryStore,
    StorageUnavailableError,
    part_key,
    thumbnail_key,
    thumbnail_pack_key,
)

from .splitter_helpers import ACCOUNT, LETTER, first_page_text, page_count, request_envelope, run_split

if TYPE_CHECKING:
    from pathlib import Path

RECIPIENTS = demo_recipients(24, seed=11)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, list[SampleLetterTruth]]]:
    root = tmp_path_factory.mktemp("corpus")
    variants = {
        "plain_b": {},
        "plain_a": {"address_form": "A"},
        "keyword": {"keyword_separators": True},
        "blank": {"blank_separators": True},
        "fixed": {"pages_per_letter": (3, 3)},
        "no_address": {"address_mode": "missing"},
    }
    out = {}
    for name, kwargs in variants.items():
        path = root / f"{name}.pdf"
        truth = write_serial_letter(path, RECIPIENTS, seed=11, **kwargs)  # type: ignore[arg-type]
        out[name] = (path.read_bytes(), truth)
    return out


def _ranges(result: DocumentSplit) -> list[tuple[int, int]]:
    return [(p.first_page, p.last_page) for p in result.parts]


def _truth_ranges(truth: list[SampleLetterTruth]) -> list[tuple[int, int]]:
    return [(t.first_page, t.last_page) for t in truth]


def _assert_exact(result: DocumentSplit | DocumentSplitFailed, truth: list[SampleLetterTruth]) -> DocumentSplit:
    assert isinstance(result, DocumentSplit), getattr(result, "reason", "")
    assert _ranges(result) == _truth_ranges(truth)
    for part, letter in zip(result.parts, truth, strict=True):
        assert letter.reference_id in part.identifiers
    return result


@pytest.mark.parametrize(
    ("variant", "rule"),
    [
        ("plain_b", SplitRule(strategy=SplitStrategy.FIRST_PAGE, first_page_text="Seite 1 von")),
        (
            "plain_b",
            SplitRule(strategy=SplitStrategy.FIRST_PAGE, first_page_text="Hausverwaltung Muster GmbH · Hauptstr. 1"),
        ),
        ("plain_b", SplitRule(strategy=SplitStrategy.FIRST_PAGE, sample_page=1)),
        ("plain_b", SplitRule(strategy=SplitStrategy.ADDRESS_BLOCK, address_form="B")),
        ("plain_a", SplitRule(strategy=SplitStrategy.ADDRESS_BLOCK, address_form="A")),
        ("plain_b", SplitRule(strategy=SplitStrategy.IDENTIFIER, identifier_pattern=r"Kontakt-Nr\.?\s*:?\s*(K-\d{6})")),
        ("no_address", SplitRule(strategy=SplitStrategy.IDENTIFIER, identifier_pattern=r"K-\d{6}")),
        ("keyword", SplitRule(strategy=SplitStrategy.KEYWORD, keyword="Trennseite")),
        ("blank", SplitRule(strategy=SplitStrategy.BLANK_SEPARATOR)),
        ("fixed", SplitRule(strategy=SplitStrategy.FIXED_PAGES, pages_per_letter=3)),
    ],
    ids=lambda v: v if isinstance(v, str) else f"{v.strategy}",
)
def test_strategy_finds_every_letter_boundary(corpus, variant: str, rule: SplitRule) -> None:
    data, truth = corpus[variant]
    result, store, event = run_split(data, rule)
    split = f"doc-1/{event.causation_id}"  # keys are versioned per split request
    result = _assert_exact(result, truth)
    assert result.strategy == rule.strategy
    assert result.source_page_count == truth[-1].last_page
    for part, recipient in zip(result.parts, RECIPIENTS, strict=True):
        stored = store.get(part.storage_key)
        assert hashlib.sha256(stored).hexdigest() == part.sha256
        assert part.size_bytes == len(stored)
        assert page_count(stored) == part.page_count == part.last_page - part.first_page + 1
        assert recipient.reference_id in first_page_text(stored)
        if variant != "no_address":
            assert part.address_lines == recipient.address_lines
            assert part.property_refs == [recipient.property_ref]
            assert part.unit_refs == [recipient.unit_ref]
        assert part.storage_key == part_key(ACCOUNT, LETTER, split, part.index)
        # One thumbnail pack per document; each part names its byte range in it.
        assert part.thumbnail_key == thumbnail_pack_key(ACCOUNT, LETTER, split)
        assert part.thumbnail_offset is not None
        assert part.thumbnail_size is not None
        png = store.get_range(part.thumbnail_key, part.thumbnail_offset, part.thumbnail_size)
        thumbnail = Image.open(io.BytesIO(png))
        assert thumbnail.format == "PNG"
        assert thumbnail.size[0] == 120
        assert thumbnail.size[1] > thumbnail.size[0]


def test_separator_kept_when_not_dropped(corpus) -> None:
    data, truth = corpus["keyword"]
    result, _, _ = run_split(
        data, SplitRule(strategy=SplitStrategy.KEYWORD, keyword="trennseite", drop_separator=False)
    )
    assert isinstance(result, DocumentSplit)
    assert _ranges(result) == [(t.first_page - 1, t.last_page) for t in truth]


def test_address_block_strategy_fails_without_addresses(corpus) -> None:
    data, _ = corpus["no_address"]
    result, store, _ = run_split(data, SplitRule(strategy=SplitStrategy.ADDRESS_BLOCK))
    assert isinstance(result, DocumentSplitFailed)
    assert result.reason_code == SplitFailureReason.NO_LETTER_FOUND
    assert "Adressfeld" in result.reason
    assert store.list(f"accounts/{ACCOUNT}/letters/{LETTER}/parts/") == []
    assert store.list(f"accounts/{ACCOUNT}/letters/{LETTER}/thumbnails/") == []
    assert store.exists(f"accounts/{ACCOUNT}/letters/{LETTER}/sources/doc-1.pdf")


def test_identifier_never_matching_is_no_letter_found(corpus) -> None:
    data, _ = corpus["plain_b"]
    result, _, _ = run_split(data, SplitRule(strategy=SplitStrategy.IDENTIFIER, identifier_pattern=r"Z-\d{9}"))
    assert isinstance(result, DocumentSplitFailed)
    assert result.reason_code == SplitFailureReason.NO_LETTER_FOUND
    assert "Z-" in result.reason


def test_fixed_pages_with_remainder_warns(corpus) -> None:
    data, truth = corpus["fixed"]
    result, _, _ = run_split(data, SplitRule(strategy=SplitStrategy.FIXED_PAGES, pages_per_letter=5))
    assert isinstance(result, DocumentSplit)
    total = truth[-1].last_page
    assert [p.page_count for p in result.parts[:-1]] == [5] * (len(result.parts) - 1)
    assert result.parts[-1].page_count == total - 5 * (len(result.parts) - 1)
    assert any("kein Vielfaches von 5" in w for w in result.warnings)


def test_pages_before_first_letter_start_become_a_flagged_part(tmp_path: Path) -> None:
    path = tmp_path / "with_cover.pdf"
    truth = write_serial_letter(path, RECIPIENTS[:4], seed=3, keyword_separators=True)
    # With "Seite 1 von" the separator pages are not letter starts: the first one stands alone, flagged.
    result, _, _ = run_split(
        path.read_bytes(), SplitRule(strategy=SplitStrategy.FIRST_PAGE, first_page_text="Seite 1 von")
    )
    assert isinstance(result, DocumentSplit)
    assert result.parts[0].first_page == 1
    assert result.parts[0].last_page == 1
    assert any("vor dem ersten erkannten Briefanfang" in w for w in result.parts[0].warnings)
    assert [p.first_page for p in result.parts[1:]] == [t.first_page for t in truth]


def test_attachments_are_appended_to_every_part(corpus, tmp_path: Path) -> None:
    flyer = tmp_path / "flyer.pdf"
    write_serial_letter(flyer, RECIPIENTS[:1], pages_per_letter=(2, 2), title="Einladung Sommerfest")
    attachment_key = f"accounts/{ACCOUNT}/letters/{LETTER}/sources/flyer.pdf"
    data, truth = corpus["plain_b"]
    result, store, _ = run_split(
        data,
        SplitRule(strategy=SplitStrategy.FIRST_PAGE, first_page_text="Seite 1 von"),
        attachments={attachment_key: flyer.read_bytes()},
    )
    result = _assert_exact(result, truth)
    for part in result.parts:
        assert part.page_count == part.last_page - part.first_page + 1 + 2
        assert page_count(store.get(part.storage_key)) == part.page_count


def test_rerun_of_the_same_request_is_deterministic_and_removes_its_stale_parts(corpus) -> None:
    data, _truth = corpus["plain_b"]
    rule = SplitRule(strategy=SplitStrategy.FIXED_PAGES, pages_per_letter=2)
    request = request_envelope(rule)
    first, store, first_envelope = run_split(data, rule, envelope=request)
    assert isinstance(first, DocumentSplit)
    split = f"doc-1/{request.event_id}"
    leftover = part_key(ACCOUNT, LETTER, split, 999)  # e.g. from an interrupted run of the same request
    store.put(leftover, b"%PDF-1.7 left over", content_type="application/pdf")
    again, _, again_envelope = run_split(data, rule, store=store, envelope=request)
    assert first_envelope.event_id == again_envelope.event_id
    assert first == again
    assert not store.exists(leftover)
    parts = store.list(f"accounts/{ACCOUNT}/letters/{LETTER}/parts/{split}/")
    assert len(parts) == len(first.parts)
    thumbs = store.list(f"accounts/{ACCOUNT}/letters/{LETTER}/thumbnails/{split}/")
    assert thumbs == [thumbnail_pack_key(ACCOUNT, LETTER, split)]
    assert sum(p.thumbnail_size or 0 for p in first.parts) == len(store.get(thumbs[0]))


def test_a_resplit_never_overwrites_or_removes_the_earlier_split(corpus) -> None:
    data, _truth = corpus["plain_b"]
    store = MemoryStore()
    old_layout = thumbnail_key(ACCOUNT, LETTER, "doc-1", 0)  # a per-part thumbnail of an old event version
    store.put(old_layout, b"png of the old layout", content_type="image/png")
    rule = SplitRule(strategy=SplitStrategy.FIXED_PAGES, pages_per_letter=2)
    first, store, first_envelope = run_split(data, rule, store=store)
    assert isinstance(first, DocumentSplit)
    before = {p.storage_key: store.get(p.storage_key) for p in first.parts}
    pack_before = store.get(first.parts[0].thumbnail_key or "")
    # the letters service sends a new SplitRequested for every re-split, with the same or another rule
    same, _, same_envelope = run_split(data, rule, store=store)
    fewer, _, fewer_envelope = run_split(
        data, SplitRule(strategy=SplitStrategy.FIXED_PAGES, pages_per_letter=6), store=store
    )
    assert isinstance(same, DocumentSplit)
    assert isinstance(fewer, DocumentSplit)
    # new results that consumers deduplicating by event id must not drop
    assert len({first_envelope.event_id, same_envelope.event_id, fewer_envelope.event_id}) == 3
    assert {p.part_id for p in same.parts}.isdisjoint({p.part_id for p in first.parts})
    assert {p.storage_key for p in fewer.parts}.isdisjoint(before)
    assert {p.storage_key for p in same.parts}.isdisjoint(before)
    assert same.parts[0].thumbnail_key != first.parts[0].thumbnail_key
    for key, data_before in before.items():
        assert store.get(key) == data_before
    assert store.get(first.parts[0].thumbnail_key or "") == pack_before
    assert store.exists(old_layout)
    all_parts = store.list(f"accounts/{ACCOUNT}/letters/{LETTER}/parts/doc-1/")
    assert len(all_parts) == len(first.parts) + len(same.parts) + len(fewer.parts)


def test_landscape_pages_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "landscape.pdf"
    truth = write_serial_letter(path, RECIPIENTS[:6], seed=4, landscape_every=3)
    result, _, _ = run_split(
        path.read_bytes(), SplitRule(strategy=SplitStrategy.FIRST_PAGE, first_page_text="Seite 1 von")
    )
    result = _assert_exact(result, truth)
    flagged = [p.index for p in result.parts if any("nicht A4 hochkant" in w for w in p.warnings)]
    assert flagged == [2, 5]
    assert any("nicht A4 hochkant" in w for w in result.warnings)


class _FlakyStore(MemoryStore):
    """Object storage that goes down after ``healthy_puts`` uploads (for outage tests)."""

    def __init__(self, healthy_puts: int) -> None:
        super().__init__()
        self.healthy_puts = healthy_puts
        self.down = False

    def put(self, key: str, data: bytes, **kwargs: Any) -> None:
        output = key.split("/")[-4] in {"parts", "thumbnails"}  # .../parts/<document>/<split id>/<index>.pdf
        if self.down or (output and self.healthy_puts <= 0):
            self.down = True
            raise StorageUnavailableError("connection refused")
        if output:
            self.healthy_puts -= 1
        super().put(key, data, **kwargs)


@pytest.mark.parametrize("healthy_puts", [9, len(RECIPIENTS)], ids=["while-cutting-parts", "at-the-thumbnail-pack"])
def test_storage_outage_mid_split_is_retried_and_resumes_to_the_same_result(
    corpus: dict[str, tuple[bytes, list[SampleLetterTruth]]], healthy_puts: int
) -> None:
    data, truth = corpus["plain_b"]
    rule = SplitRule(strategy=SplitStrategy.ADDRESS_BLOCK)
    request = request_envelope(rule)
    healthy, _, healthy_envelope = run_split(data, rule, envelope=request)
    store = _FlakyStore(healthy_puts=healthy_puts)
    with pytest.raises(TransientError, match="object storage unavailable"):
        run_split(data, rule, store=store, envelope=request)  # the job is retried; nothing is emitted
    store.down, store.healthy_puts = False, 10**6  # storage is back: the job resumes
    resumed, store, resumed_envelope = run_split(data, rule, store=store, envelope=request)
    assert isinstance(resumed, DocumentSplit)
    assert resumed_envelope.event_id == healthy_envelope.event_id  # same event: consumers deduplicate it
    assert resumed.model_dump() == healthy.model_dump()
    assert len(store.list(f"accounts/{ACCOUNT}/letters/{LETTER}/parts/doc-1/")) == len(truth)  # no duplicates
