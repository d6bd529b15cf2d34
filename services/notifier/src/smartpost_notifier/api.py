"""HTTP face of the notifier: probes and two internal endpoints for operations and tests."""

from __future__ import annotations

import asyncio
from datetime import date  # noqa: TC003 - FastAPI reads the annotation at runtime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from smartpost_notifier.domain import STATUS_LABELS, MailStatus, latest_due_digest_day
from smartpost_shared.identity import VerifiedCaller, verified_account
from smartpost_shared.logging import get_logger
from smartpost_shared.roles import ADMIN, STAFF, requires

if TYPE_CHECKING:
    from smartpost_notifier.application import Notifier

router = APIRouter()
log = get_logger(__name__)

# Sending a held-back mail tells recipients about released documents: a decision of the gateway's role ``release``,
# checked again here from the verified claims (a token of the account alone does not send mail).
RELEASE_ROLE = "release"

# The account comes from the caller's signed claims (smartpost_shared.identity), never from a plain header.
AccountHeader = Annotated[str, Depends(verified_account)]


def _notifier(request: Request) -> Notifier:
    notifier: Notifier | None = getattr(request.app.state, "notifier", None)
    if notifier is None:
        raise HTTPException(status_code=503, detail="notifier is starting")
    return notifier


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    startup = getattr(request.app.state, "startup", None)
    checks: dict[str, str] = {"startup": startup.check()} if startup is not None else {}
    engine = request.app.state.engine

    def ping_db() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    try:
        await asyncio.to_thread(ping_db)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"error: {exc}"
    broker = getattr(request.app.state, "broker", None)
    try:
        checks["kafka"] = "ok" if broker is not None and await broker.ping(timeout=3) else "unreachable"
    except Exception as exc:  # noqa: BLE001
        checks["kafka"] = f"error: {exc}"
    relay = getattr(request.app.state, "relay", None)
    if relay is not None:
        checks["outbox"] = relay.health.check()
    ready = all(v == "ok" for v in checks.values())
    # SMTP is deliberately not a readiness condition: mails wait in the outbox while the relay is down.
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


# Running a digest now sends mails to recipients: an operations command (``admin``); the stats are for any staff.
@router.post("/internal/digests/run", dependencies=[requires(ADMIN)])
async def run_digest(
    request: Request,
    account_id: AccountHeader,
    day: Annotated[date | None, Query(description="publication day (local); default: the latest due day")] = None,
) -> dict[str, Any]:
    """Build the digest of ``day`` for the account now (idempotent: at most one digest per recipient and day)."""
    notifier = _notifier(request)
    if day is None:
        profile = notifier.profile(account_id)
        day = latest_due_digest_day(notifier.clock(), profile.timezone, profile.digest_time)
    created = await asyncio.to_thread(notifier.run_digest, account_id, day)
    return {"account_id": account_id, "day": day.isoformat(), "mails_created": created}


@router.get("/internal/mails/stats", dependencies=[STAFF])
async def mail_stats(request: Request, account_id: AccountHeader) -> dict[str, Any]:
    """Mail outbox counts of the account by kind and status (pending, sent, failed, skipped ...)."""
    notifier = _notifier(request)
    counts = await asyncio.to_thread(notifier.mail_counts, account_id)
    return {"account_id": account_id, "mails": counts}


@router.get("/internal/mails/stale", dependencies=[STAFF])
async def stale_mails(request: Request, account_id: AccountHeader) -> dict[str, Any]:
    """Mails held back by the replay guard (publication event older than the maximum age), for staff to check."""
    notifier = _notifier(request)
    rows = await asyncio.to_thread(notifier.stale_mails, account_id)
    titles = await asyncio.to_thread(notifier.document_titles, account_id, [m.mail_id for m in rows])
    return {
        "account_id": account_id,
        "mails": [
            {
                "mail_id": m.mail_id,
                "kind": m.kind.value,
                "contact_id": m.contact_id,
                "letter_id": m.letter_id,
                "digest_day": m.digest_day.isoformat() if m.digest_day else None,
                "status": m.status.value,
                "status_label": STATUS_LABELS[m.status],
                "reason": m.last_error,
                "document_titles": titles.get(m.mail_id, []),
                "recorded_at": m.created_at.isoformat(),
            }
            for m in rows
        ],
    }


@router.post("/internal/mails/{mail_id}/release")
async def release_stale_mail(request: Request, mail_id: str, caller: VerifiedCaller) -> dict[str, Any]:
    """Staff decided a held-back mail is still wanted: queue it for sending (only from status ``stale``).

    Only a mail of the caller's verified account; another account's mail is answered like one not held (409).
    """
    if RELEASE_ROLE not in caller.roles:
        log.warning("mail.release_refused", mail_id=mail_id, actor=caller.actor, held=sorted(caller.roles))
        raise HTTPException(status_code=403, detail="Dafür fehlt Ihnen die Berechtigung („Freigeben“).")
    notifier = _notifier(request)
    if not await asyncio.to_thread(notifier.release_stale, caller.account_id, mail_id):
        raise HTTPException(status_code=409, detail="Diese E-Mail wartet nicht auf Prüfung.")
    return {"mail_id": mail_id, "status": MailStatus.PENDING.value, "status_label": STATUS_LABELS[MailStatus.PENDING]}
