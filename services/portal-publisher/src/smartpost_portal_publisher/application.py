"""Use cases: publishing released letters, revoking them, and what the portal API does for a recipient.

Consumer handlers run inside the :class:`~smartpost_shared.messaging.SqlIdempotency` transaction (ledger row,
documents and outgoing events commit together). API use cases open their own short transactions.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from smartpost_portal_publisher.adapters.db import PortalRepository
from smartpost_portal_publisher.domain import (
    CODE_ALPHABET,
    CODE_GROUP_LENGTH,
    CODE_GROUPS,
    AccessWindow,
    ContractPeriod,
    CoUserRights,
    FolderNode,
    PortalDocument,
    Principal,
    PrincipalKind,
    Refusal,
    StorageKeyError,
    access_refusal,
    check_storage_key,
    document_id_for,
    folder_tree,
    format_code,
    in_folder,
    may_invite_co_user,
    normalize_code,
    relevant_contracts,
    unit_accessible,
    within_window,
)
from smartpost_portal_publisher.security import (
    DownloadGrant,
    LinkProblem,
    check_grant,
    hash_password,
    hash_secret_token,
    sign_grant,
    verify_password,
)
from smartpost_shared.contracts.envelope import Envelope, caused_by, deterministic_event_id, make_envelope
from smartpost_shared.contracts.letters import LetterItemsRevoked, LetterReleased
from smartpost_shared.contracts.portal import DocumentPublished, DocumentRevoked, DocumentViewed
from smartpost_shared.db import add_to_outbox
from smartpost_shared.logging import get_logger
from smartpost_shared.masterdata import MasterDataReader
from smartpost_shared.messaging import PermanentError
from smartpost_shared.storage import ObjectNotFoundError

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from sqlalchemy.engine import Connection, Engine

    from smartpost_shared.storage import ObjectStore

log = get_logger(__name__)

PRODUCER = "portal-publisher"
RESET_MAIL_INTERVAL = timedelta(minutes=2)
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


# --- errors the API maps to HTTP answers -------------------------------------------------------------------------


class PortalError(Exception):
    """Base of use-case refusals; ``status`` is the HTTP answer.

    ``str(exc)`` is the technical reason (API answers, log); ``german`` is what a recipient reads in the web portal.
    """

    status = 400
    default_german = "Das hat leider nicht geklappt. Bitte versuchen Sie es erneut."

    def __init__(self, message: str, german: str | None = None) -> None:
        super().__init__(message)
        self.german = german or self.default_german


class NotFoundError(PortalError):
    status = 404
    default_german = "Dieses Dokument gibt es in Ihrem Kundenportal nicht."


class GoneError(PortalError):
    status = 410
    default_german = "Ihre Hausverwaltung hat dieses Dokument zurückgezogen. Es ist nicht mehr abrufbar."


class ForbiddenError(PortalError):
    status = 403
    default_german = "Dieser Zugriff ist nicht erlaubt."


class AuthenticationError(PortalError):
    status = 401
    default_german = "Bitte melden Sie sich an."


class ConflictError(PortalError):
    status = 409
    default_german = "Das ist bereits vergeben."


class TooManyAttemptsError(PortalError):
    status = 429
    default_german = "Zu viele Fehlversuche. Bitte warten Sie eine Viertelstunde und versuchen Sie es dann erneut."


class InvalidInputError(PortalError):
    status = 422
    default_german = "Bitte prüfen Sie Ihre Eingaben."


class StorageFailureError(PortalError):
    status = 503
    default_german = "Das Dokument ist gerade nicht abrufbar. Bitte versuchen Sie es in einigen Minuten erneut."


_CODE_INVALID = (
    "Dieser Einladungscode ist ungültig oder wurde schon eingelöst. Bitte prüfen Sie die Eingabe; ein Code besteht "
    "aus 16 Zeichen (z. B. 7K3M-Q9XT-2HBD-W4RN)."
)
_CODE_EXPIRED = (
    "Dieser Einladungscode ist abgelaufen. Bitte bitten Sie Ihre Hausverwaltung um einen neuen Einladungscode."
)
_RESET_INVALID = (
    "Dieser Link zum Zurücksetzen des Passworts ist ungültig oder wurde schon benutzt. "
    "Fordern Sie bitte einen neuen an."
)
_RESET_EXPIRED = (
    "Dieser Link zum Zurücksetzen des Passworts ist abgelaufen (er gilt eine Stunde). Fordern Sie bitte einen neuen an."
)
_LINK_INVALID = "Dieser Download-Link ist ungültig. Bitte öffnen Sie das Dokument erneut über Ihren Posteingang."
_LINK_EXPIRED = (
    "Dieser Download-Link ist abgelaufen: Aus Sicherheitsgründen gilt er nur wenige Minuten. Bitte öffnen Sie das "
    "Dokument erneut über Ihren Posteingang und laden Sie es dort herunter."
)


# --- consuming letters.events ------------------------------------------------------------------------------------


class Publisher:
    """Turns LetterReleased into portal documents and LetterItemsRevoked into revocations (sync, in a transaction)."""

    def __init__(
        self,
        clock: Clock = utc_now,
        *,
        default_window: AccessWindow | None = None,
        timezone: tzinfo = UTC,
    ) -> None:
        self.clock = clock
        # The access window decides whether a document is visible when it is published (None: always visible).
        self.default_window = default_window
        self.timezone = timezone

    def on_letter_released(self, envelope: Envelope, conn: Connection) -> None:
        release = envelope.payload
        assert isinstance(release, LetterReleased)
        account = envelope.account_id
        repo = PortalRepository(conn)
        # Check every key before publishing anything: one foreign key means the release is wrong as a whole.
        for item in release.items:
            try:
                check_storage_key(account, item.storage_key)
            except StorageKeyError as exc:
                raise PermanentError(str(exc)) from exc
        now = self.clock()
        today = now.astimezone(self.timezone).date()
        window = repo.access_window(account, self.default_window) if self.default_window is not None else None
        periods: dict[str, list[ContractPeriod]] = {}
        published = skipped = 0
        item_ids = [item.item_id for item in release.items]
        already_published = repo.published_contacts(account, item_ids)
        revoked_before = repo.revoked_item_ids(account, item_ids)
        for item in release.items:
            if item.item_id in already_published:
                if already_published[item.item_id] != item.contact_id:
                    # Never move a published letter to someone else silently; corrections revoke and re-release.
                    log.error(
                        "portal.release_conflict",
                        item_id=item.item_id,
                        published_contact=already_published[item.item_id],
                        released_contact=item.contact_id,
                    )
                skipped += 1
                continue
            if item.item_id in revoked_before:
                log.warning("portal.release_of_revoked_item_skipped", item_id=item.item_id)
                skipped += 1
                continue
            already_published[item.item_id] = item.contact_id  # the same item twice in one release: once
            document = PortalDocument(
                account_id=account,
                document_id=document_id_for(account, item.item_id),
                item_id=item.item_id,
                letter_id=release.letter_id,
                contact_id=item.contact_id,
                property_id=item.property_id,
                unit_id=item.unit_id,
                title=release.title,
                folder=tuple(release.document_type.path),
                letter_date=release.letter_date,
                storage_key=item.storage_key,
                page_count=item.page_count,
                published_at=now,
                period_start=getattr(release, "period_start", None),
                period_end=getattr(release, "period_end", None),
            )
            repo.insert_document(
                document,
                document_type_id=release.document_type.id,
                notify_by_email=release.notify_by_email,
                correlation_id=str(envelope.correlation_id),
            )
            visible = True
            if window is not None:
                if item.contact_id not in periods:
                    periods[item.contact_id] = repo.contract_periods(account, item.contact_id)
                # No contract known (yet): master data and releases arrive on separate topics, so the contract
                # may simply not be here yet. Announce it then; the portal itself still checks at every read.
                known = relevant_contracts(document, periods[item.contact_id])
                visible = not known or within_window(document, periods[item.contact_id], window, today)
                if not visible:
                    log.info("portal.published_hidden", item_id=item.item_id, reason="outside the access window")
            event = DocumentPublished(
                document_id=document.document_id,
                letter_id=document.letter_id,
                item_id=document.item_id,
                contact_id=document.contact_id,
                property_id=document.property_id,
                unit_id=document.unit_id,
                title=document.title,
                folder=list(document.folder),
                letter_date=document.letter_date,
                notify_by_email=release.notify_by_email,
                published_at=now,
                visible_on_publication=visible,
            )
            add_to_outbox(
                conn,
                caused_by(
                    envelope,
                    event,
                    producer=PRODUCER,
                    event_id=deterministic_event_id("portal-published", account, item.item_id),
                ),
            )
            published += 1
        log.info("portal.letter_published", letter_id=release.letter_id, published=published, skipped=skipped)

    def on_items_revoked(self, envelope: Envelope, conn: Connection) -> None:
        revocation = envelope.payload
        assert isinstance(revocation, LetterItemsRevoked)
        account = envelope.account_id
        repo = PortalRepository(conn)
        now = self.clock()
        targets: dict[str, PortalDocument | None] = dict.fromkeys(revocation.item_ids)
        if revocation.letter_deleted:
            for letter_document in repo.documents_of_letter(account, revocation.letter_id):
                targets[letter_document.item_id] = letter_document
        revoked = 0
        for item_id, known in targets.items():
            document = known or repo.document_by_item(account, item_id)
            repo.remember_revoked_item(account, item_id, revocation.letter_id, now)
            if document is None:
                continue
            if document.letter_id != revocation.letter_id:
                log.error("portal.revoke_letter_mismatch", item_id=item_id, letter_id=revocation.letter_id)
                continue
            if not repo.mark_revoked(account, document.document_id, now, revocation.reason):
                continue
            event = DocumentRevoked(
                document_id=document.document_id,
                letter_id=document.letter_id,
                item_id=document.item_id,
                contact_id=document.contact_id,
                reason=revocation.reason,
            )
            add_to_outbox(
                conn,
                caused_by(
                    envelope,
                    event,
                    producer=PRODUCER,
                    event_id=deterministic_event_id("portal-revoked", account, item_id),
                ),
            )
            revoked += 1
        log.info("portal.items_revoked", letter_id=revocation.letter_id, revoked=revoked)


# --- the portal API's use cases ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortalConfig:
    default_window: AccessWindow
    timezone: ZoneInfo
    link_secret: bytes
    link_ttl: timedelta
    session_ttl: timedelta
    invitation_ttl: timedelta
    min_password_length: int
    max_login_failures: int = 10
    login_lockout: timedelta = timedelta(minutes=15)
    password_reset_ttl: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class DocumentView:
    """One document as its recipient sees it in the inbox."""

    document: PortalDocument
    property_name: str | None
    unit_number: str | None
    viewed: bool


@dataclass(frozen=True)
class IssuedInvitation:
    code: str
    contact_id: str
    kind: PrincipalKind
    rights: CoUserRights | None
    unit_id: str | None
    expires_at: datetime


class InvitationOutcome(StrEnum):
    SENT = "sent"
    ALREADY_REGISTERED = "already_registered"
    NO_EMAIL = "no_email"


@dataclass(frozen=True)
class MailedInvitation:
    """What came of a staff member's request to e-mail a contact an invitation (the code only when ``SENT``)."""

    outcome: InvitationOutcome
    contact_id: str
    contact_name: str
    email: str | None = None
    code: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class IssuedSession:
    token: str
    principal: Principal
    expires_at: datetime


