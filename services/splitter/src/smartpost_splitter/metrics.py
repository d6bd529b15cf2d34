"""Split pages and seconds: counted per document as the splitter finishes it (``smartpost_split_*``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from smartpost_shared.metrics import record_split

if TYPE_CHECKING:
    from smartpost_shared.contracts.envelope import Envelope


def record_split_result(result: Envelope, seconds: float) -> None:
    """Count one finished document: ``split`` with its source pages, or ``failed`` (pages unknown count as 0)."""
    outcome = "split" if result.event_type == "DocumentSplit" else "failed"
    pages = getattr(result.payload, "source_page_count", 0) or getattr(result.payload, "page_count", 0) or 0
    record_split(outcome, int(pages), seconds)
