"""Budgets per document and the German reasons staff read when a document exceeds one. No I/O here.

A document that exceeds a budget fails with ``reason_code`` ``corrupt`` (the contract has no other code for "cannot
be processed safely"; the German reason names the budget) and never takes the service or other documents down.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartpost_shared.vocabulary import SplitFailureReason
from smartpost_splitter.domain import Failure

MB = 1024 * 1024


@dataclass(frozen=True)
class Budgets:
    max_pages: int = 25_000
    # Decoded size of all content/image streams (images count width x height x components x bits).
    max_stream_bytes: int = 512 * MB
    # Largest page side in points (14,400 pt = 200 in = 5.08 m is the PDF limit without UserUnit).
    max_page_side_pt: float = 14_400.0
    # Thumbnails are scaled by both sides: never wider than ``thumbnail_width``, never higher than this factor of it.
    thumbnail_max_aspect: float = 4.0
    # Wall clock per document and per page (a page range gets pages x page_seconds + a fixed start-up allowance).
    document_seconds: float = 600.0
    page_seconds: float = 2.0
    task_overhead_seconds: float = 10.0
    # Stored parts may be at most this multiple of the upload (plus a floor for tiny uploads with big fonts).
    max_stored_ratio: float = 25.0
    stored_floor_bytes: int = 64 * MB
    # Address space per worker process and CPU seconds per task (resource.setrlimit in the sandbox).
    memory_bytes: int = 1024 * MB
    cpu_seconds: int = 300

    def stored_budget(self, upload_bytes: int) -> int:
        return max(int(upload_bytes * self.max_stored_ratio), self.stored_floor_bytes)

    def task_seconds(self, pages: int) -> float:
        return self.task_overhead_seconds + pages * self.page_seconds


def _n(value: int) -> str:
    return f"{value:,}".replace(",", ".")


def _mb(value: float) -> str:
    return f"{value / MB:,.0f} MB".replace(",", ".")


def too_many_pages(label: str, pages: int, budget: Budgets) -> Failure:
    return Failure(
        SplitFailureReason.CORRUPT,
        f"„{label}“ hat {pages:,} Seiten; je Dokument sind höchstens {budget.max_pages:,} Seiten erlaubt. ".replace(
            ",", "."
        )
        + "Bitte das Dokument in kleineren Teilen hochladen.",
    )


def too_much_data(label: str, budget: Budgets) -> Failure:
    return Failure(
        SplitFailureReason.CORRUPT,
        f"„{label}“ enthält mehr als {_mb(budget.max_stream_bytes)} entpackte Daten (Seiteninhalte und Bilder; "
        "möglicherweise eine „Zip-Bombe“) und wird aus Sicherheitsgründen nicht verarbeitet.",
    )


def page_too_large(label: str, page: int, width_pt: float, height_pt: float) -> Failure:
    return Failure(
        SplitFailureReason.CORRUPT,
        f"„{label}“: Seite {page} ist {width_pt / 72 * 25.4:,.0f} × {height_pt / 72 * 25.4:,.0f} mm groß und damit "
        "größer als jedes Papierformat; das Dokument wird nicht verarbeitet.".replace(",", "."),
    )


def too_deeply_nested(label: str) -> Failure:
    return Failure(
        SplitFailureReason.CORRUPT,
        f"„{label}“ ist zu tief verschachtelt (Objekte in Tausenden Ebenen ineinander) und kann nicht sicher "
        "gelesen werden. Bitte das Dokument neu exportieren.",
    )


def too_slow(label: str, budget: Budgets, *, page: int | None = None) -> Failure:
    where = f" (bei Seite {page})" if page is not None else ""
    return Failure(
        SplitFailureReason.CORRUPT,
        f"„{label}“ konnte nicht in der erlaubten Zeit verarbeitet werden{where}; höchstens "
        f"{budget.document_seconds:.0f} s je Dokument und {budget.page_seconds:.0f} s je Seite. Das Dokument ist "
        "ungewöhnlich aufwendig aufgebaut; bitte neu exportieren (z. B. „Als PDF drucken“).",
    )


def too_much_memory(label: str, budget: Budgets) -> Failure:
    return Failure(
        SplitFailureReason.CORRUPT,
        f"„{label}“ braucht beim Lesen mehr als {_mb(budget.memory_bytes)} Arbeitsspeicher und wird aus "
        "Sicherheitsgründen nicht verarbeitet. Bitte das Dokument neu exportieren.",
    )


def reader_crashed(label: str) -> Failure:
    return Failure(
        SplitFailureReason.CORRUPT,
        f"„{label}“ hat das PDF-Leseprogramm zum Absturz gebracht (beschädigte oder manipulierte Datei) und wird "
        "nicht verarbeitet. Bitte das Dokument neu exportieren.",
    )


def too_much_output(label: str, stored: int, upload: int) -> Failure:
    return Failure(
        SplitFailureReason.CORRUPT,
        f"„{label}“ würde beim Aufteilen mehr als {_mb(stored)} Speicher belegen (Upload: {_mb(upload)}); "
        "vermutlich teilen sich viele Seiten sehr große Bilder. Bitte das Dokument mit verkleinerten Bildern "
        "exportieren.",
    )


def internal_error(label: str, correlation_id: str) -> Failure:
    return Failure(
        SplitFailureReason.CORRUPT,
        f"„{label}“ konnte wegen eines unerwarteten Fehlers nicht aufgeteilt werden. Bitte erneut versuchen oder "
        f"den Support mit der Vorgangsnummer {correlation_id} kontaktieren.",
    )


def repeatedly_aborted(label: str, attempts: int) -> Failure:
    return Failure(
        SplitFailureReason.CORRUPT,
        f"„{label}“: die Verarbeitung wurde {attempts}-mal abgebrochen (Neustart des Dienstes während des "
        "Aufteilens) und wird nicht noch einmal versucht. Bitte das Dokument erneut hochladen.",
    )
