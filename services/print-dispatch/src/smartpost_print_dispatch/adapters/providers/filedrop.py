"""File-drop provider: one batch PDF + CSV manifest per order batch into a bucket or folder, as print shops take.

Never twice: the batch id is recorded with its mailpieces before anything is written, the PDF is written first
and the manifest last (print shops start on the manifest), and a batch whose manifest exists is not written again.
The print shop reports back by dropping ``status/*.csv`` files (mailpiece_id;status;tracking_number;reason).
"""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING

import pikepdf

from smartpost_print_dispatch.adapters.providers.base import (
    ProviderUpdate,
    Submission,
    SubmitResult,
    TrackedPiece,
)

if TYPE_CHECKING:
    from smartpost_print_dispatch.domain.geometry import AddressProfile
    from smartpost_shared.storage import ObjectStore

MANIFEST_FIELDS = [
    "mailpiece_id",
    "contact_id",
    "first_page",
    "last_page",
    "pages",
    "sheets",
    "duplex",
    "color",
    "envelope",
    "letter_class",
    "registered",
    "dispatch_date",
    "address",
]


class FolderStore:
    """The part of the object-store interface the file drop needs, on a local folder (atomic renames)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"key escapes the drop folder: {key}")
        return path

    def put(self, key: str, data: bytes, *, content_type: str = "", metadata: dict[str, str] | None = None) -> None:
        del content_type, metadata
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix.endswith("/") else self._path(prefix).parent
        if not base.exists():
            return []
        keys = [str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")]
        return sorted(k for k in keys if k.startswith(prefix))


class FileDropProvider:
    batches_orders = True
    # The batch id names the dropped files: a resent batch overwrites the same objects, the shop prints it once.
    honours_idempotency = True

    def __init__(
        self,
        target: ObjectStore | FolderStore,
        profile: AddressProfile,
        *,
        prefix: str = "print-shop",
        name: str = "filedrop",
    ) -> None:
        self.target = target
        self.profile = profile
        self.prefix = prefix.strip("/")
        self.name = name

    def _order_prefix(self, account_id: str, print_order_id: str) -> str:
        return f"{self.prefix}/{account_id}/{print_order_id}/"

    async def submit(self, batch_id: str, submissions: list[Submission]) -> list[SubmitResult]:
        return await asyncio.to_thread(self._submit, batch_id, submissions)

    def _submit(self, batch_id: str, submissions: list[Submission]) -> list[SubmitResult]:
        if not submissions:
            return []
        first = submissions[0]
        base = self._order_prefix(first.account_id, first.print_order_id) + batch_id
        manifest_key = base + ".csv"
        results = [SubmitResult(s.mailpiece_id, f"{batch_id}#{s.mailpiece_id}", "submitted") for s in submissions]
        if self.target.exists(manifest_key):
            return results  # already dropped before a crash: the print shop has it, do not drop it again
        batch = pikepdf.Pdf.new()
        sources: list[pikepdf.Pdf] = []
        rows: list[dict[str, object]] = []
        try:
            for submission in submissions:
                source = pikepdf.open(io.BytesIO(submission.pdf))
                sources.append(source)
                start = len(batch.pages) + 1
                batch.pages.extend(source.pages)
                options = submission.options
                rows.append(
                    {
                        "mailpiece_id": submission.mailpiece_id,
                        "contact_id": submission.contact_id,
                        "first_page": start,
                        "last_page": len(batch.pages),
                        "pages": submission.pages,
                        "sheets": submission.sheets,
                        "duplex": "duplex" if options.duplex else "simplex",
                        "color": "color" if options.color else "grayscale",
                        "envelope": submission.envelope,
                        "letter_class": submission.letter_class,
                        "registered": options.registered.value,
                        "dispatch_date": options.dispatch_date.isoformat() if options.dispatch_date else "",
                        "address": " | ".join(submission.address_lines),
                    }
                )
            buffer = io.BytesIO()
            batch.save(buffer, compress_streams=False)
        finally:
            batch.close()
            for source in sources:
                source.close()
        manifest = io.StringIO()
        writer = csv.DictWriter(manifest, fieldnames=MANIFEST_FIELDS, delimiter=";", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        self.target.put(base + ".pdf", buffer.getvalue(), content_type="application/pdf")
        self.target.put(manifest_key, manifest.getvalue().encode("utf-8"), content_type="text/csv")
        return results

    async def fetch_status(self, pieces: list[TrackedPiece]) -> list[ProviderUpdate]:
        return await asyncio.to_thread(self._fetch_status, pieces)

    def _fetch_status(self, pieces: list[TrackedPiece]) -> list[ProviderUpdate]:
        wanted = {p.mailpiece_id: p for p in pieces}
        prefixes = sorted({self._order_prefix(p.account_id, p.print_order_id) + "status/" for p in pieces})
        updates: list[ProviderUpdate] = []
        for prefix in prefixes:
            for key in self.target.list(prefix):
                text = self.target.get(key).decode("utf-8-sig")
                for row in csv.DictReader(io.StringIO(text), delimiter=";"):
                    piece = wanted.get((row.get("mailpiece_id") or "").strip())
                    if piece is None or not row.get("status"):
                        continue
                    updates.append(
                        ProviderUpdate(
                            provider_ref=piece.provider_ref,
                            mailpiece_id=piece.mailpiece_id,
                            status=row["status"].strip(),
                            tracking_number=(row.get("tracking_number") or "").strip() or None,
                            reason=(row.get("reason") or "").strip() or None,
                        )
                    )
        return updates

    async def cancel(self, piece: TrackedPiece) -> ProviderUpdate:
        # A dropped file cannot be pulled back; the print shop is told through a cancel marker it checks.
        key = self._order_prefix(piece.account_id, piece.print_order_id) + f"cancel/{piece.mailpiece_id}"
        await asyncio.to_thread(self.target.put, key, b"cancel requested\n", content_type="text/plain")
        return ProviderUpdate(provider_ref=piece.provider_ref, mailpiece_id=piece.mailpiece_id, status="cancelling")

    async def ready(self) -> bool:
        try:
            await asyncio.to_thread(self.target.list, self.prefix + "/")
        except Exception:  # noqa: BLE001 - readiness only reports
            return False
        return True

    async def close(self) -> None:
        return None
