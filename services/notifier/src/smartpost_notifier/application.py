"""Use cases of the notifier.

Consuming an event only writes rows (documents, mail outbox rows, links) in the transaction that also records the
processed event. The digest builder writes one row per recipient and day. The sender claims due rows and sends
them through SMTP, recording the point of no return (``handed_over``) right before the final dot of DATA, so a
crash never loses a mail and never sends one twice (see README "Exactly once").
"""

from __future__ import annotations

import json
import threading
import time as time_module
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from smartpost_notifier.adapters.db import DocumentRow, MailRow, NotifierRepository
from smartpost_notifier.adapters.handover import HandoverJournal, journal_path
from smartpost_notifier.adapters.smtp import SmtpPermanentError, SmtpTransientError, SmtpUnconfirmedError
from smartpost_notifier.domain import (
    DocumentLine,
    Ineligible,
    MailKind,
    MailStatus,
    Recipient,
    Sender,
    digest_days_to_run,
    digest_mail_id,
    immediate_mail_id,
    ineligibility,
    latest_due_digest_day,
    publication_day,
    retry_delay,
)
from smartpost_notifier.rendering import MailContent, RenderedMail, RenderError, render
from smartpost_shared.contracts.envelope import deterministic_event_id, make_envelope
from smartpost_shared.contracts.portal import (
    DocumentPublished,
    DocumentRevoked,
    NotificationKind,
    NotificationSent,
)
from smartpost_shared.db import add_to_outbox
from smartpost_shared.logging import get_logger
from smartpost_shared.masterdata import Contact, MasterDataReader, apply_masterdata
from smartpost_shared.replay import Staleness, record_stale, staleness

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from smartpost_notifier.adapters.smtp import Mailer
    from smartpost_notifier.settings import Settings
    from smartpost_shared.contracts.envelope import Envelope

log = get_logger(__name__)

Clock = Callable[[], datetime]
PRODUCER = "notifier"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AccountProfile:
    account_id: str
    sender: Sender
    digest_time: time
    timezone: ZoneInfo


@dataclass(frozen=True)
class SendReport:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    deferred: int = 0

    @property
    def processed(self) -> int:
        return self.sent + self.failed + self.skipped + self.deferred


@dataclass(frozen=True)
class _Prepared:
    rendered: RenderedMail
    document_ids: list[str]


class SmtpOutageError(Exception):
    """Raised inside the sender to stop a batch when the relay is down."""

    def __init__(self, retry_in_seconds: float) -> None:
        super().__init__(f"SMTP relay unavailable, retry in {retry_in_seconds:.1f}s")
        self.retry_in_seconds = retry_in_seconds


