"""Envelope planning: one envelope per contact (merged) or per letter, split when a mailpiece outgrows an envelope.

Ids are deterministic (print order + contact (+ item) (+ part)), so replaying an order plans the same mailpieces
and the provider's idempotency key stays the same across crashes.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from smartpost_shared.contracts.letters import ReleasedItem


@dataclass(frozen=True)
class Segment:
    """Pages ``first_page``..``last_page`` (1-based, inclusive) of one released letter."""

    item_id: str
    storage_key: str
    first_page: int
    last_page: int
    item_page_count: int

    @property
    def pages(self) -> int:
        return self.last_page - self.first_page + 1

    @property
    def starts_letter(self) -> bool:
        return self.first_page == 1


@dataclass(frozen=True)
class MailpiecePlan:
    mailpiece_id: str
    contact_id: str
    segments: tuple[Segment, ...]
    part_index: int = 1
    part_count: int = 1
    item_ids: tuple[str, ...] = field(default=())

    @property
    def pages(self) -> int:
        return sum(s.pages for s in self.segments)

    @property
    def needs_cover(self) -> bool:
        """An envelope that starts in the middle of a letter has no address page of its own."""
        return not self.segments[0].starts_letter


class OversizeError(ValueError):
    """A mailpiece is too big for one envelope and splitting is switched off."""


def mailpiece_id(print_order_id: str, contact_id: str, item_id: str | None = None, part: int = 1) -> str:
    parts = ["print", print_order_id, contact_id]
    if item_id is not None:
        parts.append(item_id)
    if part > 1:
        parts.append(f"part{part}")
    return "mp-" + uuid.uuid5(uuid.NAMESPACE_URL, "smartpost:" + "/".join(parts)).hex


def group_by_contact(items: Sequence[ReleasedItem]) -> list[tuple[str, list[ReleasedItem]]]:
    """Items per contact id (not per name), contacts in order of first appearance, letters in original order."""
    groups: dict[str, list[ReleasedItem]] = {}
    for item in items:
        groups.setdefault(item.contact_id, []).append(item)
    return list(groups.items())


def _sheets(pages: int, *, duplex: bool) -> int:
    return math.ceil(pages / 2) if duplex else pages


def plan_mailpieces(
    print_order_id: str,
    items: Sequence[ReleasedItem],
    *,
    one_envelope_per_contact: bool,
    duplex: bool,
    max_sheets: int,
    max_pages: int | None = None,
    split_oversize: bool = True,
) -> list[MailpiecePlan]:
    """Plan envelopes. Capacity keeps room for a cover page (one sheet) in every envelope.

    Letters are packed whole; a letter that alone exceeds one envelope is cut into page chunks, and every chunk
    after the first gets a cover page with the address (``needs_cover``).
    """
    cover_pages = 2 if duplex else 1
    cap_sheets = max_sheets - 1
    cap_pages = (max_pages - cover_pages) if max_pages is not None else None
    if cap_sheets < 1 or (cap_pages is not None and cap_pages < 1):
        raise OversizeError("envelope capacity too small for a cover page and one sheet")
    plans: list[MailpiecePlan] = []
    for contact_id, contact_items in group_by_contact(items):
        groups = [contact_items] if one_envelope_per_contact else [[i] for i in contact_items]
        for group in groups:
            envelopes = _pack(group, duplex=duplex, cap_sheets=cap_sheets, cap_pages=cap_pages)
            if len(envelopes) > 1 and not split_oversize:
                raise OversizeError(
                    f"contact {contact_id}: {sum(i.page_count for i in group)} pages need {len(envelopes)} envelopes"
                )
            single_item = None if one_envelope_per_contact else group[0].item_id
            for index, segments in enumerate(envelopes, start=1):
                plans.append(
                    MailpiecePlan(
                        mailpiece_id=mailpiece_id(print_order_id, contact_id, single_item, index),
                        contact_id=contact_id,
                        segments=tuple(segments),
                        part_index=index,
                        part_count=len(envelopes),
                        item_ids=tuple(dict.fromkeys(s.item_id for s in segments)),
                    )
                )
    return plans


def _pack(
    items: Sequence[ReleasedItem], *, duplex: bool, cap_sheets: int, cap_pages: int | None
) -> list[list[Segment]]:
    chunk_pages = cap_sheets * 2 if duplex else cap_sheets
    if cap_pages is not None:
        chunk_pages = min(chunk_pages, cap_pages)
    envelopes: list[list[Segment]] = []
    current: list[Segment] = []
    sheets = pages = 0
    for item in items:
        chunks = [
            Segment(
                item.item_id, item.storage_key, start, min(start + chunk_pages - 1, item.page_count), item.page_count
            )
            for start in range(1, item.page_count + 1, chunk_pages)
        ]
        for chunk in chunks:
            chunk_sheets = _sheets(chunk.pages, duplex=duplex)
            # Duplex pads every letter to an even page count so the next one starts on a fresh sheet.
            chunk_printed = chunk_sheets * 2 if duplex else chunk.pages
            fits = sheets + chunk_sheets <= cap_sheets and (cap_pages is None or pages + chunk_printed <= cap_pages)
            if current and not fits:
                envelopes.append(current)
                current, sheets, pages = [], 0, 0
            current.append(chunk)
            sheets += chunk_sheets
            pages += chunk_printed
    if current:
        envelopes.append(current)
    return envelopes