@dataclass(frozen=True)
class PasswordReset:
    """A one-time reset link's token for ``principal``, to be mailed to ``email``."""

    token: str
    principal: Principal
    email: str
    recipient_name: str
    expires_at: datetime


@dataclass(frozen=True)
class DownloadLink:
    path: str
    expires_at: datetime


@dataclass(frozen=True)
class OpenedDownload:
    document: PortalDocument
    size: int | None
    chunks: Iterator[bytes]


# Failed invitation redemptions are counted like failed logins, under this pseudo account, per source address.
REDEEM_SCOPE = "*redeem*"


def _new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_GROUPS * CODE_GROUP_LENGTH))


class PortalService:
    """What the portal API and the internal staff API do; every call is scoped by account and principal."""

    def __init__(self, engine: Engine, store: ObjectStore, config: PortalConfig, clock: Clock = utc_now) -> None:
        self.engine = engine
        self.store = store
        self.config = config
        self.clock = clock
        # A real hash of a random password: an unknown login costs the same as a wrong password.
        self._dummy_hash = hash_password(secrets.token_urlsafe(16), secrets.token_bytes(16))

    def _today(self, now: datetime) -> date:
        return now.astimezone(self.config.timezone).date()

    # invitations and sessions ----------------------------------------------------------------------------
    def _replace_contact_invitation(
        self, repo: PortalRepository, account_id: str, contact_id: str, issued_by: str, now: datetime
    ) -> tuple[str, datetime]:
        """A fresh contact code in place of the contact's open ones, in the caller's transaction: (code, expiry)."""
        code = _new_code()
        repo.withdraw_open_contact_invitations(account_id, contact_id, now)
        expires_at = now + self.config.invitation_ttl
        repo.insert_invitation(
            code_hash=hash_secret_token(code),
            account_id=account_id,
            contact_id=contact_id,
            kind=PrincipalKind.CONTACT,
            rights=None,
            unit_id=None,
            invited_by=issued_by,
            at=now,
            expires_at=expires_at,
        )
        return code, expires_at

    def issue_contact_invitation(self, account_id: str, contact_id: str, *, issued_by: str) -> IssuedInvitation:
        """A one-time key for a contact; issuing again re-activates (replaces any open key)."""
        now = self.clock()
        with self.engine.begin() as conn:
            contact = MasterDataReader(conn).contact(account_id, contact_id)
            if contact is None:
                raise NotFoundError(f"unknown contact {contact_id}")
            repo = PortalRepository(conn)
            code, expires_at = self._replace_contact_invitation(repo, account_id, contact_id, issued_by, now)
            repo.record_staff_action(account_id, issued_by, "invitation_issued", {"contact_id": contact_id}, now)
        log.info("portal.invitation_issued", contact_id=contact_id)
        return IssuedInvitation(format_code(code), contact_id, PrincipalKind.CONTACT, None, None, expires_at)

    def prepare_mailed_invitation(self, account_id: str, contact_id: str, *, issued_by: str) -> MailedInvitation:
        """A staff member asks to e-mail a contact an invitation (gateway button): audited in any outcome.

        Never touches an existing login: a contact who has one gets no code (``already_registered``), open codes
        stay as they are. Without an e-mail address in the master data nothing is issued (``no_email``). Otherwise
        a fresh code replaces open ones; the caller mails it and withdraws it with :meth:`withdraw_invitation` if
        the mail cannot be sent.
        """
        now = self.clock()
        with self.engine.begin() as conn:
            contact = MasterDataReader(conn).contact(account_id, contact_id)
            if contact is None:
                raise NotFoundError(f"unknown contact {contact_id}", "Diesen Kontakt gibt es nicht.")
            repo = PortalRepository(conn)
            existing = repo.contact_principal_id(account_id, contact_id)
            detail: dict[str, Any] = {"contact_id": contact_id}
            if existing is not None and repo.has_credentials(existing):
                repo.record_staff_action(
                    account_id, issued_by, "invitation_refused", {**detail, "reason": "already_registered"}, now
                )
                log.info("portal.invitation_refused_registered", contact_id=contact_id, actor=issued_by)
                return MailedInvitation(InvitationOutcome.ALREADY_REGISTERED, contact_id, contact.display_name)
            if not contact.email:
                repo.record_staff_action(
                    account_id, issued_by, "invitation_refused", {**detail, "reason": "no_email"}, now
                )
                log.info("portal.invitation_no_email", contact_id=contact_id, actor=issued_by)
                return MailedInvitation(InvitationOutcome.NO_EMAIL, contact_id, contact.display_name)
            code, expires_at = self._replace_contact_invitation(repo, account_id, contact_id, issued_by, now)
            repo.record_staff_action(
                account_id, issued_by, "invitation_mailed", {**detail, "expires_at": expires_at.isoformat()}, now
            )
        log.info("portal.invitation_issued_for_mail", contact_id=contact_id, actor=issued_by)
        return MailedInvitation(
            InvitationOutcome.SENT, contact_id, contact.display_name, contact.email, format_code(code), expires_at
        )

    def withdraw_invitation(self, account_id: str, code: str, *, actor: str) -> None:
        """The invitation mail could not be sent: the code never works (audited)."""
        normalized = normalize_code(code)
        if normalized is None:
            return
        now = self.clock()
        with self.engine.begin() as conn:
            repo = PortalRepository(conn)
            repo.withdraw_invitation(hash_secret_token(normalized), now)
            repo.record_staff_action(account_id, actor, "invitation_withdrawn", {"reason": "mail_not_sent"}, now)

    def invite_co_user(self, principal: Principal, unit_id: str, rights: CoUserRights) -> IssuedInvitation:
        if not may_invite_co_user(principal):
            raise ForbiddenError("only the contact itself can invite co-users")
        now = self.clock()
        with self.engine.begin() as conn:
            repo = PortalRepository(conn)
            contracts = repo.contract_periods(principal.account_id, principal.contact_id)
            window = repo.access_window(principal.account_id, self.config.default_window)
            if not unit_accessible(principal.contact_id, unit_id, contracts, window, self._today(now)):
                raise NotFoundError("no current contract for this unit")
            code = _new_code()
            expires_at = now + self.config.invitation_ttl
            repo.insert_invitation(
                code_hash=hash_secret_token(code),
                account_id=principal.account_id,
                contact_id=principal.contact_id,
                kind=PrincipalKind.CO_USER,
                rights=rights,
                unit_id=unit_id,
                invited_by=principal.principal_id,
                at=now,
                expires_at=expires_at,
            )
        log.info("portal.co_user_invited", unit_id=unit_id, rights=rights.value)
        return IssuedInvitation(
            format_code(code), principal.contact_id, PrincipalKind.CO_USER, rights, unit_id, expires_at
        )

    def redeem_invitation(self, code: str, login: str, password: str, *, source: str = "unknown") -> IssuedSession:
        """Register portal credentials with a one-time code and open a session.

        Failed redemptions count per source address (like failed logins): guessing codes runs into the lockout.
        """
        with self.engine.begin() as conn:
            repo = PortalRepository(conn)
            repo.lock_login(REDEEM_SCOPE, source)
            since = self.clock() - self.config.login_lockout
            if repo.login_failures_since(REDEEM_SCOPE, source, since) >= self.config.max_login_failures:
                log.warning("portal.redeem_locked", source=source)
                raise TooManyAttemptsError("too many failed attempts, try again later")
            attempt = repo.reserve_login_attempt(REDEEM_SCOPE, source, self.clock())
        session = self._redeem(code, login, password)
        with self.engine.begin() as conn:
            PortalRepository(conn).forget_login_attempt(attempt)
        return session

    def _redeem(self, code: str, login: str, password: str) -> IssuedSession:
        normalized = normalize_code(code)
        if normalized is None:
            raise AuthenticationError("invalid invitation code", _CODE_INVALID)
        login = login.strip().lower()
        self._check_credentials_shape(login, password)
        password_hash = hash_password(password, secrets.token_bytes(16))
        now = self.clock()
        code_hash = hash_secret_token(normalized)
        with self.engine.begin() as conn:
            repo = PortalRepository(conn)
            invitation = repo.invitation(code_hash)
            if invitation is None or invitation["withdrawn_at"] is not None or invitation["redeemed_at"] is not None:
                raise AuthenticationError("invalid invitation code", _CODE_INVALID)
            if invitation["expires_at"] <= now:
                raise AuthenticationError(
                    "invitation code expired; ask your property manager for a new one", _CODE_EXPIRED
                )
            account_id = invitation["account_id"]
            kind = PrincipalKind(invitation["kind"])
            existing_id = (
                repo.contact_principal_id(account_id, invitation["contact_id"])
                if kind is PrincipalKind.CONTACT
                else None
            )
            if existing_id is not None and repo.has_credentials(existing_id):
                # A code never takes over an existing login (whoever holds a fresh code would lock the recipient
                # out); a recipient who lost the password uses the password reset instead.
                log.warning("portal.invitation_for_registered_contact", contact_id=invitation["contact_id"])
                raise ConflictError(
                    "this contact already has a portal login",
                    "Sie haben schon einen Zugang zum Kundenportal. Bitte melden Sie sich an; wenn Sie das Passwort "
                    "vergessen haben, nutzen Sie „Passwort vergessen?“.",
                )
            if repo.login_taken(account_id, login, except_principal=existing_id):
                raise ConflictError(
                    "this login is already in use",
                    "Dieser Benutzername ist schon vergeben. Bitte wählen Sie einen anderen.",
                )
            if not repo.mark_invitation_redeemed(code_hash, now):
                raise AuthenticationError("invalid invitation code", _CODE_INVALID)
            principal = Principal(
                principal_id=existing_id or str(uuid.uuid4()),
                account_id=account_id,
                contact_id=invitation["contact_id"],
                kind=kind,
                rights=CoUserRights(invitation["rights"]) if invitation["rights"] else None,
                unit_id=invitation["unit_id"],
            )
            if existing_id is not None:
                repo.update_credentials(existing_id, login, password_hash)
            else:
                repo.insert_principal(principal, login, password_hash, now)
            session = self._open_session(repo, principal, now)
        log.info("portal.invitation_redeemed", principal_id=principal.principal_id, kind=kind.value)
        return session

    def _check_credentials_shape(self, login: str, password: str) -> None:
        if not login or len(login) > 320:
            raise InvalidInputError(
                "login must be 1-320 characters", "Bitte geben Sie einen Benutzernamen (z. B. Ihre E-Mail-Adresse) an."
            )
        if len(password) < self.config.min_password_length:
            raise InvalidInputError(
                f"password must have at least {self.config.min_password_length} characters",
                f"Das Passwort muss mindestens {self.config.min_password_length} Zeichen lang sein.",
            )

    def _open_session(self, repo: PortalRepository, principal: Principal, now: datetime) -> IssuedSession:
        token = secrets.token_urlsafe(32)
        expires_at = now + self.config.session_ttl
        repo.insert_session(hash_secret_token(token), principal, now, expires_at)
        return IssuedSession(token, principal, expires_at)

    def login(self, account_id: str, login: str, password: str) -> IssuedSession:
        """Password login; after too many failures for one login, refuse for a while (no online guessing)."""
        now = self.clock()
        login = login.strip().lower()[:320]
        since = now - self.config.login_lockout
        # Count and reserve in one serialised transaction: parallel guesses each take a slot, none slips past.
        with self.engine.begin() as conn:
            repo = PortalRepository(conn)
            repo.lock_login(account_id, login)
            failures = repo.login_failures_since(account_id, login, since)
            if failures >= self.config.max_login_failures:
                log.warning("portal.login_locked", failures=failures)
                raise TooManyAttemptsError("too many failed logins, try again later")
            attempt = repo.reserve_login_attempt(account_id, login, now)
            found = repo.principal_by_login(account_id, login)
        # The same work whether or not the login exists: the answer time tells nothing about who has a login.
        stored_hash = found[1] if found is not None else self._dummy_hash
        if not verify_password(password, stored_hash) or found is None:
            raise AuthenticationError("login or password wrong", "Benutzername oder Passwort ist falsch.")
        with self.engine.begin() as conn:
            repo = PortalRepository(conn)
            repo.forget_login_attempt(attempt)
            return self._open_session(repo, found[0], now)

    def request_password_reset(self, account_id: str, login: str) -> PasswordReset | None:
        """A reset token for the login's principal, or None (unknown login, no address to send it to).

        The caller answers the same in both cases, so the form does not reveal which logins exist.
        """
        login = login.strip().lower()
        now = self.clock()
        with self.engine.begin() as conn:
            repo = PortalRepository(conn)
            found = repo.principal_by_login(account_id, login)
            if found is None:
                log.info("portal.password_reset_unknown_login")
                return None
            principal = found[0]
            if repo.password_resets_since(principal.principal_id, now - RESET_MAIL_INTERVAL):
                # One mail per interval: the form cannot be used to flood someone's mailbox.
                log.info("portal.password_reset_throttled", principal_id=principal.principal_id)
                return None
            contact = MasterDataReader(conn).contact(account_id, principal.contact_id)
            # A co-user's login is their own address; a contact's mail goes to the address in master data.
            if "@" in login:
                email = login
            elif principal.kind is PrincipalKind.CONTACT and contact is not None and contact.email:
                email = contact.email
            else:
                log.warning("portal.password_reset_no_address", principal_id=principal.principal_id)
                return None
            token = secrets.token_urlsafe(32)
            expires_at = now + self.config.password_reset_ttl
            repo.insert_password_reset(hash_secret_token(token), principal, now, expires_at)
        name = contact.display_name if contact is not None and principal.kind is PrincipalKind.CONTACT else ""
        log.info("portal.password_reset_issued", principal_id=principal.principal_id)
        return PasswordReset(token, principal, email, name, expires_at)

    def withdraw_password_reset(self, token: str) -> None:
        """The mail with this link could not be sent: the link never works and a new request is not throttled."""
        with self.engine.begin() as conn:
            PortalRepository(conn).forget_password_reset(hash_secret_token(token))

    def check_password_reset(self, account_id: str, token: str) -> None:
        """Raise the German explanation if the reset link cannot be used (unknown, used, expired)."""
        with self.engine.connect() as conn:
            found = PortalRepository(conn).password_reset(hash_secret_token(token))
        self._usable_reset(found, account_id)

    def _usable_reset(self, found: dict[str, Any] | None, account_id: str) -> dict[str, Any]:
        if found is None or found["account_id"] != account_id or found["used_at"] is not None:
            raise AuthenticationError("password reset link invalid or used", _RESET_INVALID)
        if found["expires_at"] <= self.clock():
            raise AuthenticationError("password reset link expired", _RESET_EXPIRED)
        return found

    def reset_password(self, account_id: str, token: str, password: str) -> IssuedSession:
        """Set a new password through a reset link (once), end every other session, open a new one."""
        if len(password) < self.config.min_password_length:
            raise InvalidInputError(
                f"password must have at least {self.config.min_password_length} characters",
                f"Das Passwort muss mindestens {self.config.min_password_length} Zeichen lang sein.",
            )
        password_hash = hash_password(password, secrets.token_bytes(16))
        now = self.clock()
        token_hash = hash_secret_token(token)
        with self.engine.begin() as conn:
            repo = PortalRepository(conn)
            found = self._usable_reset(repo.password_reset(token_hash), account_id)
            principal = repo.principal(found["principal_id"])
            if principal is None or not repo.mark_password_reset_used(token_hash, now):
                raise AuthenticationError("password reset link invalid or used", _RESET_INVALID)
            repo.set_password_hash(principal.principal_id, password_hash)
            repo.end_sessions_of(principal.principal_id, now)
            session = self._open_session(repo, principal, now)
        log.info("portal.password_reset_done", principal_id=principal.principal_id)
        return session

    def authenticate(self, token: str) -> Principal:
        with self.engine.connect() as conn:
            principal = PortalRepository(conn).session_principal(hash_secret_token(token), self.clock())
        if principal is None:
            raise AuthenticationError(
                "session invalid or expired", "Ihre Sitzung ist abgelaufen. Bitte melden Sie sich erneut an."
            )
        return principal

    def logout(self, token: str) -> None:
        with self.engine.begin() as conn:
            PortalRepository(conn).end_session(hash_secret_token(token), self.clock())

    def co_users(self, principal: Principal) -> list[dict[str, Any]]:
        if not may_invite_co_user(principal):
            raise ForbiddenError("only the contact itself manages co-users")
        with self.engine.connect() as conn:
            return PortalRepository(conn).co_users_of(principal.account_id, principal.contact_id)

    def remove_co_user(self, principal: Principal, co_user_id: str) -> None:
        if not may_invite_co_user(principal):
            raise ForbiddenError("only the contact itself manages co-users")
        with self.engine.begin() as conn:
            repo = PortalRepository(conn)
            co_user = repo.principal(co_user_id)
            if (
                co_user is None
                or co_user.account_id != principal.account_id
                or co_user.contact_id != principal.contact_id
                or co_user.kind is not PrincipalKind.CO_USER
            ):
                raise NotFoundError("no such co-user")
            repo.disable_principal(principal.account_id, co_user_id, self.clock())

    # documents -------------------------------------------------------------------------------------------------
    def list_documents(
        self, principal: Principal, folder: tuple[str, ...] = (), *, recursive: bool = True
    ) -> list[DocumentView]:
        now = self.clock()
        today = self._today(now)
        with self.engine.connect() as conn:
            repo = PortalRepository(conn)
            md = MasterDataReader(conn)
            contracts = repo.contract_periods(principal.account_id, principal.contact_id)
            window = repo.access_window(principal.account_id, self.config.default_window)
            visible = [
                d
                for d in repo.documents_of_contact(principal.account_id, principal.contact_id)
                if access_refusal(principal, d, contracts, window, today) is None
                and in_folder(d.folder, folder, recursive=recursive)
            ]
            result = []
            property_names: dict[str, str | None] = {}
            unit_numbers: dict[str, str | None] = {}
            for d in visible:
                if d.property_id and d.property_id not in property_names:
                    found_property = md.property(principal.account_id, d.property_id)
                    property_names[d.property_id] = found_property.name if found_property else None
                if d.unit_id and d.unit_id not in unit_numbers:
                    found_unit = md.unit(principal.account_id, d.unit_id)
                    unit_numbers[d.unit_id] = found_unit.number if found_unit else None
                result.append(
                    DocumentView(
                        document=d,
                        property_name=property_names.get(d.property_id) if d.property_id else None,
                        unit_number=unit_numbers.get(d.unit_id) if d.unit_id else None,
                        viewed=d.first_viewed_at is not None,
                    )
                )
            return result

    def folders(self, principal: Principal) -> FolderNode:
        return folder_tree([v.document.folder for v in self.list_documents(principal)])

    def document(self, principal: Principal, document_id: str) -> DocumentView:
        for view in self.list_documents(principal):
            if view.document.document_id == document_id:
                return view
        self._readable(principal, document_id)  # raises the precise refusal
        raise NotFoundError("document not found")

    def _readable(self, principal: Principal, document_id: str) -> PortalDocument:
        """The document if ``principal`` may read it now; the refusal as an error otherwise."""
        now = self.clock()
        with self.engine.connect() as conn:
            repo = PortalRepository(conn)
            document = repo.document(principal.account_id, document_id)
            if document is None:
                raise NotFoundError("document not found")
            contracts = repo.contract_periods(principal.account_id, document.contact_id)
            window = repo.access_window(principal.account_id, self.config.default_window)
        refusal = access_refusal(principal, document, contracts, window, self._today(now))
        if refusal is Refusal.NOT_FOUND:
            raise NotFoundError("document not found")
        if refusal is Refusal.REVOKED:
            raise GoneError("document was withdrawn by the property management")
        if refusal is Refusal.OUTSIDE_WINDOW:
            raise ForbiddenError(
                "access to this document has ended",
                "Ihr Zugriff auf dieses Dokument ist beendet (Ihr Vertrag für diese Einheit ist abgelaufen).",
            )
        return document

    def download_link(self, principal: Principal, document_id: str) -> DownloadLink:
        self._readable(principal, document_id)
        expires_at = self.clock() + self.config.link_ttl
        grant = DownloadGrant(principal.account_id, document_id, principal.principal_id, int(expires_at.timestamp()))
        signature = sign_grant(self.config.link_secret, grant)
        path = (
            f"/portal/downloads/{document_id}?a={grant.account_id}&p={grant.principal_id}"
            f"&e={grant.expires}&s={signature}"
        )
        return DownloadLink(path, datetime.fromtimestamp(grant.expires, UTC))

    def open_signed_download(self, grant: DownloadGrant, signature: str) -> OpenedDownload:
        """Check the link, then re-check access NOW (revocation, window, disabled co-user), then stream."""
        problem = check_grant(self.config.link_secret, grant, signature, self.clock().timestamp())
        if problem is LinkProblem.TAMPERED:
            raise ForbiddenError("download link invalid", _LINK_INVALID)
        if problem is LinkProblem.EXPIRED:
            raise ForbiddenError("download link expired", _LINK_EXPIRED)
        with self.engine.connect() as conn:
            principal = PortalRepository(conn).principal(grant.principal_id)
        if principal is None or principal.account_id != grant.account_id:
            raise ForbiddenError("download link invalid", _LINK_INVALID)
        return self.open_download(principal, grant.document_id)

    def open_download(self, principal: Principal, document_id: str) -> OpenedDownload:
        document = self._readable(principal, document_id)
        try:
            size: int | None = self.store.stat(document.storage_key).size
            chunks = self.store.stream(document.storage_key)
            first = next(chunks, b"")  # opens the object now, so a failure is an answer, not a broken stream
        except ObjectNotFoundError as exc:
            log.exception("portal.document_content_missing", document_id=document_id, key=document.storage_key)
            raise StorageFailureError("document content unavailable") from exc
        except ConnectionError as exc:
            raise StorageFailureError("document storage unavailable, try again") from exc
        self._record_view(principal, document)

        def all_chunks() -> Iterator[bytes]:
            if first:
                yield first
            yield from chunks

        return OpenedDownload(document, size, all_chunks())

    def _record_view(self, principal: Principal, document: PortalDocument) -> None:
        now = self.clock()
        with self.engine.begin() as conn:
            repo = PortalRepository(conn)
            first = repo.record_view(principal, document.document_id, now)
            if first:
                correlation = repo.correlation_of(principal.account_id, document.document_id)
                add_to_outbox(
                    conn,
                    make_envelope(
                        DocumentViewed(
                            document_id=document.document_id,
                            letter_id=document.letter_id,
                            item_id=document.item_id,
                            contact_id=document.contact_id,
                            first_viewed_at=now,
                        ),
                        account_id=principal.account_id,
                        producer=PRODUCER,
                        correlation_id=uuid.UUID(correlation) if correlation else None,
                        event_id=deterministic_event_id("portal-viewed", principal.account_id, document.document_id),
                    ),
                )
        log.info("portal.document_downloaded", document_id=document.document_id, first=first)

    # staff-facing -----------------------------------------------------------------------------------------------
    def deliveries(self, account_id: str, letter_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            repo = PortalRepository(conn)
            documents = repo.documents_of_letter(account_id, letter_id)
            views = repo.views_of_letter(account_id, letter_id)
            access = repo.portal_access(account_id, {d.contact_id for d in documents}, self.clock())
        return [
            {
                "item_id": d.item_id,
                "document_id": d.document_id,
                "contact_id": d.contact_id,
                "property_id": d.property_id,
                "unit_id": d.unit_id,
                "published_at": d.published_at,
                "first_viewed_at": d.first_viewed_at,
                "revoked_at": d.revoked_at,
                "views": views.get(d.document_id, []),
                # staff see whether the recipient can log in, or has an open invitation ("Zum Portal einladen")
                "portal_login": access[d.contact_id]["login"],
                "invited_at": access[d.contact_id]["invited_at"],
                "invitation_expires_at": access[d.contact_id]["expires_at"],
            }
            for d in documents
        ]

    def set_access_window(self, account_id: str, window: AccessWindow, *, actor: str) -> None:
        """Change what recipients may see (an admin's decision): applied and audited in one transaction."""
        with self.engine.begin() as conn:
            repo = PortalRepository(conn)
            before = repo.access_window(account_id, self.config.default_window)
            repo.set_access_window(account_id, window)
            detail = {
                "before": {"days_before_start": before.days_before_start, "days_after_end": before.days_after_end},
                "after": {"days_before_start": window.days_before_start, "days_after_end": window.days_after_end},
            }
            repo.record_staff_action(account_id, actor, "access_window_changed", detail, self.clock())
        log.info("portal.access_window_changed", actor=actor, **detail)

    def staff_actions(self, account_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return PortalRepository(conn).staff_actions(account_id)

    def access_window(self, account_id: str) -> AccessWindow:
        with self.engine.connect() as conn:
            return PortalRepository(conn).access_window(account_id, self.config.default_window)
