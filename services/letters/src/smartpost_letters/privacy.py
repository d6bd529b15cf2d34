"""GDPR for the letters service: a contact's erasure (crypto-shredding) and the export of their data.

On ``ContactErasureRequested`` (``masterdata.events``) for contact C:

1. every letter with parts assigned to C gets a ``PersonalDataErased`` event (ids only): the audit trail of the
   letter shows it, and cached copies of the letter in any replica scrub the values when they fast-forward;
2. the PDFs of C's parts (and per-part thumbnails) are deleted from object storage, and so are the shared files
   that hold C's pages next to other recipients': the uploaded source PDF of every split document with a part of
   C and that document's thumbnail pack (``SourceFilesErased`` on the letter; the document cannot be split again,
   the review shows a placeholder for the thumbnails; the other recipients' part PDFs stay for portal, print and
   retention);
3. the keys of C's parts are deleted (``adapters.subject_keys``): every stored event and snapshot of those parts
   now decodes with ``[gelöscht]``;
4. the erasure is recorded with its counts in ``privacy_erasures`` (same transaction as the processed-event row).

Re-running it is harmless (no keys left, nothing to do; a missing object counts as deleted).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import IntegrityError

from smartpost_letters.application import MAX_CONCURRENCY_RETRIES, LetterNotFoundError
from smartpost_letters.domain.erasure import erase_personal_data, erase_source_files
from smartpost_letters.domain.letter import Actor
from smartpost_shared.contracts.masterdata import ContactErasureRequested
from smartpost_shared.logging import get_logger
from smartpost_shared.messaging import SqlIdempotency
from smartpost_shared.privacy import record_erasure
from smartpost_shared.storage import ObjectNotFoundError
from smartpost_shared.topics import MASTERDATA

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from smartpost_letters.adapters.subject_keys import SubjectKeyStore
    from smartpost_letters.application import LetterService
    from smartpost_letters.domain.letter import SerialLetter
    from smartpost_shared.contracts.envelope import Envelope
    from smartpost_shared.messaging import EventConsumer
    from smartpost_shared.settings import KafkaSettings
    from smartpost_shared.storage import ObjectStore

log = get_logger(__name__)

SERVICE = "letters"


class LetterPrivacy:
    def __init__(self, service: LetterService, keys: SubjectKeyStore, store: ObjectStore | None) -> None:
        self.service = service
        self.keys = keys
        self.store = store

    def _parts_by_letter(self, account_id: str, contact_id: str) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = defaultdict(list)
        for letter_id, part_id in self.keys.parts_of(account_id, contact_id):
            grouped[letter_id].append(part_id)
        return grouped

    def _record_on_letter(
        self, account_id: str, letter_id: uuid.UUID, erasure_id: str, contact_id: str, part_ids: list[str], actor: str
    ) -> tuple[list[tuple[str, str | None]], list[str]]:
        """Append ``PersonalDataErased`` (and ``SourceFilesErased``).

        Returns (part storage key, per-part thumbnail key) of the erased parts and the keys of the shared files
        (sources, thumbnail packs) to delete.
        """
        service = self.service
        for _ in range(MAX_CONCURRENCY_RETRIES):
            with service.app.letters.lock(letter_id):
                try:
                    letter = service._get_locked(account_id, letter_id)  # noqa: SLF001 - same service
                except LetterNotFoundError:
                    return [], []
                objects = [
                    (p.storage_key, p.thumbnail_key if p.thumbnail_offset is None else None)
                    for p in letter.parts()
                    if p.part_id in set(part_ids)
                ]

                def change(target: SerialLetter) -> list[str]:
                    erase_personal_data(
                        target, erasure_id=erasure_id, contact_id=contact_id, part_ids=part_ids, actor=Actor(actor)
                    )
                    return erase_source_files(
                        target, erasure_id=erasure_id, contact_id=contact_id, part_ids=part_ids, actor=Actor(actor)
                    )

                try:
                    shared = service._apply_and_save(letter, change)  # noqa: SLF001
                except IntegrityError:
                    continue
                return objects, shared
        raise ConnectionError(f"letter {letter_id} kept changing concurrently; retry later")

    def erase(self, envelope: Envelope) -> dict[str, int]:
        """The erasure, in short transactions of its own (SQLite allows one writer; re-running is harmless)."""
        payload = envelope.payload
        assert isinstance(payload, ContactErasureRequested)
        account, contact = envelope.account_id, payload.contact_id
        actor = f"datenschutz:{payload.requested_by}"
        letters = 0
        parts = 0
        objects = 0
        shared_deleted = 0
        for letter_id, part_ids in self._parts_by_letter(account, contact).items():
            erased, shared = self._record_on_letter(
                account, uuid.UUID(letter_id), payload.erasure_id, contact, part_ids, actor
            )
            letters += 1 if erased else 0
            parts += len(erased)
            # _delete counts only objects that existed: a redelivered erasure reports 0 (S3 deletes are silent).
            objects += sum(self._delete(key) for pair in erased for key in pair)
            deleted = sum(self._delete(key) for key in shared)
            shared_deleted += deleted
            if shared:
                log.info(
                    "letters.shared_files_erased",
                    letter_id=letter_id,
                    contact_id=contact,
                    erasure_id=payload.erasure_id,
                    keys=shared,
                    deleted=deleted,
                )
        shredded = self.keys.shred(account, contact)
        log.info("letters.contact_shredded", contact_id=contact, letters=letters, parts=parts, keys=shredded)
        return {
            "serienbriefe": letters,
            "einzelbriefe": parts,
            "schluessel_geloescht": shredded,
            "speicherobjekte": objects,
            "quelldateien_und_vorschaupakete": shared_deleted,
        }

    def _delete(self, key: str | None) -> int:
        """1 if the object was deleted now, 0 if there is none (already gone, or no storage configured)."""
        if key is None or self.store is None:
            return 0
        try:
            if not self.store.exists(key):
                return 0
            self.store.delete(key)
        except ObjectNotFoundError:
            return 0
        return 1

    def export(self, conn: Connection, account_id: str, contact_id: str) -> dict[str, Any]:
        """Letters and parts of this contact with what was read from the pages (German labels)."""
        del conn  # the letters live in the event store
        result: list[dict[str, Any]] = []
        for letter_id, part_ids in sorted(self._parts_by_letter(account_id, contact_id).items()):
            try:
                letter = self.service.get_letter(account_id, uuid.UUID(letter_id))
            except LetterNotFoundError:
                continue
            wanted = set(part_ids)
            result.append(
                {
                    "Serienbrief": letter_id,
                    "Titel": letter.title,
                    "Briefdatum": letter.letter_date.isoformat(),
                    "Status": letter.status.value,
                    "Einzelbriefe": [
                        {
                            "Einzelbrief": p.part_id,
                            "Seiten": f"{p.first_page}-{p.last_page}",
                            "Anschrift auf dem Brief": list(p.address_lines),
                            "Kennungen": list(p.identifiers),
                            "Belege der Zuordnung": list(p.assignment.evidence) if p.assignment else [],
                            "Liegenschaft": p.assignment.property_id if p.assignment else None,
                            "Einheit": p.assignment.unit_id if p.assignment else None,
                            "Speicherort": p.storage_key,
                        }
                        for p in letter.parts()
                        if p.part_id in wanted and p.assignment is not None and p.assignment.contact_id == contact_id
                    ],
                }
            )
        return {"Serienbriefe": result} if result else {}


def subscribe_erasures(
    consumer: EventConsumer, engine: Engine, privacy: LetterPrivacy, kafka: KafkaSettings, group_id: str
) -> None:
    """Only ``ContactErasureRequested`` from master data; processed-event row and audit record commit together."""
    idempotency = SqlIdempotency(engine, f"{SERVICE}:privacy")

    async def on_erasure(envelope: Envelope) -> None:
        # First the erasure (event store, storage, keys), then the processed-event row with the audit record: a
        # crash in between erases again on redelivery (nothing left to do) and records it once.
        counts = await asyncio.to_thread(privacy.erase, envelope)

        def record(event: Envelope, conn: Connection) -> None:
            record_erasure(conn, SERVICE, event, counts)

        await asyncio.to_thread(idempotency.run_once, record, envelope)

    async def on_erasures(envelopes: list[Envelope]) -> None:
        for envelope in envelopes:
            await on_erasure(envelope)

    # Consumed in groups: master data is thousands of events per account import, all but the erasure requests passed
    # over; one at a time each cost a Kafka offset commit (an import of 15,000 events kept letters busy for ~9 s of
    # CPU while the next split ran). Grouped, passing over costs one commit per batch; erasures still run one by one.
    consumer.subscribe_grouped(
        MASTERDATA,
        {"ContactErasureRequested": on_erasure},
        on_erasures,
        group_id=f"{group_id}-privacy",
        session_timeout_ms=kafka.session_timeout_ms,
        heartbeat_interval_ms=kafka.heartbeat_interval_ms,
    )
