"""Use cases of the letters service over the event-sourced aggregates (synchronous; callers use ``to_thread``).

- every command is scoped to the caller's account: another account's letter is "not found";
- a client command id makes a retried command a no-op that answers with the current state;
- an expected version (``If-Match``) turns a stale write into :class:`VersionConflictError` (HTTP 409);
- without an expected version, a concurrent write (optimistic-concurrency ``IntegrityError``) is retried
  on the fresh state, so consumers and API calls never overwrite each other;
- the audit trail is the letter's event history (actor and timestamp on every event).
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent, project_aggregate
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Mapper, Transcoding
from pydantic import BaseModel

from smartpost_letters.adapters.event_store import FACTORY_TOPIC as DEFERRED_POSTGRES_FACTORY
from smartpost_letters.adapters.event_store import open_deferred
from smartpost_letters.domain.document_types import DocumentTypeTree, tree_id_for
from smartpost_letters.domain.errors import DocumentTypeError, IllegalTransitionError
from smartpost_letters.domain.letter import Actor, InboundOutcome, SerialLetter
from smartpost_letters.domain.models import (
    Assignment,
    BulkAction,
    BulkChange,
    DocumentStatus,
    MailpieceView,
    Part,
    PendingAssignment,
    SafeProposalPolicy,
    SourceDocument,
    SplitFailure,
    SplitRequest,
)
from smartpost_letters.integration import wire_envelopes
from smartpost_shared.contracts.common import DocumentType, SplitRule
from smartpost_shared.contracts.documents import AssignmentWarning, Candidate, PartAssignment
from smartpost_shared.contracts.letters import PrintOptions, ReleasedItem
from smartpost_shared.logging import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from eventsourcing.domain import DomainEventProtocol

    from smartpost_letters.adapters.subject_keys import SubjectKeyStore
    from smartpost_letters.domain.models import DocumentRole
    from smartpost_shared.contracts.common import LetterScope
    from smartpost_shared.contracts.documents import SplitFailureReason, SplitPart
    from smartpost_shared.contracts.envelope import Envelope

log = get_logger(__name__)

LETTER_NAMESPACE = uuid.UUID("a3d4b3f0-6f55-4a0c-8a2e-52f9d0b1c7e4")
DOCUMENT_NAMESPACE = uuid.UUID("e1b7c0de-31a9-4c4e-b7f6-0d8f4a2c9b15")
MAX_CONCURRENCY_RETRIES = 8

T = TypeVar("T")


class LetterNotFoundError(LookupError):
    """No letter with this id in the caller's account (another account's letter is indistinguishable)."""


@dataclass(frozen=True)
class StuckLetter:
    letter_id: str
    title: str
    status: str
    waiting_for: str  # splitter, assignment, print-dispatch
    since: datetime
    seconds: float


class VersionConflictError(Exception):
    """The client's expected version is not the letter's current version."""

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(f"the letter is at version {current}, not {expected}; reload and retry")
        self.expected = expected
        self.current = current


@dataclass(frozen=True)
class CommandContext:
    account_id: str
    actor: str
    command_id: str = ""
    expected_version: int | None = None

    @property
    def as_actor(self) -> Actor:
        return Actor(self.actor, self.command_id)


@dataclass(frozen=True)
class AuditEntry:
    version: int
    timestamp: datetime
    actor: str
    action: str
    command_id: str | None
    details: dict[str, Any]


class PydanticTranscoding(Transcoding):
    """Stores a pydantic model as its JSON dict (events and snapshots carry domain values and contract types)."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model
        self.type = model
        self.name = f"pydantic:{model.__module__}.{model.__qualname__}"

    def encode(self, obj: BaseModel) -> dict[str, Any]:
        return obj.model_dump(mode="json")

    def decode(self, data: dict[str, Any]) -> BaseModel:
        return self.model.model_validate(data)


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


