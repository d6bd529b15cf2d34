"""Use cases of print dispatch: take print orders, prepare print files, submit, track, report.

Work moves through ``pd_mailpieces.stage``: ``planned`` (print file to make) -> ``ready`` -> ``submitting``
(recorded BEFORE the provider is called) -> ``tracking`` -> ``final``. A crash anywhere leaves a stage from which
the loops resume; a resubmission reuses the mailpiece id as idempotency key (HTTP) or the recorded batch id
(file drop), so the provider never prints a mailpiece twice.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, delete, insert, or_, select, update

from smartpost_print_dispatch.adapters.db import (
    item_portal_visibility,
    item_views,
    mailpieces,
    orders,
    status_history,
)
from smartpost_print_dispatch.adapters.pdf import (
    PartPdf,
    PreparedMailpiece,
    PrepareRequest,
    UnsendableError,
    layout_needs_cover,
    prepare_mailpiece,
)
from smartpost_print_dispatch.adapters.providers.base import (
    PrintProvider,
    ProviderOutcomeUnknownError,
    ProviderUnavailableError,
    ProviderUpdate,
    Submission,
    SubmitResult,
    TrackedPiece,
)
from smartpost_print_dispatch.domain.address import AddressError, validate_postal_lines
from smartpost_print_dispatch.domain.lifecycle import (
    TERMINAL,
    UnknownProviderStatusError,
    can_move,
    map_provider_status,
)
from smartpost_print_dispatch.domain.planning import MailpiecePlan, Segment, plan_mailpieces
from smartpost_print_dispatch.domain.postage import Postage, PostageError, price, sheets_for
from smartpost_print_dispatch.domain.selection import RecipientFacts, Selection, add_working_days, select_items
from smartpost_shared.contracts.envelope import deterministic_event_id, make_envelope
from smartpost_shared.contracts.letters import (
    EnvelopeFormat,
    PrintOptions,
    PrintOrdered,
    RecipientFilter,
    ReleasedItem,
)
from smartpost_shared.contracts.masterdata import ContactArchived, ContactUpserted  # noqa: F401 - registry
from smartpost_shared.contracts.portal import DocumentPublished, DocumentViewed
from smartpost_shared.contracts.printing import LetterClass, MailpieceStatus, PrintJobStatusChanged
from smartpost_shared.db import add_to_outbox
from smartpost_shared.logging import get_logger
from smartpost_shared.masterdata import COUNTRY_NAMES, Contact, MasterDataReader, apply_masterdata
from smartpost_shared.messaging import TransientError
from smartpost_shared.replay import record_stale, staleness
from smartpost_shared.storage import ObjectNotFoundError, StorageUnavailableError

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from sqlalchemy.engine import Connection, Engine

    from smartpost_print_dispatch.settings import Settings
    from smartpost_shared.contracts.envelope import Envelope
    from smartpost_shared.storage import ObjectStore

log = get_logger(__name__)
PRODUCER = "print-dispatch"
ORDER_OPTIONS_CACHED = 256  # print orders whose options are kept in memory (a mailpiece read them twice per step)
Clock = Callable[[], datetime]
# provider_status of a mailpiece whose hand-over is unknown at a provider without idempotency keys
OUTCOME_UNKNOWN = "outcome_unknown"
UNCLEAR_REASON = (
    "Status unklar: Der Druckdienstleister hat die Übergabe nicht bestätigt. Er erkennt Wiederholungen nicht, "
    "daher wird der Brief nicht automatisch erneut gesendet (sonst könnte er zweimal gedruckt werden). Bitte beim "
    "Dienstleister prüfen, ob der Brief angekommen ist."
)


class UnknownOrderError(LookupError):
    pass


class UnknownMailpieceError(LookupError):
    pass


class CancelNotPossibleError(RuntimeError):
    pass


def print_key(account_id: str, letter_id: str, print_order_id: str, mailpiece_id: str) -> str:
    return f"accounts/{account_id}/letters/{letter_id}/print/{print_order_id}/{mailpiece_id}.pdf"


@dataclass(frozen=True)
class _OrderContext:
    account_id: str
    print_order_id: str
    letter_id: str
    options: PrintOptions
    correlation_id: str
    causation_id: str


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored here is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _segments_json(plan: MailpiecePlan) -> str:
    return json.dumps(
        [
            {
                "item_id": s.item_id,
                "storage_key": s.storage_key,
                "first_page": s.first_page,
                "last_page": s.last_page,
                "item_page_count": s.item_page_count,
            }
            for s in plan.segments
        ]
    )


def _segments(raw: str) -> list[Segment]:
    return [Segment(**s) for s in json.loads(raw)]


class PrintDispatch:
    def __init__(
        self,
        engine: Engine,
        store: ObjectStore,
        providers: dict[str, PrintProvider],
        settings: Settings,
        *,
        clock: Clock = _now,
        executor: Executor | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.providers = providers
        self.settings = settings
        self.clock = clock
        self.executor = executor
        self.zone = ZoneInfo(settings.timezone)
        self._order_options: dict[tuple[str, str], PrintOptions] = {}

    # ---------------------------------------------------------------- consumers (one transaction each)

    def on_masterdata(self, envelope: Envelope, conn: Connection) -> None:
        apply_masterdata(conn, envelope)

    def on_document_viewed(self, envelope: Envelope, conn: Connection) -> None:
        payload = envelope.payload
        assert isinstance(payload, DocumentViewed)
        keys = and_(item_views.c.account_id == envelope.account_id, item_views.c.item_id == payload.item_id)
        existing = conn.execute(select(item_views.c.first_viewed_at).where(keys)).first()
        if existing is None:
            conn.execute(
                insert(item_views).values(
                    account_id=envelope.account_id, item_id=payload.item_id, first_viewed_at=payload.first_viewed_at
                )
            )
        elif _aware(existing[0]) > payload.first_viewed_at:  # type: ignore[operator]
            conn.execute(update(item_views).where(keys).values(first_viewed_at=payload.first_viewed_at))

    def on_document_published(self, envelope: Envelope, conn: Connection) -> None:
        """Remember whether the portal lets the recipient read the item (access window and billing period)."""
        payload = envelope.payload
        assert isinstance(payload, DocumentPublished)
        keys = and_(
            item_portal_visibility.c.account_id == envelope.account_id,
            item_portal_visibility.c.item_id == payload.item_id,
        )
        conn.execute(delete(item_portal_visibility).where(keys))
        conn.execute(
            insert(item_portal_visibility).values(
                account_id=envelope.account_id, item_id=payload.item_id, readable=payload.visible_on_publication
            )
        )

    def on_print_ordered(self, envelope: Envelope, conn: Connection) -> None:
        payload = envelope.payload
        assert isinstance(payload, PrintOrdered)
        account = envelope.account_id
        exists = conn.execute(
            select(orders.c.print_order_id).where(
                and_(orders.c.account_id == account, orders.c.print_order_id == payload.print_order_id)
            )
        ).first()
        if exists is not None:
            log.info("print_order.duplicate", print_order_id=payload.print_order_id)
            return
        options = payload.options
        ordered_at = envelope.occurred_at
        fallback_due = None
        if options.recipient_filter is RecipientFilter.NOT_VIEWED:
            fallback_due = add_working_days(
                ordered_at.astimezone(self.zone).date(),
                options.not_viewed_working_days,
                extra_holidays=frozenset(self.settings.extra_holidays),
                nationwide_holidays=self.settings.nationwide_holidays,
            )
        conn.execute(
            insert(orders).values(
                account_id=account,
                print_order_id=payload.print_order_id,
                letter_id=payload.letter_id,
                title=payload.title,
                options=options.model_dump_json(),
                items=json.dumps([i.model_dump(mode="json") for i in payload.items]),
                excluded="[]",
                ordered_by=payload.ordered_by,
                ordered_at=ordered_at,
                correlation_id=str(envelope.correlation_id),
                causation_id=str(envelope.event_id),
                fallback_due=fallback_due,
                fallback_done=fallback_due is None,
            )
        )
        context = _OrderContext(
            account,
            payload.print_order_id,
            payload.letter_id,
            options,
            str(envelope.correlation_id),
            str(envelope.event_id),
        )
        stale = staleness(ordered_at, self.clock(), self.settings.print_order_max_age_hours)
        if stale is not None:
            # Replayed history: plan what the order would print (so staff see each recipient), submit nothing.
            conn.execute(
                update(orders)
                .where(and_(orders.c.account_id == account, orders.c.print_order_id == payload.print_order_id))
                .values(fallback_due=None, fallback_done=True)
            )
            selection = self._select(conn, account, payload.items, options.recipient_filter)
            self._record_selection(conn, context, selection, hold_reason=stale.reason)
            record_stale(
                PRODUCER,
                envelope.event_type,
                stale,
                event_id=str(envelope.event_id),
                print_order_id=payload.print_order_id,
                letter_id=payload.letter_id,
                mailpieces_held=len(selection.selected),
            )
            return
        if fallback_due is not None:
            log.info("print_order.fallback_scheduled", print_order_id=payload.print_order_id, due=str(fallback_due))
            return
        missing = self._missing_contacts(conn, account, payload.items)
        if missing and self._may_wait_for_masterdata(ordered_at):
            # Master data comes on another topic and may not be consumed yet (a restart, a backlog): plan the order
            # when it is there (deferred planning loop) instead of as "address unknown" now. Other orders go on.
            conn.execute(
                update(orders)
                .where(and_(orders.c.account_id == account, orders.c.print_order_id == payload.print_order_id))
                .values(fallback_due=self.local_today(), fallback_done=False)
            )
            log.info("print_order.waiting_for_masterdata", print_order_id=payload.print_order_id, contacts=missing)
            return
        selection = self._select(conn, account, payload.items, options.recipient_filter)
        self._record_selection(conn, context, selection)

    def _missing_contacts(self, conn: Connection, account_id: str, items: list[ReleasedItem]) -> list[str]:
        known = self._facts(conn, account_id, items)
        return sorted({i.contact_id for i in items} - set(known))

    def _may_wait_for_masterdata(self, ordered_at: datetime) -> bool:
        waited = self.clock() - (_aware(ordered_at) or ordered_at)
        return waited < timedelta(seconds=self.settings.masterdata_wait_seconds)

    # ---------------------------------------------------------------- selection and planning

    def _facts(self, conn: Connection, account_id: str, items: list[ReleasedItem]) -> dict[str, Contact]:
        ids = sorted({i.contact_id for i in items})
        return {c.contact_id: c for c in MasterDataReader(conn).contacts(account_id, ids)}

    def _viewed(self, conn: Connection, account_id: str, items: list[ReleasedItem]) -> set[str]:
        ids = [i.item_id for i in items]
        rows = conn.execute(
            select(item_views.c.item_id).where(
                and_(item_views.c.account_id == account_id, item_views.c.item_id.in_(ids))
            )
        )
        return {r[0] for r in rows}

    def _select(
        self, conn: Connection, account_id: str, items: list[ReleasedItem], recipient_filter: RecipientFilter
    ) -> Selection:
        contacts = self._facts(conn, account_id, items)
        facts = {cid: RecipientFacts(cid, c.channel_preference, c.portal_registered) for cid, c in contacts.items()}
        viewed = self._viewed(conn, account_id, items) if recipient_filter is RecipientFilter.NOT_VIEWED else set()
        return select_items(items, recipient_filter, facts, viewed, self._not_readable(conn, account_id, items))

    def _not_readable(self, conn: Connection, account_id: str, items: list[ReleasedItem]) -> set[str]:
        """Items the portal hides from their recipient (outside the access window and the letter's period)."""
        ids = [i.item_id for i in items]
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            rows = conn.execute(
                select(item_portal_visibility.c.item_id).where(
                    and_(
                        item_portal_visibility.c.account_id == account_id,
                        item_portal_visibility.c.item_id.in_(ids[start : start + 500]),
                        item_portal_visibility.c.readable.is_(False),
                    )
                )
            )
            found.update(r[0] for r in rows)
        return found

    def _plan(self, print_order_id: str, items: list[ReleasedItem], options: PrintOptions) -> list[MailpiecePlan]:
        provider = self.providers.get(options.provider)
        return plan_mailpieces(
            print_order_id,
            items,
            one_envelope_per_contact=options.one_envelope_per_contact,
            duplex=options.duplex,
            max_sheets=self.settings.postage.max_sheets_any_envelope(options.envelope),
            max_pages=provider.profile.max_pages_per_mailpiece if provider else None,
            split_oversize=True,
        )

    def _address(self, contact: Contact | None) -> list[str]:
        if contact is None:
            raise AddressError("contact unknown in master data: no postal address")
        return validate_postal_lines(
            contact.postal_lines(), country=contact.country, country_line=COUNTRY_NAMES.get(contact.country.upper())
        )

    def _estimate_postage(self, plan: MailpiecePlan, options: PrintOptions, *, layout_cover: bool = False) -> Postage:
        pages = [s.pages for s in plan.segments]
        cover = plan.needs_cover or layout_cover
        sheets = sheets_for(pages, duplex=options.duplex) + (1 if cover else 0)
        return price(
            self.settings.postage,
            sheets=sheets,
            printed_pages=sum(pages) + (1 if cover else 0),
            envelope=options.envelope,
            color=options.color,
            registered=options.registered,
        )

    def _plan_problem(self, plan: MailpiecePlan, options: PrintOptions) -> str | None:
        if options.provider not in self.providers:
            return f"print provider {options.provider!r} is not configured"
        if plan.part_count > 1 and not self.settings.split_oversize:
            return f"too many sheets for one envelope (would need {plan.part_count}); splitting is switched off"
        return None

    def _record_selection(
        self, conn: Connection, context: _OrderContext, selection: Selection, *, hold_reason: str | None = None
    ) -> None:
        """Record the selection and plan its mailpieces (``hold_reason``: all stop in ``action_required``)."""
        conn.execute(
            update(orders)
            .where(and_(orders.c.account_id == context.account_id, orders.c.print_order_id == context.print_order_id))
            .values(excluded=json.dumps([e.__dict__ for e in selection.excluded]))
        )
        contacts = self._facts(conn, context.account_id, selection.selected)
        now = self.clock()
        for position, plan in enumerate(self._plan(context.print_order_id, selection.selected, context.options)):
            problem = hold_reason or self._plan_problem(plan, context.options)
            lines: list[str] = []
            postage: Postage | None = None
            try:
                lines = self._address(contacts.get(plan.contact_id))
                postage = self._estimate_postage(plan, context.options)
            except (AddressError, PostageError) as exc:
                problem = problem or str(exc)
            conn.execute(
                insert(mailpieces).values(
                    account_id=context.account_id,
                    mailpiece_id=plan.mailpiece_id,
                    print_order_id=context.print_order_id,
                    letter_id=context.letter_id,
                    contact_id=plan.contact_id,
                    item_ids=json.dumps(list(plan.item_ids)),
                    segments=_segments_json(plan),
                    position=position,
                    part_index=plan.part_index,
                    part_count=plan.part_count,
                    provider=context.options.provider,
                    status=MailpieceStatus.CREATED.value,
                    stage="planned",
                    pages=plan.pages,
                    sheets=postage.sheets if postage else None,
                    letter_class=postage.letter_class.value if postage else None,
                    envelope=postage.envelope.value if postage else context.options.envelope.value,
                    cost_cents=postage.cost_cents if postage else None,
                    findings="[]",
                    address_lines=json.dumps(lines),
                    submit_attempts=0,
                    event_seq=1,
                    correlation_id=context.correlation_id,
                    causation_id=context.causation_id,
                    created_at=now,
                    updated_at=now,
                )
            )
            self._emit(conn, context.account_id, plan.mailpiece_id, MailpieceStatus.CREATED, 1)
            if problem is not None:
                self._transition(
                    conn,
                    context.account_id,
                    plan.mailpiece_id,
                    MailpieceStatus.ACTION_REQUIRED,
                    reason=problem,
                    stage="final",
                )
        log.info(
            "print_order.planned",
            print_order_id=context.print_order_id,
            selected=len(selection.selected),
            excluded=len(selection.excluded),
        )

    # ---------------------------------------------------------------- status changes and events

    def _row(self, conn: Connection, account_id: str, mailpiece_id: str) -> dict[str, Any]:
        row = (
            conn.execute(
                select(mailpieces).where(
                    and_(mailpieces.c.account_id == account_id, mailpieces.c.mailpiece_id == mailpiece_id)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise UnknownMailpieceError(mailpiece_id)
        return dict(row)

    def _emit(
        self,
        conn: Connection,
        account_id: str,
        mailpiece_id: str,
        status: MailpieceStatus,
        seq: int,
        provider_status: str | None = None,
    ) -> None:
        """Record history row ``seq`` and queue its event (the caller has already set ``event_seq = seq``)."""
        row = self._row(conn, account_id, mailpiece_id)
        now = self.clock()
        conn.execute(
            insert(status_history).values(
                account_id=account_id,
                mailpiece_id=mailpiece_id,
                seq=seq,
                status=status.value,
                provider_status=provider_status,
                reason=row["reason"],
                at=now,
            )
        )
        payload = PrintJobStatusChanged(
            print_order_id=row["print_order_id"],
            letter_id=row["letter_id"],
            mailpiece_id=mailpiece_id,
            contact_id=row["contact_id"],
            item_ids=json.loads(row["item_ids"]),
            status=status,
            provider=row["provider"],
            provider_ref=row["provider_ref"],
            tracking_number=row["tracking_number"],
            sheets=row["sheets"],
            letter_class=LetterClass(row["letter_class"]) if row["letter_class"] else None,
            cost_cents=row["cost_cents"],
            reason=row["reason"],
        )
        add_to_outbox(
            conn,
            make_envelope(
                payload,
                account_id=account_id,
                producer=PRODUCER,
                correlation_id=uuid.UUID(row["correlation_id"]),
                causation_id=uuid.UUID(row["causation_id"]),
                event_id=deterministic_event_id(PRODUCER, account_id, mailpiece_id, seq, status.value),
            ),
        )

    def _transition(
        self,
        conn: Connection,
        account_id: str,
        mailpiece_id: str,
        status: MailpieceStatus,
        *,
        provider_status: str | None = None,
        **fields: Any,
    ) -> bool:
        """Move a mailpiece forward and publish it; a backwards or repeated status only updates new facts."""
        for _attempt in range(10):
            row = self._row(conn, account_id, mailpiece_id)
            current = MailpieceStatus(row["status"])
            moved = can_move(current, status)
            new_tracking = bool(fields.get("tracking_number")) and fields["tracking_number"] != row["tracking_number"]
            values = {k: v for k, v in fields.items() if v is not None}
            if moved:
                values["status"] = status.value
                if status in TERMINAL:
                    values["stage"] = "final"
            if provider_status is not None:
                values["provider_status"] = provider_status
            seq = int(row["event_seq"]) + 1
            if moved or new_tracking:
                values["event_seq"] = seq
            if not values:
                return False
            values["updated_at"] = self.clock()
            # Optimistic concurrency: a webhook and the status poller may report the same change at once.
            result = conn.execute(
                update(mailpieces)
                .where(
                    and_(
                        mailpieces.c.account_id == account_id,
                        mailpieces.c.mailpiece_id == mailpiece_id,
                        mailpieces.c.event_seq == row["event_seq"],
                    )
                )
                .values(**values)
            )
            if result.rowcount == 1:
                break
        else:
            raise TransientError(f"mailpiece {mailpiece_id} keeps changing concurrently")
        if moved or new_tracking:
            self._emit(conn, account_id, mailpiece_id, status if moved else current, seq, provider_status)
        return moved

    # ---------------------------------------------------------------- digital-first fallback

    def local_today(self) -> date:
        return self.clock().astimezone(self.zone).date()

    def run_fallback(self, today: date | None = None) -> int:
        """Plan deferred orders: not-viewed orders whose waiting time is over, orders waiting for master data.

        Returns the number of orders decided.
        """
        today = today or self.local_today()
        with self.engine.connect() as conn:
            due = conn.execute(
                select(orders.c.account_id, orders.c.print_order_id).where(
                    and_(orders.c.fallback_done.is_(False), orders.c.fallback_due <= today)
                )
            ).all()
        decided = 0
        for account_id, print_order_id in due:
            with self.engine.begin() as conn:
                row = (
                    conn.execute(
                        select(orders).where(
                            and_(orders.c.account_id == account_id, orders.c.print_order_id == print_order_id)
                        )
                    )
                    .mappings()
                    .first()
                )
                if row is None or row["fallback_done"]:
                    continue
                options = PrintOptions.model_validate_json(row["options"])
                items = [ReleasedItem.model_validate(i) for i in json.loads(row["items"])]
                if self._missing_contacts(conn, account_id, items) and self._may_wait_for_masterdata(row["ordered_at"]):
                    continue
                selection = self._select(conn, account_id, items, options.recipient_filter)
                context = _OrderContext(
                    account_id, print_order_id, row["letter_id"], options, row["correlation_id"], row["causation_id"]
                )
                self._record_selection(conn, context, selection)
                conn.execute(
                    update(orders)
                    .where(and_(orders.c.account_id == account_id, orders.c.print_order_id == print_order_id))
                    .values(fallback_done=True)
                )
            decided += 1
            log.info("print_order.deferred_planned", print_order_id=print_order_id, selected=len(selection.selected))
        return decided

    # ---------------------------------------------------------------- print files

    def prepare_pending(self, limit: int | None = None) -> int:
        """Make print files for planned mailpieces. Returns how many were handled (prepared or failed)."""
        with self.engine.connect() as conn:
            rows = [
                dict(r)
                for r in conn.execute(
                    select(mailpieces)
                    .where(mailpieces.c.stage == "planned")
                    .order_by(mailpieces.c.created_at, mailpieces.c.position, mailpieces.c.mailpiece_id)
                    .limit(limit or self.settings.prepare_batch_size)
                ).mappings()
            ]
        if not rows:
            return 0
        requests: list[tuple[dict[str, Any], PrepareRequest | str]] = []
        cache: dict[str, bytes] = {}
        for row in rows:
            try:
                requests.append((row, self._prepare_request(row, cache)))
            except ObjectNotFoundError as exc:
                requests.append((row, f"letter PDF missing in storage: {exc}"))
        prepared = self._run_prepare([r for _, r in requests if isinstance(r, PrepareRequest)])
        results = iter(prepared)
        for row, request in requests:
            outcome: PreparedMailpiece | str = request if isinstance(request, str) else next(results)
            self._store_prepared(row, outcome)
        return len(rows)

    def _prepare_request(self, row: dict[str, Any], cache: dict[str, bytes]) -> PrepareRequest:
        options = self._options(row)
        segments = _segments(row["segments"])
        parts = []
        for segment in segments:
            if segment.storage_key not in cache:
                cache[segment.storage_key] = self.store.get(segment.storage_key)
            parts.append(PartPdf(segment.item_id, cache[segment.storage_key], segment.first_page, segment.last_page))
        provider = self.providers[row["provider"]]
        note = f"Sendung {row['part_index']} von {row['part_count']}" if row["part_count"] > 1 else ""
        return PrepareRequest(
            mailpiece_id=row["mailpiece_id"],
            address_lines=json.loads(row["address_lines"]),
            profile=provider.profile,
            parts=parts,
            duplex=options.duplex,
            force_cover=not segments[0].starts_letter,
            sender_line=self.settings.sender_line,
            cover_note=note,
            landscape=self.settings.landscape_pages,
            on_mismatch=self.settings.on_address_mismatch,
        )

    def _run_prepare(self, requests: list[PrepareRequest]) -> list[PreparedMailpiece | str]:
        def one(request: PrepareRequest) -> PreparedMailpiece | str:
            try:
                return prepare_mailpiece(request)
            except UnsendableError as exc:
                return str(exc)

        if self.executor is None or len(requests) < 2:
            return [one(r) for r in requests]
        return list(self.executor.map(_prepare_or_reason, requests, chunksize=8))

    def _options(self, row: dict[str, Any]) -> PrintOptions:
        """The options of the mailpiece's print order (written once with the order, never changed: cached)."""
        key = (str(row["account_id"]), str(row["print_order_id"]))
        cached = self._order_options.get(key)
        if cached is not None:
            return cached
        with self.engine.connect() as conn:
            raw = conn.execute(
                select(orders.c.options).where(
                    and_(orders.c.account_id == row["account_id"], orders.c.print_order_id == row["print_order_id"])
                )
            ).scalar_one()
        options = PrintOptions.model_validate_json(raw)
        if len(self._order_options) >= ORDER_OPTIONS_CACHED:
            self._order_options.clear()
        self._order_options[key] = options
        return options

    def _store_prepared(self, row: dict[str, Any], outcome: PreparedMailpiece | str) -> None:
        account, mailpiece = row["account_id"], row["mailpiece_id"]
        if isinstance(outcome, str):
            with self.engine.begin() as conn:
                self._transition(
                    conn, account, mailpiece, MailpieceStatus.ACTION_REQUIRED, reason=outcome, stage="final"
                )
            log.warning("mailpiece.unsendable", mailpiece_id=mailpiece, reason=outcome)
            return
        options = self._options(row)
        try:
            postage = price(
                self.settings.postage,
                sheets=outcome.sheets,
                printed_pages=outcome.printed_pages,
                envelope=EnvelopeFormat(options.envelope),
                color=options.color,
                registered=options.registered,
            )
        except PostageError as exc:
            with self.engine.begin() as conn:
                self._transition(
                    conn, account, mailpiece, MailpieceStatus.ACTION_REQUIRED, reason=str(exc), stage="final"
                )
            return
        key = print_key(account, row["letter_id"], row["print_order_id"], mailpiece)
        self.store.put(key, outcome.pdf, content_type="application/pdf")
        with self.engine.begin() as conn:
            conn.execute(
                update(mailpieces)
                .where(
                    and_(
                        mailpieces.c.account_id == account,
                        mailpieces.c.mailpiece_id == mailpiece,
                        mailpieces.c.stage == "planned",
                    )
                )
                .values(
                    stage="ready",
                    print_key=key,
                    pages=outcome.pages,
                    sheets=postage.sheets,
                    letter_class=postage.letter_class.value,
                    envelope=postage.envelope.value,
                    cost_cents=postage.cost_cents,
                    findings=json.dumps(outcome.findings),
                    updated_at=self.clock(),
                )
            )

    # ---------------------------------------------------------------- submission

    # The async methods below run on the service's event loop: every database and storage call in them goes through
    # ``asyncio.to_thread``. A blocking call there stalled the whole service (HTTP, /readyz, Kafka heartbeats) while
    # the database was slow or a pool connection was being opened (issue #15, start-up with a late PostgreSQL).

    async def submit_ready(self) -> int:
        """Submit every claimed batch; several at once to a provider that honours idempotency keys.

        Every batch was recorded as ``submitting`` before any leaves (``_claim_batches``), so running them
        concurrently changes nothing about crash safety: a batch whose answer is not recorded is resent with the
        same keys. Database and storage calls run in worker threads, not on the event loop.
        """
        submitted = 0
        for name, provider in self.providers.items():
            batches = await asyncio.to_thread(self._claim_batches, name, provider)
            if not batches:
                continue
            limit = asyncio.Semaphore(self.settings.submit_concurrency if provider.honours_idempotency else 1)
            outcomes = await asyncio.gather(
                *(self._submit_limited(limit, provider, b, rows) for b, rows in batches), return_exceptions=True
            )
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
                submitted += outcome
        return submitted

    def _claim_batches(  # noqa: C901 - one pass over due work
        self, provider_name: str, provider: PrintProvider
    ) -> list[tuple[str, list[dict[str, Any]]]]:
        """Pick due work and record stage ``submitting`` (with the batch id) before anything leaves the house."""
        now = self.clock()
        with self.engine.begin() as conn:
            rows = [
                dict(r)
                for r in conn.execute(
                    select(mailpieces)
                    .where(
                        and_(
                            mailpieces.c.provider == provider_name,
                            mailpieces.c.stage.in_(("ready", "submitting")),
                            or_(mailpieces.c.next_attempt_at.is_(None), mailpieces.c.next_attempt_at <= now),
                        )
                    )
                    .order_by(mailpieces.c.created_at, mailpieces.c.position, mailpieces.c.mailpiece_id)
                    .limit(500)
                ).mappings()
            ]
            if not provider.honours_idempotency:
                # A claimed piece still "submitting" here was handed over by a process that died (or timed out)
                # before the answer was recorded: the provider may have it and would print a resend again.
                unclear = [r for r in rows if r["stage"] == "submitting"]
                for row in unclear:
                    self._mark_unclear(conn, row, "claimed before, no answer recorded (crash or restart)")
                rows = [r for r in rows if r["stage"] != "submitting"]
            if not rows:
                return []
            batches: dict[str, list[dict[str, Any]]] = {}
            if provider.batches_orders:
                # A recorded batch is resent exactly as it was; new batches only for orders fully prepared.
                fresh: dict[tuple[str, str], list[dict[str, Any]]] = {}
                for row in rows:
                    if row["batch_id"]:
                        batches.setdefault(row["batch_id"], []).append(row)
                    else:
                        fresh.setdefault((row["account_id"], row["print_order_id"]), []).append(row)
                for (account, order), group in fresh.items():
                    still_planned = conn.execute(
                        select(mailpieces.c.mailpiece_id).where(
                            and_(
                                mailpieces.c.account_id == account,
                                mailpieces.c.print_order_id == order,
                                mailpieces.c.stage == "planned",
                            )
                        )
                    ).first()
                    if still_planned is None:
                        ids = sorted(r["mailpiece_id"] for r in group)
                        batch_id = "b-" + uuid.uuid5(uuid.NAMESPACE_URL, "|".join([account, order, *ids])).hex[:20]
                        batches[batch_id] = group
            else:
                batches = {r["mailpiece_id"]: [r] for r in rows}
            for batch_id, group in batches.items():
                for row in group:
                    row["batch_id"] = batch_id
                    conn.execute(
                        update(mailpieces)
                        .where(
                            and_(
                                mailpieces.c.account_id == row["account_id"],
                                mailpieces.c.mailpiece_id == row["mailpiece_id"],
                            )
                        )
                        .values(
                            stage="submitting",
                            batch_id=batch_id,
                            submit_attempts=mailpieces.c.submit_attempts + 1,
                            next_attempt_at=now + timedelta(seconds=self.settings.submit_retry_seconds),
                            updated_at=now,
                        )
                    )
        return list(batches.items())

    async def _submit_limited(
        self, limit: asyncio.Semaphore, provider: PrintProvider, batch_id: str, rows: list[dict[str, Any]]
    ) -> int:
        async with limit:
            return await self._submit_batch(provider, batch_id, rows)

    async def _submit_batch(self, provider: PrintProvider, batch_id: str, rows: list[dict[str, Any]]) -> int:
        submissions = await asyncio.to_thread(self._submissions, rows)
        if not submissions:  # None: storage unavailable, the batch is retried later
            return 0
        try:
            results = await provider.submit(batch_id, submissions)
        except ProviderUnavailableError as exc:
            await asyncio.to_thread(self._submit_failed, provider, batch_id, rows, exc)
            return 0
        await asyncio.to_thread(self._record_results, provider.name, rows, results)
        return len(results)

    def _submissions(self, rows: list[dict[str, Any]]) -> list[Submission] | None:
        """What goes to the provider (print files from storage); None when storage is unavailable."""
        submissions = []
        for row in rows:
            options = self._options(row)
            try:
                pdf = self.store.get(row["print_key"])
            except ObjectNotFoundError:
                with self.engine.begin() as conn:
                    self._transition(
                        conn,
                        row["account_id"],
                        row["mailpiece_id"],
                        MailpieceStatus.ACTION_REQUIRED,
                        reason="print file missing in storage",
                        stage="final",
                    )
                continue
            except StorageUnavailableError:
                log.warning("mailpiece.storage_unavailable", mailpiece_id=row["mailpiece_id"])
                return None
            submissions.append(
                Submission(
                    mailpiece_id=row["mailpiece_id"],
                    account_id=row["account_id"],
                    print_order_id=row["print_order_id"],
                    contact_id=row["contact_id"],
                    pdf=pdf,
                    address_lines=json.loads(row["address_lines"]),
                    options=options,
                    pages=row["pages"],
                    sheets=row["sheets"],
                    letter_class=row["letter_class"],
                    envelope=row["envelope"],
                )
            )
        return submissions

    def _submit_failed(
        self, provider: PrintProvider, batch_id: str, rows: list[dict[str, Any]], exc: ProviderUnavailableError
    ) -> None:
        if not provider.honours_idempotency and isinstance(exc, ProviderOutcomeUnknownError):
            with self.engine.begin() as conn:
                for row in rows:
                    self._mark_unclear(conn, row, str(exc))
            return
        attempts = max(int(r["submit_attempts"]) + 1 for r in rows)
        delay = min(self.settings.submit_retry_seconds * 2 ** min(attempts, 8), 600)
        # Nothing reached the provider (or it keeps one letter per key): send again later.
        self._postpone(rows, delay, back_to_ready=not provider.honours_idempotency)
        log.warning("provider.unavailable", provider=provider.name, batch_id=batch_id, error=str(exc), retry_in=delay)

    def _postpone(self, rows: list[dict[str, Any]], delay: float, *, back_to_ready: bool = False) -> None:
        values: dict[str, Any] = {"next_attempt_at": self.clock() + timedelta(seconds=delay)}
        if back_to_ready:
            values["stage"] = "ready"
        with self.engine.begin() as conn:
            for row in rows:
                conn.execute(
                    update(mailpieces)
                    .where(
                        and_(
                            mailpieces.c.account_id == row["account_id"],
                            mailpieces.c.mailpiece_id == row["mailpiece_id"],
                        )
                    )
                    .values(**values)
                )

    def _mark_unclear(self, conn: Connection, row: dict[str, Any], detail: str) -> None:
        """Unknown outcome at a provider without idempotency keys: to staff ("Status unklar"), never resent."""
        log.warning(
            "mailpiece.outcome_unknown",
            mailpiece_id=row["mailpiece_id"],
            provider=row["provider"],
            detail=detail[:500],
        )
        self._transition(
            conn,
            row["account_id"],
            row["mailpiece_id"],
            MailpieceStatus.ACTION_REQUIRED,
            provider_status=OUTCOME_UNKNOWN,
            reason=UNCLEAR_REASON,
            stage="final",
            next_attempt_at=None,
        )

    def _record_results(self, provider_name: str, rows: list[dict[str, Any]], results: list[SubmitResult]) -> None:
        accounts = {r["mailpiece_id"]: r["account_id"] for r in rows}
        with self.engine.begin() as conn:
            for result in results:
                account = accounts[result.mailpiece_id]
                if result.error is not None:
                    self._transition(
                        conn,
                        account,
                        result.mailpiece_id,
                        MailpieceStatus.ACTION_REQUIRED,
                        reason=result.error,
                        stage="final",
                    )
                    continue
                try:
                    status = map_provider_status(result.status) or MailpieceStatus.SUBMITTED
                except UnknownProviderStatusError:
                    status = MailpieceStatus.SUBMITTED
                if status in (MailpieceStatus.CREATED, MailpieceStatus.VALIDATING):
                    status = MailpieceStatus.SUBMITTED
                self._transition(
                    conn,
                    account,
                    result.mailpiece_id,
                    status,
                    provider_status=result.status,
                    provider_ref=result.provider_ref,
                    tracking_number=result.tracking_number,
                    stage="final" if status in TERMINAL else "tracking",
                    next_attempt_at=None,
                )
                conn.execute(
                    update(mailpieces)
                    .where(and_(mailpieces.c.account_id == account, mailpieces.c.mailpiece_id == result.mailpiece_id))
                    .values(next_attempt_at=None, provider_ref=result.provider_ref)
                )
        log.info("mailpieces.submitted", provider=provider_name, count=len(results))

    # ---------------------------------------------------------------- tracking

    def apply_update(self, provider_name: str, update_: ProviderUpdate) -> bool:
        """Apply a provider status (webhook or poll). Unknown refs and statuses are reported, not guessed."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(mailpieces.c.account_id, mailpieces.c.mailpiece_id).where(
                    and_(mailpieces.c.provider == provider_name, mailpieces.c.provider_ref == update_.provider_ref)
                )
            ).first()
            if row is None:
                log.warning("provider.unknown_ref", provider=provider_name, provider_ref=update_.provider_ref)
                return False
            try:
                status = map_provider_status(update_.status)
            except UnknownProviderStatusError:
                log.warning("provider.unknown_status", provider=provider_name, status=update_.status)
                return False
            if status is None:
                return False
            reason = (
                update_.reason if status in (MailpieceStatus.ACTION_REQUIRED, MailpieceStatus.UNDELIVERABLE) else None
            )
            return self._transition(
                conn,
                row[0],
                row[1],
                status,
                provider_status=update_.status,
                tracking_number=update_.tracking_number,
                reason=reason,
            )

    async def poll_statuses(self) -> int:
        threshold = self.clock() - timedelta(seconds=self.settings.status_poll_seconds)
        applied = 0
        for name, provider in self.providers.items():
            pieces = await asyncio.to_thread(self._due_for_polling, name, threshold)
            if not pieces:
                continue
            try:
                updates = await provider.fetch_status(pieces)
            except ProviderUnavailableError as exc:
                log.warning("provider.poll_failed", provider=name, error=str(exc))
                continue
            applied += await asyncio.to_thread(self._apply_polled, name, pieces, updates)
        return applied

    def _due_for_polling(self, name: str, threshold: datetime) -> list[TrackedPiece]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    mailpieces.c.account_id,
                    mailpieces.c.print_order_id,
                    mailpieces.c.mailpiece_id,
                    mailpieces.c.provider_ref,
                )
                .where(
                    and_(
                        mailpieces.c.provider == name,
                        mailpieces.c.stage == "tracking",
                        or_(mailpieces.c.last_polled_at.is_(None), mailpieces.c.last_polled_at <= threshold),
                    )
                )
                .limit(200)
            ).all()
        return [TrackedPiece(r[0], r[1], r[2], r[3]) for r in rows]

    def _apply_polled(self, name: str, pieces: list[TrackedPiece], updates: list[ProviderUpdate]) -> int:
        applied = 0
        for item in updates:
            applied += int(self.apply_update(name, item))
        with self.engine.begin() as conn:
            for piece in pieces:
                conn.execute(
                    update(mailpieces)
                    .where(
                        and_(
                            mailpieces.c.account_id == piece.account_id,
                            mailpieces.c.mailpiece_id == piece.mailpiece_id,
                        )
                    )
                    .values(last_polled_at=self.clock())
                )
        return applied

    async def cancel(self, account_id: str, mailpiece_id: str) -> str:
        row = await asyncio.to_thread(self._read_row, account_id, mailpiece_id)
        stage = row["stage"]
        if stage in ("planned", "ready") or (stage == "final" and row["status"] == MailpieceStatus.ACTION_REQUIRED):
            await asyncio.to_thread(self._cancel_here, account_id, mailpiece_id)
            return MailpieceStatus.CANCELLED.value
        if stage == "tracking":
            provider = self.providers[row["provider"]]
            result = await provider.cancel(
                TrackedPiece(account_id, row["print_order_id"], mailpiece_id, row["provider_ref"])
            )
            await asyncio.to_thread(self.apply_update, provider.name, result)
            return result.status
        raise CancelNotPossibleError(f"mailpiece is {row['status']} ({stage}); it cannot be cancelled now")

    def _read_row(self, account_id: str, mailpiece_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return self._row(conn, account_id, mailpiece_id)

    def _cancel_here(self, account_id: str, mailpiece_id: str) -> None:
        with self.engine.begin() as conn:
            self._transition(
                conn,
                account_id,
                mailpiece_id,
                MailpieceStatus.CANCELLED,
                reason="cancelled by staff",
                stage="final",
            )

    # ---------------------------------------------------------------- queries

    def estimate(self, account_id: str, items: list[ReleasedItem], options: PrintOptions) -> dict[str, Any]:
        with self.engine.connect() as conn:
            selection = self._select(conn, account_id, items, options.recipient_filter)
            contacts = self._facts(conn, account_id, selection.selected)
        pieces: list[dict[str, Any]] = []
        total = 0
        plans = self._plan("estimate", selection.selected, options)
        document_of = {item.item_id: item.document_id for item in selection.selected}
        layout = self._layout_covers(plans, document_of, contacts, options)
        for plan in plans:
            entry: dict[str, Any] = {
                "contact_id": plan.contact_id,
                "item_ids": list(plan.item_ids),
                "pages": plan.pages,
                "part": plan.part_index,
                "parts": plan.part_count,
            }
            problem = self._plan_problem(plan, options)
            cover_reason = layout.get(document_of[plan.segments[0].item_id]) if plan.segments[0].starts_letter else None
            try:
                entry["address_lines"] = self._address(contacts.get(plan.contact_id))
                postage = self._estimate_postage(plan, options, layout_cover=cover_reason is not None)
            except (AddressError, PostageError) as exc:
                problem = problem or str(exc)
            else:
                entry.update(
                    cover_page=plan.needs_cover or cover_reason is not None,
                    sheets=postage.sheets,
                    envelope=postage.envelope.value,
                    letter_class=postage.letter_class.value,
                    weight_g=postage.weight_g,
                    postage_cents=postage.postage_cents,
                    registered_cents=postage.registered_cents,
                    print_cents=postage.print_cents,
                    cost_cents=postage.cost_cents,
                )
                total += postage.cost_cents
            entry["problem"] = problem
            pieces.append(entry)
        return {
            "recipient_filter": options.recipient_filter.value,
            "mailpieces": pieces,
            "excluded": [e.__dict__ for e in selection.excluded],
            "totals": {
                "mailpieces": len(pieces),
                "sendable": sum(1 for p in pieces if p["problem"] is None),
                "sheets": sum(p.get("sheets", 0) for p in pieces),
                "cost_cents": total,
            },
            "cover_page_layouts": layout,
            "notes": [
                (
                    "a cover page (one more sheet) is added where the address is not in the window; the estimate "
                    "checks one letter per document for its layout (cover_page_layouts); an address that differs "
                    "from master data is found only when the print files are made"
                ),
                *(
                    [
                        (
                            f"final selection after {options.not_viewed_working_days} working days: "
                            "letters opened by then are not printed"
                        )
                    ]
                    if options.recipient_filter is RecipientFilter.NOT_VIEWED
                    else []
                ),
            ],
        }

    def _layout_covers(
        self,
        plans: list[MailpiecePlan],
        document_of: dict[str, str],
        contacts: dict[str, Contact],
        options: PrintOptions,
    ) -> dict[str, str]:
        """Per document: why its layout needs a cover page with this provider (checked on one of its letters)."""
        provider = self.providers.get(options.provider)
        if provider is None:
            return {}
        found: dict[str, str] = {}
        checked: set[str] = set()
        for plan in plans:
            first = plan.segments[0]
            document = document_of[first.item_id]
            if document in checked or not first.starts_letter:
                continue
            try:
                lines = self._address(contacts.get(plan.contact_id))
                data = self.store.get(first.storage_key)
            except (AddressError, ObjectNotFoundError):
                continue  # try the next letter of the document
            except StorageUnavailableError as exc:
                raise TransientError(f"object storage unavailable: {exc}") from exc
            checked.add(document)
            reason = layout_needs_cover(data, first.first_page, provider.profile, lines)
            if reason is not None:
                found[document] = reason
        return found

    def order_view(self, account_id: str, print_order_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(orders).where(
                        and_(orders.c.account_id == account_id, orders.c.print_order_id == print_order_id)
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                raise UnknownOrderError(print_order_id)
            pieces = self._mailpiece_views(
                conn, and_(mailpieces.c.account_id == account_id, mailpieces.c.print_order_id == print_order_id)
            )
        counts: dict[str, int] = {}
        for piece in pieces:
            counts[piece["status"]] = counts.get(piece["status"], 0) + 1
        return {
            "print_order_id": print_order_id,
            "letter_id": row["letter_id"],
            "title": row["title"],
            "options": json.loads(row["options"]),
            "ordered_by": row["ordered_by"],
            "ordered_at": _aware(row["ordered_at"]).isoformat(),  # type: ignore[union-attr]
            "fallback_due": row["fallback_due"].isoformat() if row["fallback_due"] else None,
            "fallback_done": row["fallback_done"],
            "excluded": json.loads(row["excluded"]),
            "status_counts": counts,
            "cost_cents": sum(p["cost_cents"] or 0 for p in pieces if p["status"] != "cancelled"),
            "mailpieces": pieces,
        }

    def letter_mailpieces(self, account_id: str, letter_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return self._mailpiece_views(
                conn, and_(mailpieces.c.account_id == account_id, mailpieces.c.letter_id == letter_id)
            )

    def _mailpiece_views(self, conn: Connection, condition: Any) -> list[dict[str, Any]]:
        rows = conn.execute(
            select(mailpieces)
            .where(condition)
            .order_by(mailpieces.c.created_at, mailpieces.c.position, mailpieces.c.mailpiece_id)
        ).mappings()
        return [
            {
                "mailpiece_id": r["mailpiece_id"],
                "print_order_id": r["print_order_id"],
                "contact_id": r["contact_id"],
                "item_ids": json.loads(r["item_ids"]),
                "part": r["part_index"],
                "parts": r["part_count"],
                "provider": r["provider"],
                "provider_ref": r["provider_ref"],
                "status": r["status"],
                "provider_status": r["provider_status"],
                "tracking_number": r["tracking_number"],
                "pages": r["pages"],
                "sheets": r["sheets"],
                "letter_class": r["letter_class"],
                "envelope": r["envelope"],
                "cost_cents": r["cost_cents"],
                "reason": r["reason"],
                "outcome_unknown": r["provider_status"] == OUTCOME_UNKNOWN,
                "findings": json.loads(r["findings"]),
                "print_key": r["print_key"],
            }
            for r in rows
        ]


def _prepare_or_reason(request: PrepareRequest) -> PreparedMailpiece | str:
    try:
        return prepare_mailpiece(request)
    except UnsendableError as exc:
        return str(exc)
