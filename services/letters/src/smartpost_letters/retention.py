"""Retention job of the letters service: letters whose document type's retention period ended lose their files.

Runs in one replica at a time (lease ``letters-retention``, :func:`smartpost_shared.lease.periodic_work`) every
``retention_interval_seconds``. For each letter past its period (:mod:`smartpost_shared.retention`: the German default
of its document type or an override in ``retention_years``, counted from the end of the letter date's year) it
deletes the uploaded sources, part PDFs and thumbnails from storage and records ``RetentionExpired`` in the letter's
history (actor ``system:retention``, document type, period, counts): the letter shows "Aufbewahrungsfrist
abgelaufen". The portal publisher removes its published copies with its own job by the same rule. The clock is
injected (tests move it by years).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from smartpost_letters.adapters.read_model import letter_summaries
from smartpost_letters.application import CommandContext, LetterNotFoundError
from smartpost_letters.domain.errors import IllegalTransitionError
from smartpost_shared.logging import get_logger
from smartpost_shared.retention import is_due, oldest_undue_letter_date, retention_ends, retention_for

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import Engine

    from smartpost_letters.application import LetterService
    from smartpost_letters.domain.letter import SerialLetter
    from smartpost_shared.storage import ObjectStore

log = get_logger(__name__)

ACTOR = "system:retention"


@dataclass(frozen=True)
class LettersRetentionResult:
    letters: int = 0
    objects_deleted: int = 0


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class LettersRetentionJob:
    engine: Engine
    service: LetterService
    store: ObjectStore
    overrides: dict[str, int] = field(default_factory=dict)
    clock: Callable[[], datetime] = _utcnow
    batch_size: int = 500

    def due_letters(self, today: date) -> list[tuple[str, str]]:
        """(account, letter id) of letters whose period has ended by ``today`` (expired ones included)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    letter_summaries.c.account_id,
                    letter_summaries.c.letter_id,
                    letter_summaries.c.document_type_id,
                    letter_summaries.c.document_type_path,
                    letter_summaries.c.letter_date,
                )
                .where(letter_summaries.c.letter_date < oldest_undue_letter_date(today).isoformat())
                .order_by(letter_summaries.c.letter_date)
                .limit(self.batch_size)
            ).all()
        due = []
        for row in rows:
            path = [str(p) for p in json.loads(row.document_type_path)]
            retention = retention_for(path, self.overrides, type_id=row.document_type_id)
            if is_due(date.fromisoformat(str(row.letter_date)), retention.years, today):
                due.append((str(row.account_id), str(row.letter_id)))
        return due

    def run_once(self) -> LettersRetentionResult:
        today = self.clock().date()
        letters = objects = 0
        for account_id, letter_id in self.due_letters(today):
            try:
                deleted = self._expire(account_id, uuid.UUID(letter_id), today)
            except (LetterNotFoundError, IllegalTransitionError):
                continue
            if deleted is None:
                continue
            letters += 1
            objects += deleted
        return LettersRetentionResult(letters, objects)

    def _expire(self, account_id: str, letter_id: uuid.UUID, today: date) -> int | None:
        letter: SerialLetter = self.service.get_letter(account_id, letter_id)
        if letter.retention_expired_at is not None:
            return None
        retention = retention_for(letter.document_type.path, self.overrides, type_id=letter.document_type.id)
        if not is_due(letter.letter_date, retention.years, today):
            return None
        deleted = 0
        for key in letter.stored_files():
            # Files first: a crash before the event is recorded removes the rest next run.
            with contextlib.suppress(Exception):
                if self.store.exists(key):
                    self.store.delete(key)
                    deleted += 1
        ctx = CommandContext(account_id=account_id, actor=ACTOR, command_id=f"retention:{letter_id}")
        self.service.expire_retention(
            ctx,
            letter_id,
            retention_years=retention.years,
            retention_source=retention.source,
            retention_ended=retention_ends(letter.letter_date, retention.years),
            objects_deleted=deleted,
        )
        log.info("letters.retention_expired", account_id=account_id, letter_id=str(letter_id), objects=deleted)
        return deleted