STORED_MODELS: tuple[type[BaseModel], ...] = (
    BulkChange,
    SourceDocument,
    Part,
    Assignment,
    SplitFailure,
    PendingAssignment,
    SplitRequest,
    MailpieceView,
    DocumentType,
    SplitRule,
    PartAssignment,
    AssignmentWarning,
    Candidate,
    PrintOptions,
    ReleasedItem,
)


class LettersApplication(Application[uuid.UUID]):
    """The event store of serial letters and document-type trees (SQLite file or PostgreSQL via ``env``)."""

    name = "letters"
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {SerialLetter: 10_000}  # see Settings.snapshot_interval

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        snapshot_interval: int | None = None,
        cached_letters: int = 2,
        subject_keys: SubjectKeyStore | None = None,
    ) -> None:
        # Per-part keys for the personal data in events (crypto-shredding, adapters.subject_keys), by default in the
        # event store's own database; an in-memory event store keeps events in clear.
        if subject_keys is None:
            from smartpost_letters.adapters.subject_keys import subject_keys_for  # noqa: PLC0415 - adapter

            subject_keys = subject_keys_for(env)
        self.subject_keys = subject_keys
        if snapshot_interval is not None:
            self.snapshotting_intervals = {SerialLetter: snapshot_interval}  # type: ignore[misc]
        super().__init__(env)
        self.letters = LetterCache(self, max_letters=cached_letters)

    def construct_mapper(self) -> Mapper[uuid.UUID]:
        mapper = super().construct_mapper()
        if self.subject_keys is None:
            return mapper
        from smartpost_letters.adapters.subject_keys import ShreddingMapper  # noqa: PLC0415 - adapter, optional

        return ShreddingMapper(mapper, self.subject_keys)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())
        for model in STORED_MODELS:
            transcoder.register(PydanticTranscoding(model))

    def _take_snapshots(self, processing_event: ProcessingEvent[uuid.UUID]) -> None:
        """Snapshot the aggregate just saved as it is in memory (the library re-reads it from the store first)."""
        if not self.snapshots or not self.snapshotting_intervals:
            return
        for event in processing_event.events:
            aggregate = processing_event.aggregates.get(event.originator_id)
            interval = self.snapshotting_intervals.get(type(aggregate)) if aggregate is not None else None
            if aggregate is None or interval is None or event.originator_version % interval:
                continue
            if getattr(aggregate, "version", None) == event.originator_version:
                snapshot_class = getattr(type(aggregate), "Snapshot", type(self).snapshot_class)
                assert snapshot_class is not None
                self.snapshots.put([snapshot_class.take(aggregate)])
            else:
                self.take_snapshot(aggregate_id=event.originator_id, version=event.originator_version)


class LetterCache:
    """The last few letters in memory, brought up to date from the event store on every use.

    A command on a 4,000-part letter then reads only the events it has not seen (usually none) instead of
    decoding and validating the whole letter from its last snapshot. Every use of a cached letter (commands,
    inbound results, reads) holds the letter's lock, so threads never see each other's half-applied changes; a
    command that fails after it changed the letter (conflict, error) evicts it, so the next use rebuilds it from
    the store. Other processes writing the same letter are picked up by the fast-forward.
    """

    def __init__(self, app: LettersApplication, *, max_letters: int = 4) -> None:
        self.app = app
        self.max_letters = max_letters
        self._letters: OrderedDict[uuid.UUID, Any] = OrderedDict()
        self._locks: dict[uuid.UUID, threading.RLock] = {}
        self._guard = threading.Lock()
        self.rebuilds = 0

    @contextmanager
    def lock(self, aggregate_id: uuid.UUID) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(aggregate_id, threading.RLock())
        with lock:
            yield

    def get(self, aggregate_id: uuid.UUID) -> Any:
        """The current aggregate (caller holds :meth:`lock`). Raises ``AggregateNotFoundError``."""
        cached = self._letters.get(aggregate_id)
        if cached is None:
            cached = self.app.repository.get(aggregate_id)
            self.rebuilds += 1
        else:
            new_events = list(self.app.repository.event_store.get(originator_id=aggregate_id, gt=cached.version))
            if new_events:
                cached = project_aggregate(cached, new_events)
        with self._guard:
            self._letters[aggregate_id] = cached
            self._letters.move_to_end(aggregate_id)
            while len(self._letters) > self.max_letters:
                self._letters.popitem(last=False)
        return cached

    def evict(self, aggregate_id: uuid.UUID) -> None:
        with self._guard:
            self._letters.pop(aggregate_id, None)