class Notifier:
    """The notifier's application service; synchronous (callers run it in a worker thread)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        mailer: Mailer,
        *,
        clock: Clock = utc_now,
        mailer_factory: Callable[[], Mailer] | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.mailer = mailer
        # More connections for a batch (settings.send_connections); without a factory one mail at a time.
        self.mailer_factory = mailer_factory
        self._extra_mailers: list[Mailer] = []
        self.clock = clock
        self.timezone = ZoneInfo(settings.timezone)
        self.journal = HandoverJournal(journal_path(settings.resolved_database_url(), settings.data_dir))

    # --- configuration -----------------------------------------------------------------------------------------
    def profile(self, account_id: str) -> AccountProfile:
        s = self.settings
        o = s.account(account_id)
        sender = Sender(
            account_name=o.name or s.account_name,
            address=o.sender_address or s.sender_address,
            name=o.sender_name or o.name or s.sender_name,
            language=o.language or s.default_language,
            # "Zum Kundenportal" in the mail: the account's inbox in the recipients' web portal.
            portal_base_url=s.portal_home_url.format(
                base=(o.portal_base_url or s.portal_base_url).rstrip("/"), account_id=account_id
            ),
        )
        return AccountProfile(account_id, sender, o.digest_time or s.digest_time, self.timezone)

    # --- consuming events (run inside SqlIdempotency's transaction) --------------------------------------------
    def on_masterdata(self, envelope: Envelope, conn: Connection) -> None:
        apply_masterdata(conn, envelope)

    def on_document_published(self, envelope: Envelope, conn: Connection) -> None:
        payload = envelope.payload
        assert isinstance(payload, DocumentPublished)
        account = envelope.account_id
        if not payload.visible_on_publication:
            # The recipient cannot open it (contract outside the portal's access window): announcing it would only
            # send them to a document they are refused; neither the immediate mail nor the digest mentions it.
            log.info("document.hidden_not_announced", document_id=payload.document_id)
            return
        repo = NotifierRepository(conn)
        added = repo.add_document(
            {
                "account_id": account,
                "document_id": payload.document_id,
                "letter_id": payload.letter_id,
                "item_id": payload.item_id,
                "contact_id": payload.contact_id,
                "property_id": payload.property_id,
                "unit_id": payload.unit_id,
                "title": payload.title,
                "folder": json.dumps(payload.folder, ensure_ascii=False),
                "letter_date": payload.letter_date,
                "published_at": payload.published_at.astimezone(UTC),
                "publish_day": publication_day(payload.published_at, self.timezone),
            }
        )
        if not added:
            log.info("document.already_known", document_id=payload.document_id)
            return
        stale = staleness(envelope.occurred_at, self.clock(), self.settings.immediate_max_age_hours)
        if stale is not None:
            self._hold_stale(repo, envelope, payload, stale)
            return
        if not payload.notify_by_email:
            return
        mail_id = immediate_mail_id(account, payload.contact_id, payload.letter_id)
        existing = repo.mail(mail_id)
        if existing is None:
            now = self.clock()
            repo.add_mail(
                {
                    "mail_id": mail_id,
                    "account_id": account,
                    "contact_id": payload.contact_id,
                    "kind": MailKind.IMMEDIATE.value,
                    "letter_id": payload.letter_id,
                    "status": MailStatus.PENDING.value,
                    "attempts": 0,
                    "next_attempt_at": now + timedelta(seconds=self.settings.immediate_delay_seconds),
                    "created_at": now,
                }
            )
        elif existing.status is not MailStatus.PENDING:
            # The recipient already has (or is getting) the one mail of this release; the digest lists the rest.
            log.info("immediate.already_on_its_way", mail_id=mail_id, document_id=payload.document_id)
            return
        repo.link(mail_id, account, payload.document_id)

    def _hold_stale(
        self, repo: NotifierRepository, envelope: Envelope, payload: DocumentPublished, stale: Staleness
    ) -> None:
        """A replayed (too old) publication: record a ``stale`` mail row for staff, send nothing, no digest.

        The row is the one the publication would have used (the release's immediate mail, or the digest of its
        publication day when the recipient gets digests only), so a second replay finds it and a later fresh
        event of the same release does not mail either. The document is marked as belonging to that row, so the
        daily digest does not list it: a replay would otherwise send a digest of weeks-old documents.
        """
        account = envelope.account_id
        day = publication_day(payload.published_at, self.timezone)
        if payload.notify_by_email:
            kind, mail_id = MailKind.IMMEDIATE, immediate_mail_id(account, payload.contact_id, payload.letter_id)
        else:
            kind, mail_id = MailKind.DIGEST, digest_mail_id(account, payload.contact_id, day)
        existing = repo.mail(mail_id)
        now = self.clock()
        if existing is None:
            repo.add_mail(
                {
                    "mail_id": mail_id,
                    "account_id": account,
                    "contact_id": payload.contact_id,
                    "kind": kind.value,
                    "letter_id": payload.letter_id if kind is MailKind.IMMEDIATE else None,
                    "digest_day": day if kind is MailKind.DIGEST else None,
                    "status": MailStatus.STALE.value,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "last_error": stale.reason,
                }
            )
        if existing is None or existing.status in (MailStatus.STALE, MailStatus.PENDING):
            repo.link(mail_id, account, payload.document_id)
        repo.assign_to_digest(account, [payload.document_id], mail_id)
        record_stale(
            PRODUCER,
            envelope.event_type,
            stale,
            event_id=str(envelope.event_id),
            document_id=payload.document_id,
            mail_id=mail_id,
            held_back=kind.value,
        )

    def stale_mails(self, account_id: str) -> list[MailRow]:
        """Mails of the account held back because their publication event was too old (for staff to check)."""
        with self.engine.connect() as conn:
            return NotifierRepository(conn).mails_in_status(MailStatus.STALE, account_id)

    def document_titles(self, account_id: str, mail_ids: list[str]) -> dict[str, list[str]]:
        """Titles of the documents each of these mails of the account announces."""
        with self.engine.connect() as conn:
            return NotifierRepository(conn).document_titles(account_id, mail_ids)

    def release_stale(self, account_id: str, mail_id: str) -> bool:
        """Staff released a held-back mail: it goes out with the next send round (compare-and-set on ``stale``)."""
        with self.engine.begin() as conn:
            repo = NotifierRepository(conn)
            mail = repo.mail(mail_id)
            if mail is None or mail.account_id != account_id:
                return False
            released = repo.set_mail(
                mail_id, expect=MailStatus.STALE, status=MailStatus.PENDING, next_attempt_at=self.clock()
            )
        if released:
            log.warning("mail.stale_released_by_staff", mail_id=mail_id, account_id=account_id)
        return released

    def on_document_revoked(self, envelope: Envelope, conn: Connection) -> None:
        payload = envelope.payload
        assert isinstance(payload, DocumentRevoked)
        account = envelope.account_id
        repo = NotifierRepository(conn)
        if not repo.revoke_document(account, payload.document_id, self.clock()):
            log.info("document.revoke_unknown_or_repeated", document_id=payload.document_id)
        for mail in repo.pending_mails_of_document(account, payload.document_id):
            if repo.unlink(mail.mail_id, payload.document_id) == 0:
                repo.set_mail(
                    mail.mail_id,
                    expect=MailStatus.PENDING,
                    status=MailStatus.CANCELLED,
                    last_error="all documents revoked",
                )
                log.info("mail.cancelled_by_revocation", mail_id=mail.mail_id)

    # --- digests -----------------------------------------------------------------------------------------------
    def run_digest(self, account_id: str, day: date) -> int:
        """Create the digest rows of ``day`` for ``account_id`` (idempotent); returns how many were created.

        Every not yet digested, not revoked document published on or before ``day`` is listed, so a document
        whose event arrived after its day's run goes into the next digest instead of being lost.
        """
        now = self.clock()
        created = 0
        with self.engine.begin() as conn:
            repo = NotifierRepository(conn)
            by_contact: dict[str, list[DocumentRow]] = {}
            for doc in repo.undigested_documents(account_id, day):
                by_contact.setdefault(doc.contact_id, []).append(doc)
            for contact_id, docs in by_contact.items():
                mail_id = digest_mail_id(account_id, contact_id, day)
                existing = repo.mail(mail_id)
                if existing is None:
                    repo.add_mail(
                        {
                            "mail_id": mail_id,
                            "account_id": account_id,
                            "contact_id": contact_id,
                            "kind": MailKind.DIGEST.value,
                            "digest_day": day,
                            "status": MailStatus.PENDING.value,
                            "attempts": 0,
                            "next_attempt_at": now,
                            "created_at": now,
                        }
                    )
                    created += 1
                elif existing.status is not MailStatus.PENDING:
                    continue  # this day's digest is out: the documents wait for the next one
                for doc in docs:
                    repo.link(mail_id, account_id, doc.document_id)
                repo.assign_to_digest(account_id, [d.document_id for d in docs], mail_id)
            repo.record_digest_run(account_id, day, now, created)
        log.info("digest.built", account_id=account_id, day=day.isoformat(), mails=created)
        return created

    def run_due_digests(self) -> list[tuple[str, date, int]]:
        """Scheduler tick: run every due, not yet run digest day of every account with waiting documents."""
        now = self.clock()
        with self.engine.connect() as conn:
            accounts = NotifierRepository(conn).accounts_with_undigested_documents()
        results: list[tuple[str, date, int]] = []
        for account_id in accounts:
            profile = self.profile(account_id)
            due = latest_due_digest_day(now, profile.timezone, profile.digest_time)
            since = due - timedelta(days=self.settings.digest_catchup_days)
            with self.engine.connect() as conn:
                done = NotifierRepository(conn).digest_run_days(account_id, since)
            days = digest_days_to_run(
                now, profile.timezone, profile.digest_time, done, self.settings.digest_catchup_days
            )
            results.extend((account_id, day, self.run_digest(account_id, day)) for day in days)
        return results

    # --- sending -----------------------------------------------------------------------------------------------
    def recover_in_flight(self) -> tuple[int, int]:
        """At start-up (single instance): settle the mails a previous process left in flight.

        A ``sending`` mail whose id is in the hand-over journal reached the final dot: it counts as sent
        (unconfirmed). Any other ``sending`` mail goes back to the queue: the relay discarded the unfinished
        transaction. (``handed_over`` rows come from versions that recorded the hand-over in the database.)
        Returns (requeued, assumed_sent).
        """
        now = self.clock()
        journal = self.journal.handed_over()
        requeued = 0
        with self.engine.begin() as conn:
            repo = NotifierRepository(conn)
            handed = repo.mails_in_status(MailStatus.HANDED_OVER)
            for mail in repo.mails_in_status(MailStatus.SENDING):
                if mail.mail_id in journal:
                    handed.append(mail)
                    continue
                repo.set_mail(mail.mail_id, expect=MailStatus.SENDING, status=MailStatus.PENDING, claimed_at=None)
                requeued += 1
            for mail in handed:
                self._record_sent(conn, mail, repo.linked_document_ids(mail.mail_id), now, confirmed=False)
        # Every journal entry is now settled in the database (sent rows stay sent).
        self.journal.clear()
        if requeued or handed:
            log.warning("sender.recovered", requeued=requeued, assumed_sent=len(handed))
        return requeued, len(handed)

    def claim_due(self) -> list[str]:
        now = self.clock()
        with self.engine.begin() as conn:
            repo = NotifierRepository(conn)
            return [
                mail_id
                for mail_id in repo.due_mail_ids(now, self.settings.send_batch_size)
                if repo.set_mail(mail_id, expect=MailStatus.PENDING, status=MailStatus.SENDING, claimed_at=now)
            ]

    def _mailers(self, wanted: int) -> list[Mailer]:
        """``wanted`` mailers (one SMTP connection each): the given one plus ones made by the factory."""
        if self.mailer_factory is None or self.settings.max_mails_per_second:
            return [self.mailer]
        while len(self._extra_mailers) < wanted - 1:
            self._extra_mailers.append(self.mailer_factory())
        return [self.mailer, *self._extra_mailers[: wanted - 1]]

    def send_due(self, should_stop: Callable[[], bool] = lambda: False) -> SendReport:
        """Claim due mails and send them; stops the batch early on an SMTP outage or when asked to stop.

        With several connections the claimed mails are dealt out to one worker thread per connection; each mail
        still goes through exactly one worker (claimed once, journalled once). An outage or an error in one
        worker stops the others: every mail not yet started goes back to the queue.
        """
        claimed = self.claim_due()
        mailers = self._mailers(max(1, min(self.settings.send_connections, len(claimed))))
        if len(mailers) <= 1:
            return SendReport(**self._send_sequence(self.mailer, claimed, should_stop, threading.Event()))
        halt = threading.Event()
        shares = [claimed[i :: len(mailers)] for i in range(len(mailers))]
        with ThreadPoolExecutor(max_workers=len(mailers), thread_name_prefix="notifier-smtp") as pool:
            futures = [
                pool.submit(self._send_sequence, mailer, share, should_stop, halt)
                for mailer, share in zip(mailers, shares, strict=True)
            ]
        counts = {"sent": 0, "failed": 0, "skipped": 0, "deferred": 0}
        for future in futures:
            if future.exception() is None:
                for key, value in future.result().items():
                    counts[key] += value
        for future in futures:
            error = future.exception()
            if error is not None:
                raise error
        return SendReport(**counts)

    def _send_sequence(
        self, mailer: Mailer, claimed: list[str], should_stop: Callable[[], bool], halt: threading.Event
    ) -> dict[str, int]:
        """Send ``claimed`` one after the other over ``mailer``; ``halt`` is shared with the other workers."""
        counts = {"sent": 0, "failed": 0, "skipped": 0, "deferred": 0}
        interval = 1.0 / self.settings.max_mails_per_second if self.settings.max_mails_per_second else 0.0
        try:
            for index, mail_id in enumerate(claimed):
                if should_stop() or halt.is_set():
                    # Asked to stop, or another worker met an outage or an error: the rest goes back now.
                    self._release(claimed[index:], self.clock())
                    break
                try:
                    outcome = self._send_one(mail_id, mailer)
                except SmtpOutageError as exc:
                    halt.set()
                    retry_at = self.clock() + timedelta(seconds=exc.retry_in_seconds)
                    self._release(claimed[index + 1 :], retry_at)
                    counts["deferred"] += 1
                    break
                except Exception:
                    # Anything else (e.g. a database hiccup): settle the failing mail by the recovery rule and put
                    # the rest of the batch back in the queue now, not only at the next restart.
                    halt.set()
                    self._settle_after_error(mail_id)
                    self._release(claimed[index + 1 :], self.clock())
                    raise
                counts[outcome] += 1
                if interval:
                    time_module.sleep(interval)
        finally:
            mailer.close()
        return counts

    def _settle_after_error(self, mail_id: str) -> None:
        """Past the journal entry the relay has the mail (count it sent); before it, send it again later."""
        with self.engine.begin() as conn:
            repo = NotifierRepository(conn)
            mail = repo.mail(mail_id)
            if mail is None or mail.status is not MailStatus.SENDING:
                return
            if mail_id in self.journal.handed_over():
                self._record_sent(conn, mail, repo.linked_document_ids(mail_id), self.clock(), confirmed=False)
            else:
                repo.set_mail(mail_id, expect=MailStatus.SENDING, status=MailStatus.PENDING, claimed_at=None)

    def _release(self, mail_ids: list[str], retry_at: datetime) -> None:
        if not mail_ids:
            return
        with self.engine.begin() as conn:
            repo = NotifierRepository(conn)
            for mail_id in mail_ids:
                repo.set_mail(
                    mail_id,
                    expect=MailStatus.SENDING,
                    status=MailStatus.PENDING,
                    claimed_at=None,
                    next_attempt_at=retry_at,
                )

    def _send_one(self, mail_id: str, mailer: Mailer | None = None) -> str:
        mailer = mailer or self.mailer
        with self.engine.begin() as conn:
            repo = NotifierRepository(conn)
            mail = repo.mail(mail_id)
            if mail is None or mail.status is not MailStatus.SENDING:
                return "skipped"
            content = self._prepare(conn, repo, mail)
            if isinstance(content, str):
                return content
        # Rendered outside the transaction: it is the CPU-heavy part and the transaction holds SQLite's write lock.
        prepared = self._render(mail, content)
        if isinstance(prepared, str):
            return prepared

        def handed_over() -> None:
            # Point of no return, right before the final dot: one write() to the journal (see adapters/handover.py).
            self.journal.record(mail_id)

        try:
            reply = mailer.send(prepared.rendered, handed_over)
        except SmtpTransientError as exc:
            delay = retry_delay(mail.attempts + 1, self.settings.retry_base_seconds, self.settings.retry_max_seconds)
            self._retry_later(mail, str(exc), delay)
            log.warning("mail.smtp_unavailable", mail_id=mail_id, error=str(exc), retry_in=delay)
            raise SmtpOutageError(delay) from exc
        except SmtpPermanentError as exc:
            with self.engine.begin() as conn:
                NotifierRepository(conn).set_mail(mail_id, status=MailStatus.FAILED, last_error=str(exc)[:2000])
            log.error("mail.refused", mail_id=mail_id, error=str(exc))  # noqa: TRY400 - expected, no traceback
            return "failed"
        except SmtpUnconfirmedError as exc:
            with self.engine.begin() as conn:
                self._record_delivery(conn, mail_id, prepared.rendered)
                self._record_sent(conn, mail, prepared.document_ids, self.clock(), confirmed=False)
            log.warning("mail.sent_unconfirmed", mail_id=mail_id, error=str(exc))
            return "sent"
        with self.engine.begin() as conn:
            self._record_delivery(conn, mail_id, prepared.rendered)
            self._record_sent(conn, mail, prepared.document_ids, self.clock(), confirmed=True)
        log.info("mail.sent", mail_id=mail_id, kind=mail.kind.value, documents=len(prepared.document_ids), reply=reply)
        return "sent"

    def _retry_later(self, mail: MailRow, error: str, delay: float) -> None:
        with self.engine.begin() as conn:
            NotifierRepository(conn).set_mail(
                mail.mail_id,
                status=MailStatus.PENDING,
                attempts=mail.attempts + 1,
                next_attempt_at=self.clock() + timedelta(seconds=delay),
                last_error=error[:2000],
                claimed_at=None,
            )

    def _prepare(self, conn: Connection, repo: NotifierRepository, mail: MailRow) -> MailContent | str:
        """What the mail says, or settle it (cancelled / skipped / deferred) and return the outcome name."""
        now = self.clock()
        docs = repo.documents_of_mail(mail.mail_id)
        if not docs:
            repo.set_mail(mail.mail_id, status=MailStatus.CANCELLED, last_error="all documents revoked")
            return "skipped"
        reader = MasterDataReader(conn)
        contact = reader.contact(mail.account_id, mail.contact_id)
        recipient = _recipient(contact)
        reason = ineligibility(recipient)
        grace = timedelta(seconds=self.settings.unknown_contact_grace_seconds)
        if reason is Ineligible.UNKNOWN_CONTACT and now - mail.created_at < grace:
            # Master data and portal events travel on different topics: the contact may still be on its way.
            delay = retry_delay(mail.attempts + 1, self.settings.retry_base_seconds, self.settings.retry_max_seconds)
            repo.set_mail(
                mail.mail_id,
                status=MailStatus.PENDING,
                attempts=mail.attempts + 1,
                next_attempt_at=now + timedelta(seconds=delay),
                last_error=reason.value,
                claimed_at=None,
            )
            return "deferred"
        if reason is not None or recipient is None:
            repo.set_mail(mail.mail_id, status=MailStatus.SKIPPED, last_error=reason.value if reason else None)
            log.info("mail.skipped", mail_id=mail.mail_id, reason=reason.value if reason else None)
            return "skipped"
        profile = self.profile(mail.account_id)
        return MailContent(
            mail_id=mail.mail_id,
            account_id=mail.account_id,
            kind=mail.kind,
            recipient=recipient,
            sender=profile.sender,
            documents=[self._line(reader, doc, profile) for doc in docs],
            digest_day=mail.digest_day,
        )

    def _render(self, mail: MailRow, content: MailContent) -> _Prepared | str:
        """The mail's bytes, or ``failed`` (recorded) when it cannot be rendered."""
        try:
            rendered = render(content, message_id_domain=self.settings.message_id_domain, now=self.clock())
        except (RenderError, ValueError) as exc:
            with self.engine.begin() as conn:
                NotifierRepository(conn).set_mail(
                    mail.mail_id,
                    expect=MailStatus.SENDING,
                    status=MailStatus.FAILED,
                    last_error=f"cannot render: {exc}",
                )
            log.exception("mail.render_failed", mail_id=mail.mail_id)
            return "failed"
        return _Prepared(rendered, sorted(d.document_id for d in content.documents))

    def _line(self, reader: MasterDataReader, doc: DocumentRow, profile: AccountProfile) -> DocumentLine:
        prop = reader.property(doc.account_id, doc.property_id) if doc.property_id else None
        unit = reader.unit(doc.account_id, doc.unit_id) if doc.unit_id else None
        unit_label = None
        if unit is not None:
            word = "Unit" if profile.sender.language == "en" else "Einheit"
            unit_label = f"{word} {unit.number}" + (f" ({unit.position})" if unit.position else "")
        o = self.settings.account(profile.account_id)
        url = self.settings.portal_document_url.format(
            base=(o.portal_base_url or self.settings.portal_base_url).rstrip("/"),
            account_id=profile.account_id,
            document_id=doc.document_id,
        )
        return DocumentLine(
            document_id=doc.document_id,
            title=doc.title,
            folder=tuple(doc.folder),
            letter_date=doc.letter_date,
            published_at=doc.published_at,
            property_name=prop.name if prop else None,
            unit_label=unit_label,
            url=url,
        )

    def _record_delivery(self, conn: Connection, mail_id: str, rendered: RenderedMail) -> None:
        NotifierRepository(conn).set_mail(
            mail_id,
            handed_over_at=self.clock(),
            recipient=rendered.envelope_to,
            message_id=rendered.message_id,
        )

    def _record_sent(
        self, conn: Connection, mail: MailRow, document_ids: list[str], at: datetime, *, confirmed: bool
    ) -> None:
        repo = NotifierRepository(conn)
        repo.set_mail(mail.mail_id, status=MailStatus.SENT, sent_at=at, confirmed=confirmed, claimed_at=None)
        if not document_ids:
            return
        payload = NotificationSent(
            notification_id=mail.mail_id,
            kind=NotificationKind(mail.kind.value),
            contact_id=mail.contact_id,
            document_ids=document_ids,
            letter_id=mail.letter_id,
            digest_date=mail.digest_day,
            sent_at=at,
        )
        add_to_outbox(
            conn,
            make_envelope(
                payload,
                account_id=mail.account_id,
                producer=PRODUCER,
                event_id=deterministic_event_id("notifier", "NotificationSent", mail.mail_id),
                occurred_at=at,
            ),
        )

    def mail_counts(self, account_id: str) -> dict[str, dict[str, int]]:
        with self.engine.connect() as conn:
            return NotifierRepository(conn).mail_counts(account_id)


def _recipient(contact: Contact | None) -> Recipient | None:
    if contact is None:
        return None
    return Recipient(
        contact_id=contact.contact_id,
        email=contact.email,
        portal_registered=contact.portal_registered,
        archived=contact.archived,
        salutation=contact.salutation,
        first_name=contact.first_name,
        last_name=contact.last_name,
        company=contact.company,
    )