def event_store_env(url: str, *, create_tables: bool = True) -> dict[str, str]:
    """Eventsourcing environment for an event store URL (``sqlite:///path`` or ``postgresql://user:pw@h:p/db``).

    ``create_tables=False`` (PostgreSQL): building the application does not connect; call
    :func:`create_event_store_tables` once the database is reachable (the service does so in its background start-up).
    """
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        from pathlib import Path  # noqa: PLC0415 - only needed here

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path, "SQLITE_LOCK_TIMEOUT": "30"}
    match = re.match(
        r"^postgresql(?:\+psycopg)?://(?P<user>[^:@/]+)(?::(?P<password>[^@]*))?@(?P<host>[^:/]+)"
        r"(?::(?P<port>\d+))?/(?P<db>[^?]+)",
        url,
    )
    if not match:
        raise ValueError(f"unsupported event store URL {url!r}: use sqlite:///path or postgresql://user:pw@host/db")
    return {
        # create_tables=False: a factory that does not connect while the application is built (adapters.event_store).
        "PERSISTENCE_MODULE": "eventsourcing.postgres" if create_tables else DEFERRED_POSTGRES_FACTORY,
        "POSTGRES_DBNAME": match["db"],
        "POSTGRES_HOST": match["host"],
        "POSTGRES_PORT": match["port"] or "5432",
        "POSTGRES_USER": match["user"],
        "POSTGRES_PASSWORD": match["password"] or "",
        "POSTGRES_LOCK_TIMEOUT": "5",
        "POSTGRES_CONNECT_TIMEOUT": "5",
        "CREATE_TABLE": "yes" if create_tables else "no",
    }


def create_event_store_tables(app: LettersApplication, *tracking: Any) -> None:
    """Create the event store's tables (events, snapshots, the given tracking recorders) if missing; idempotent."""
    open_deferred(app.factory)
    recorders: list[Any] = [app.recorder, *tracking]
    if app.snapshots is not None:
        recorders.append(app.snapshots.recorder)
    for recorder in recorders:
        create = getattr(recorder, "create_table", None)
        if create is not None:
            create()


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


_AUDIT_SKIP = {
    "originator_id",
    "originator_version",
    "timestamp",
    "originator_topic",
    "account_id",
    "actor",
    "command_id",
}


def _action_name(event: object) -> str:
    name = type(event).__qualname__.rsplit(".", 1)[-1]
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class LetterService:
    """Commands and queries of serial letters and document types, scoped by account."""

    def __init__(
        self,
        app: LettersApplication,
        *,
        on_saved: Callable[[], None] | None = None,
        four_eyes_accounts: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.on_saved = on_saved
        # Accounts whose releases need a second person (the reviewer may not release): enforced here, not only in
        # the gateway, so no API client can bypass it.
        self.four_eyes_accounts = four_eyes_accounts

    # ---------------------------------------------------------------------------------------------- plumbing

    def _save(self, *aggregates: Any) -> None:
        self.app.save(*aggregates)
        if self.on_saved is not None:
            self.on_saved()

    def get_letter(self, account_id: str, letter_id: uuid.UUID) -> SerialLetter:
        """The current letter. Use :meth:`read` to look at it while commands may run in other threads."""
        with self.app.letters.lock(letter_id):
            return self._get_locked(account_id, letter_id)

    def read(self, account_id: str, letter_id: uuid.UUID, view: Callable[[SerialLetter], T]) -> T:
        """``view(letter)`` while no command changes the letter (responses are built this way)."""
        with self.app.letters.lock(letter_id):
            return view(self._get_locked(account_id, letter_id))

    def _get_locked(self, account_id: str, letter_id: uuid.UUID) -> SerialLetter:
        try:
            letter: object = self.app.letters.get(letter_id)
        except AggregateNotFoundError:
            raise LetterNotFoundError(str(letter_id)) from None
        if not isinstance(letter, SerialLetter) or letter.account_id != account_id:
            raise LetterNotFoundError(str(letter_id))
        return letter

    def _apply_and_save(self, letter: SerialLetter, change: Callable[[SerialLetter], T]) -> T:
        """Run ``change`` and save; on any failure after the letter changed in memory, forget the cached copy."""
        try:
            result = change(letter)
            if letter.pending_events:
                self._save(letter)
        except BaseException:
            if letter.pending_events:
                self.app.letters.evict(letter.id)
            raise
        return result

    def _execute(self, ctx: CommandContext, letter_id: uuid.UUID, command: Callable[[SerialLetter], T]) -> SerialLetter:
        for _ in range(MAX_CONCURRENCY_RETRIES):
            with self.app.letters.lock(letter_id):
                letter = self._get_locked(ctx.account_id, letter_id)
                if letter.has_processed_command(ctx.command_id):
                    log.info("command.replayed", letter_id=str(letter_id), command_id=ctx.command_id)
                    return letter
                if ctx.expected_version is not None and ctx.expected_version != letter.version:
                    raise VersionConflictError(ctx.expected_version, letter.version)
                try:
                    self._apply_and_save(letter, command)
                except IntegrityError:
                    if ctx.expected_version is not None:
                        current = self._get_locked(ctx.account_id, letter_id)
                        if current.has_processed_command(ctx.command_id):
                            return current
                        raise VersionConflictError(ctx.expected_version, current.version) from None
                    continue
                return letter
        current = self.get_letter(ctx.account_id, letter_id)
        raise VersionConflictError(ctx.expected_version or current.version, current.version)

    def _record_inbound(self, account_id: str, letter_id: uuid.UUID, record: Callable[[SerialLetter], T]) -> T:
        for _ in range(MAX_CONCURRENCY_RETRIES):
            with self.app.letters.lock(letter_id):
                letter = self._get_locked(account_id, letter_id)
                try:
                    return self._apply_and_save(letter, record)
                except IntegrityError:
                    continue
        raise ConnectionError(f"letter {letter_id} kept changing concurrently; retry later")

    # ---------------------------------------------------------------------------------------------- letters

    def create_letter(  # noqa: PLR0913 - the basic parameters of a serial letter
        self,
        ctx: CommandContext,
        *,
        title: str,
        document_type_id: str,
        recipient_groups: Sequence[str],
        scope: LetterScope,
        property_id: str | None,
        include_archived: bool,
        letter_date: date | None,
        period_start: date | None = None,
        period_end: date | None = None,
    ) -> SerialLetter:
        if ctx.command_id:
            letter_id = uuid.uuid5(LETTER_NAMESPACE, f"{ctx.account_id}\x00{ctx.command_id}")
            try:
                return self.get_letter(ctx.account_id, letter_id)
            except LetterNotFoundError:
                pass
        else:
            letter_id = uuid.uuid4()
        document_type = self.document_type(ctx.account_id, document_type_id)
        letter = SerialLetter.create(
            letter_id=letter_id,
            account_id=ctx.account_id,
            title=title,
            document_type=document_type,
            recipient_groups=recipient_groups,
            scope=scope,
            property_id=property_id,
            include_archived=include_archived,
            letter_date=letter_date or datetime.now(UTC).date(),
            actor=ctx.as_actor,
            period_start=period_start,
            period_end=period_end,
        )
        try:
            self._save(letter)
        except IntegrityError:
            # The same command raced itself (client retry while the first call was still running).
            return self.get_letter(ctx.account_id, letter_id)
        return letter

    @staticmethod
    def new_document_id(letter_id: uuid.UUID, command_id: str) -> str:
        if command_id:
            return str(uuid.uuid5(DOCUMENT_NAMESPACE, f"{letter_id}\x00{command_id}"))
        return str(uuid.uuid4())

    def attach_document(  # noqa: PLR0913 - one uploaded PDF
        self,
        ctx: CommandContext,
        letter_id: uuid.UUID,
        *,
        document_id: str,
        filename: str,
        role: DocumentRole,
        rule: SplitRule | None,
        source_key: str,
        size_bytes: int,
        sha256: str,
    ) -> SerialLetter:
        return self._execute(
            ctx,
            letter_id,
            lambda letter: letter.attach_document(
                document_id=document_id,
                filename=filename,
                role=role,
                rule=rule,
                source_key=source_key,
                size_bytes=size_bytes,
                sha256=sha256,
                actor=ctx.as_actor,
            ),
        )

    def change_document(
        self,
        ctx: CommandContext,
        letter_id: uuid.UUID,
        *,
        document_id: str,
        role: DocumentRole,
        rule: SplitRule | None,
    ) -> SerialLetter:
        return self._execute(
            ctx,
            letter_id,
            lambda letter: letter.change_document(document_id=document_id, role=role, rule=rule, actor=ctx.as_actor),
        )

    def remove_document(self, ctx: CommandContext, letter_id: uuid.UUID, *, document_id: str) -> SerialLetter:
        return self._execute(
            ctx, letter_id, lambda letter: letter.remove_document(document_id=document_id, actor=ctx.as_actor)
        )

    def reorder_documents(self, ctx: CommandContext, letter_id: uuid.UUID, *, order: Sequence[str]) -> SerialLetter:
        return self._execute(ctx, letter_id, lambda letter: letter.reorder_documents(order=order, actor=ctx.as_actor))

    def start_split(self, ctx: CommandContext, letter_id: uuid.UUID) -> SerialLetter:
        return self._execute(ctx, letter_id, lambda letter: letter.start_split(actor=ctx.as_actor))

    def reopen(self, ctx: CommandContext, letter_id: uuid.UUID) -> SerialLetter:
        return self._execute(ctx, letter_id, lambda letter: letter.reopen(actor=ctx.as_actor))

    def reassign_part(
        self,
        ctx: CommandContext,
        letter_id: uuid.UUID,
        *,
        part_id: str,
        contact_id: str,
        property_id: str | None,
        unit_id: str | None,
    ) -> SerialLetter:
        return self._execute(
            ctx,
            letter_id,
            lambda letter: letter.reassign_part(
                part_id=part_id, contact_id=contact_id, property_id=property_id, unit_id=unit_id, actor=ctx.as_actor
            ),
        )

    def unassign_part(self, ctx: CommandContext, letter_id: uuid.UUID, *, part_id: str) -> SerialLetter:
        return self._execute(ctx, letter_id, lambda letter: letter.unassign_part(part_id=part_id, actor=ctx.as_actor))

    def discard_part(self, ctx: CommandContext, letter_id: uuid.UUID, *, part_id: str) -> SerialLetter:
        return self._execute(ctx, letter_id, lambda letter: letter.discard_part(part_id=part_id, actor=ctx.as_actor))

    def bulk_review(
        self,
        ctx: CommandContext,
        letter_id: uuid.UUID,
        *,
        action: BulkAction,
        property_id: str | None = None,
        policy: SafeProposalPolicy | None = None,
    ) -> tuple[SerialLetter, str]:
        """One bulk review action as one command and one event; returns the letter and the action's id (undo)."""
        bulk_id = (
            str(uuid.uuid5(DOCUMENT_NAMESPACE, f"bulk\x00{letter_id}\x00{ctx.command_id}"))
            if ctx.command_id
            else str(uuid.uuid4())
        )
        letter = self._execute(
            ctx,
            letter_id,
            lambda letter: letter.bulk_review(
                bulk_id=bulk_id, action=action, actor=ctx.as_actor, property_id=property_id, policy=policy
            ),
        )
        return letter, bulk_id

    def undo_bulk_review(self, ctx: CommandContext, letter_id: uuid.UUID, *, bulk_id: str) -> SerialLetter:
        return self._execute(
            ctx, letter_id, lambda letter: letter.undo_bulk_review(bulk_id=bulk_id, actor=ctx.as_actor)
        )

    def confirm_review(self, ctx: CommandContext, letter_id: uuid.UUID) -> SerialLetter:
        return self._execute(ctx, letter_id, lambda letter: letter.confirm_review(actor=ctx.as_actor))

    def release(self, ctx: CommandContext, letter_id: uuid.UUID, *, notify_by_email: bool) -> SerialLetter:
        return self._execute(
            ctx,
            letter_id,
            lambda letter: letter.release(
                notify_by_email=notify_by_email,
                actor=ctx.as_actor,
                four_eyes=ctx.account_id in self.four_eyes_accounts,
            ),
        )

    def order_print(self, ctx: CommandContext, letter_id: uuid.UUID, *, options: PrintOptions) -> SerialLetter:
        today = datetime.now(UTC).date()
        return self._execute(
            ctx, letter_id, lambda letter: letter.order_print(options=options, today=today, actor=ctx.as_actor)
        )

    def revoke(
        self,
        ctx: CommandContext,
        letter_id: uuid.UUID,
        *,
        unit_id: str | None,
        item_ids: Sequence[str] | None,
        reason: str,
    ) -> SerialLetter:
        return self._execute(
            ctx,
            letter_id,
            lambda letter: letter.revoke(unit_id=unit_id, item_ids=item_ids, reason=reason, actor=ctx.as_actor),
        )

    def delete(self, ctx: CommandContext, letter_id: uuid.UUID, *, reason: str) -> SerialLetter:
        return self._execute(ctx, letter_id, lambda letter: letter.delete(reason=reason, actor=ctx.as_actor))

    def expire_retention(
        self,
        ctx: CommandContext,
        letter_id: uuid.UUID,
        *,
        retention_years: int,
        retention_source: str,
        retention_ended: date,
        objects_deleted: int,
    ) -> SerialLetter:
        """Record that the letter's retention period ended and its files were removed (smartpost_letters.retention)."""
        return self._execute(
            ctx,
            letter_id,
            lambda letter: letter.expire_retention(
                retention_years=retention_years,
                retention_source=retention_source,
                retention_ended=retention_ended,
                objects_deleted=objects_deleted,
                actor=ctx.as_actor,
            ),
        )

    # ---------------------------------------------------------------------------------------------- stuck letters

    def stuck_letters(
        self, account_id: str, letter_ids: Sequence[uuid.UUID], *, older_than: float
    ) -> list[StuckLetter]:
        """Letters among ``letter_ids`` that have waited for another service longer than ``older_than`` seconds."""
        now = datetime.now(UTC)
        stuck: list[StuckLetter] = []
        for letter_id in letter_ids:
            try:
                letter = self.get_letter(account_id, letter_id)
            except LetterNotFoundError:
                continue
            waiting = letter.waiting_for()
            if waiting is None:
                continue
            what, since = waiting
            seconds = (now - since).total_seconds()
            if seconds >= older_than:
                stuck.append(StuckLetter(str(letter_id), letter.title, letter.status.value, what, since, seconds))
        return stuck

    def resend_requests(self, ctx: CommandContext, letter_id: uuid.UUID) -> tuple[SerialLetter, list[Envelope]]:
        """The open requests of a waiting letter, as the SAME envelopes (same event ids) as the first time.

        A consumer that got them before recognises the redelivery; one that lost them works on them now. The
        re-send is recorded in the letter's history.
        """
        envelopes: list[Envelope] = []

        def resend(letter: SerialLetter) -> None:
            waiting = letter.waiting_for()
            if waiting is None:
                raise IllegalTransitionError(f"the letter waits for no other service (it is {letter.status.value})")
            what = waiting[0]
            envelopes.clear()
            envelopes.extend(self._open_requests(letter, what))
            letter.record_resend(waiting_for=what, event_ids=[str(e.event_id) for e in envelopes], actor=ctx.as_actor)

        letter = self._execute(ctx, letter_id, resend)
        return letter, envelopes

    def _open_requests(self, letter: SerialLetter, what: str) -> list[Envelope]:
        if what == "assignment":
            return []  # the assignment service answers the splitter, not us: it re-runs itself (rematch)
        wanted: type[SerialLetter.Event] = (
            SerialLetter.PrintOrderPlaced if what == "print-dispatch" else SerialLetter.SplitStarted
        )
        latest = None
        for event in self.app.events.get(letter.id):
            if isinstance(event, wanted):
                latest = event
        if latest is None:
            return []
        envelopes = wire_envelopes(latest)
        if what == "splitter":
            splitting = {d.document_id for d in letter.documents if d.status == DocumentStatus.SPLITTING}
            envelopes = [e for e in envelopes if getattr(e.payload, "document_id", None) in splitting]
        return envelopes

    # ---------------------------------------------------------------------------------------------- audit

    def audit_log(self, account_id: str, letter_id: uuid.UUID) -> list[AuditEntry]:
        self.get_letter(account_id, letter_id)
        return [_audit_entry(event) for event in self.app.events.get(letter_id)]

    # ---------------------------------------------------------------------------------------------- inbound

    def record_split(  # noqa: PLR0913 - the answer and the request it answers
        self,
        account_id: str,
        letter_id: uuid.UUID,
        *,
        inbound_event_id: str,
        document_id: str,
        source_page_count: int,
        parts: Sequence[SplitPart],
        warnings: Sequence[str],
        actor: str,
        answer_to: str = "",
    ) -> InboundOutcome:
        return self._record_inbound(
            account_id,
            letter_id,
            lambda letter: letter.record_split(
                inbound_event_id=inbound_event_id,
                document_id=document_id,
                source_page_count=source_page_count,
                parts=parts,
                warnings=warnings,
                actor=Actor(actor),
                answer_to=answer_to,
            ),
        )

    def record_split_failure(  # noqa: PLR0913 - the answer and the request it answers
        self,
        account_id: str,
        letter_id: uuid.UUID,
        *,
        inbound_event_id: str,
        document_id: str,
        reason_code: SplitFailureReason,
        reason: str,
        failed_at: datetime,
        actor: str,
        answer_to: str = "",
    ) -> InboundOutcome:
        return self._record_inbound(
            account_id,
            letter_id,
            lambda letter: letter.record_split_failure(
                inbound_event_id=inbound_event_id,
                document_id=document_id,
                reason_code=reason_code,
                reason=reason,
                failed_at=failed_at,
                actor=Actor(actor),
                answer_to=answer_to,
            ),
        )

    def record_assignments(  # noqa: PLR0913 - the answer and the request it answers
        self,
        account_id: str,
        letter_id: uuid.UUID,
        *,
        inbound_event_id: str,
        document_id: str,
        assignments: Sequence[PartAssignment],
        warnings: Sequence[AssignmentWarning],
        is_correction: bool,
        actor: str,
        answer_to: str = "",
    ) -> InboundOutcome:
        return self._record_inbound(
            account_id,
            letter_id,
            lambda letter: letter.record_assignments(
                inbound_event_id=inbound_event_id,
                document_id=document_id,
                assignments=assignments,
                warnings=warnings,
                is_correction=is_correction,
                actor=Actor(actor),
                answer_to=answer_to,
            ),
        )

    def record_mailpiece_status(
        self, account_id: str, letter_id: uuid.UUID, *, inbound_event_id: str, mailpiece: MailpieceView, actor: str
    ) -> InboundOutcome:
        return self._record_inbound(
            account_id,
            letter_id,
            lambda letter: letter.record_mailpiece_status(
                inbound_event_id=inbound_event_id, mailpiece=mailpiece, actor=Actor(actor)
            ),
        )

    def record_mailpiece_statuses(
        self, account_id: str, letter_id: uuid.UUID, statuses: Sequence[tuple[str, MailpieceView, str]]
    ) -> list[InboundOutcome]:
        """Several status changes of one letter's mailpieces, recorded with one save.

        ``statuses``: ``(inbound event id, mailpiece, actor)`` in order. The same events as one by one, one
        transaction instead of one per status.
        """
        return self._record_inbound(
            account_id,
            letter_id,
            lambda letter: [
                letter.record_mailpiece_status(inbound_event_id=event_id, mailpiece=mailpiece, actor=Actor(actor))
                for event_id, mailpiece, actor in statuses
            ],
        )

    def record_viewed(
        self,
        account_id: str,
        letter_id: uuid.UUID,
        *,
        inbound_event_id: str,
        item_id: str,
        first_viewed_at: datetime,
        actor: str,
    ) -> InboundOutcome:
        return self._record_inbound(
            account_id,
            letter_id,
            lambda letter: letter.record_viewed(
                inbound_event_id=inbound_event_id, item_id=item_id, first_viewed_at=first_viewed_at, actor=Actor(actor)
            ),
        )

    # ---------------------------------------------------------------------------------------------- document types

    def document_type_tree(self, account_id: str) -> DocumentTypeTree | None:
        try:
            tree: object = self.app.repository.get(tree_id_for(account_id))
        except AggregateNotFoundError:
            return None
        assert isinstance(tree, DocumentTypeTree)
        return tree

    def document_type(self, account_id: str, node_id: str) -> DocumentType:
        tree = self.document_type_tree(account_id)
        if tree is None:
            raise DocumentTypeError(f"document type {node_id} does not exist (the account has no document types)")
        return tree.document_type(node_id)

    def _change_tree(self, ctx: CommandContext, change: Callable[[DocumentTypeTree], None]) -> DocumentTypeTree:
        for _ in range(MAX_CONCURRENCY_RETRIES):
            tree = self.document_type_tree(ctx.account_id) or DocumentTypeTree.create(
                account_id=ctx.account_id, actor=ctx.actor
            )
            if ctx.expected_version is not None and ctx.expected_version != tree.version:
                raise VersionConflictError(ctx.expected_version, tree.version)
            change(tree)
            try:
                self._save(tree)
            except IntegrityError:
                if ctx.expected_version is not None:
                    current = self.document_type_tree(ctx.account_id)
                    raise VersionConflictError(ctx.expected_version, current.version if current else 0) from None
                continue
            return tree
        raise ConnectionError("document types kept changing concurrently; retry")

    def add_document_type(
        self, ctx: CommandContext, *, name: str, parent_id: str | None, node_id: str | None = None
    ) -> tuple[DocumentTypeTree, str]:
        new_id = node_id or (
            str(uuid.uuid5(DOCUMENT_NAMESPACE, f"doctype\x00{ctx.account_id}\x00{ctx.command_id}"))
            if ctx.command_id
            else str(uuid.uuid4())
        )
        existing = self.document_type_tree(ctx.account_id)
        if existing is not None and ctx.command_id and new_id in existing.nodes:
            return existing, new_id  # retried command
        tree = self._change_tree(
            ctx, lambda tree: tree.add(node_id=new_id, name=name, parent_id=parent_id, actor=ctx.actor)
        )
        return tree, new_id

    def change_document_type(
        self, ctx: CommandContext, *, node_id: str, name: str, parent_id: str | None
    ) -> DocumentTypeTree:
        return self._change_tree(
            ctx, lambda tree: tree.change(node_id=node_id, name=name, parent_id=parent_id, actor=ctx.actor)
        )

    def remove_document_type(self, ctx: CommandContext, *, node_id: str) -> DocumentTypeTree:
        tree = self.document_type_tree(ctx.account_id)
        if tree is None:
            raise DocumentTypeError(f"document type {node_id} does not exist")
        return self._change_tree(ctx, lambda t: t.remove(node_id=node_id, actor=ctx.actor))


def _audit_entry(event: DomainEventProtocol[uuid.UUID]) -> AuditEntry:
    data = dict(event.__dict__)
    details = {k: _jsonable(v) for k, v in data.items() if k not in _AUDIT_SKIP}
    return AuditEntry(
        version=event.originator_version,
        timestamp=data["timestamp"],
        actor=str(data.get("actor", "")),
        action=_action_name(event),
        command_id=data.get("command_id") or None,
        details=details,
    )
