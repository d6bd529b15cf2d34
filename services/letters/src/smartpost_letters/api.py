"""HTTP face of the letters service (called by the gateway and other internal systems).

Caller identity comes from signed caller claims (``X-SmartPost-Caller``, see :mod:`smartpost_shared.identity`):
account, actor and roles are verified on every request. Every route is scoped to that account: another account's letter
answers 404. Roles come from the verified claims too (the gateway's role model, enforced here again): every route needs
a staff role, commands that prepare a letter need ``prepare``, release / print order / revocation (and deleting a
released letter) need ``release``, changing or removing document types needs ``admin``; otherwise 403.
Commands accept ``X-SmartPost-Command-Id`` (a retried command is applied once) and ``If-Match: <version>``
(a stale write answers 409 with the current version). Letter responses carry ``ETag: "<version>"``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Header, HTTPException, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from smartpost_letters.adapters.pdf_check import UploadProblem, check_upload
from smartpost_letters.application import CommandContext, LetterNotFoundError, LetterService, VersionConflictError
from smartpost_letters.domain.errors import DocumentError, DomainError
from smartpost_letters.domain.models import BulkAction, DocumentRole, SafeProposalPolicy
from smartpost_letters.schemas import (
    PART_FILTERS,
    AcceptSafeIn,
    AuditEntryOut,
    AuditLogOut,
    ChangeDocumentIn,
    CreateLetterIn,
    DeferPropertyIn,
    DocumentTypeIn,
    DocumentTypeTreeOut,
    ErrorOut,
    LetterListOut,
    LetterOut,
    LetterSummaryOut,
    PartsPageOut,
    PrintOrderIn,
    ReassignIn,
    ReleaseIn,
    ReorderIn,
    RevokeIn,
)
from smartpost_shared.contracts.common import SplitRule, SplitStrategy
from smartpost_shared.http import content_disposition
from smartpost_shared.identity import VerifiedCaller  # noqa: TC001 - FastAPI reads it at runtime
from smartpost_shared.logging import get_logger
from smartpost_shared.roles import ADMIN, PREPARE, RELEASE, STAFF_ROLES, refuse_without, requires
from smartpost_shared.storage import ObjectNotFoundError, StorageUnavailableError, letter_prefix, source_key

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI

    from smartpost_letters.adapters.read_model import LetterSummaryProjector
    from smartpost_letters.domain.letter import SerialLetter
    from smartpost_letters.settings import Settings
    from smartpost_shared.storage import ObjectStore

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "missing caller headers or wrong bearer token"},
    403: {"model": ErrorOut, "description": "the verified caller lacks the role this route needs"},
    404: {"model": ErrorOut, "description": "no such letter in the caller's account"},
    409: {"model": ErrorOut, "description": "version conflict (If-Match); body carries current_version"},
    422: {"model": ErrorOut, "description": "domain rule violated or invalid input"},
}


class Caller:
    def __init__(self, account_id: str, actor: str, command_id: str, expected_version: int | None) -> None:
        self.account_id = account_id
        self.actor = actor
        self.command_id = command_id
        self.expected_version = expected_version

    @property
    def ctx(self) -> CommandContext:
        return CommandContext(self.account_id, self.actor, self.command_id, self.expected_version)


def caller(
    claims: VerifiedCaller,
    x_smartpost_command_id: Annotated[str | None, Header(max_length=200)] = None,
    if_match: Annotated[str | None, Header()] = None,
) -> Caller:
    # Account and actor come only from the caller's signed claims: four-eyes and the audit log see the verified
    # person, not a header the uploader could set to someone else's name.
    expected_version: int | None = None
    if if_match:
        raw = if_match.strip().removeprefix("W/").strip('"')
        try:
            expected_version = int(raw)
        except ValueError:
            raise HTTPException(422, 'If-Match must carry the letter version, e.g. "7"') from None
    return Caller(claims.account_id, claims.actor, x_smartpost_command_id or "", expected_version)


CallerDep = Annotated[Caller, Depends(caller)]

log = get_logger(__name__)

# The gateway's role model, enforced again here from the verified claims (smartpost_shared.roles).
STAFF = requires(*sorted(STAFF_ROLES))
PREPARES = requires(PREPARE)
RELEASES = requires(RELEASE)
ADMINISTERS = requires(ADMIN)


def _service(request: Request) -> LetterService:
    service: LetterService = request.app.state.service
    return service


def _letter_uuid(letter_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(letter_id)
    except ValueError:
        raise LetterNotFoundError(letter_id) from None


async def _letter_response(request: Request, letter: SerialLetter, status_code: int = 200) -> JSONResponse:
    """The letter as JSON, with ``?parts=none`` and ``?items=none`` without its per-letter lists.

    ``?parts=none`` leaves out the parts and their warnings (page them with ``/parts``), ``?items=none`` the released
    items (their number stays in ``counts``): a command's answer then stays small however many letters it concerns
    (the items of a 4,000-letter release are ~2 MB of JSON).

    Built under the letter's lock, in a worker thread: a command in another thread never shows half-applied.
    """
    with_parts = request.query_params.get("parts", "all") != "none"
    with_items = request.query_params.get("items", "all") != "none"
    service = _service(request)

    def render() -> tuple[dict[str, Any], int]:
        with service.app.letters.lock(letter.id):
            body = LetterOut.of(letter, with_parts=with_parts, with_items=with_items).model_dump(mode="json")
            return body, letter.version

    body, version = await _run(render)
    return JSONResponse(body, status_code=status_code, headers={"ETag": f'"{version}"'})


async def _run(fn: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(fn)


async def _command(
    request: Request, letter_id: str, command: Callable[[LetterService, uuid.UUID], SerialLetter]
) -> JSONResponse:
    """Run ``command`` on the letter in a worker thread and answer with the changed letter."""
    service = _service(request)
    letter = await _run(lambda: command(service, _letter_uuid(letter_id)))
    return await _letter_response(request, letter)


def install_error_handlers(app: FastAPI) -> None:
    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"letter {exc} not found", "code": "not_found"}, status_code=404)

    async def conflict(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, VersionConflictError)
        return JSONResponse(
            {"detail": str(exc), "code": "version_conflict", "current_version": exc.current},
            status_code=409,
            headers={"ETag": f'"{exc.current}"'},
        )

    async def domain(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        body: dict[str, Any] = {"detail": str(exc), "code": exc.code}
        if isinstance(exc, UploadRejectedError):
            body["problems"] = [p.as_dict() for p in exc.problems]
        return JSONResponse(body, status_code=422)

    async def storage(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"object storage unavailable: {exc}", "code": "storage_unavailable"}, 503)

    app.add_exception_handler(LetterNotFoundError, not_found)
    app.add_exception_handler(VersionConflictError, conflict)
    app.add_exception_handler(DomainError, domain)
    app.add_exception_handler(StorageUnavailableError, storage)


# Default deny: every route needs a staff role; commands add the role they need (``dependencies=[...]``).
router = APIRouter(prefix="/v1", responses=ERRORS, dependencies=[STAFF])


# ------------------------------------------------------------------------------------------------- letters


@router.get("/letters", response_model=LetterListOut, tags=["letters"])
async def list_letters(
    request: Request,
    who: CallerDep,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> LetterListOut:
    """Letters of the caller's account, most recently changed first."""
    projector: LetterSummaryProjector = request.app.state.projector
    await _run(projector.catch_up)
    rows = await _run(lambda: projector.list_letters(who.account_id, status=status, limit=limit, offset=offset))
    return LetterListOut(
        letters=[LetterSummaryOut.model_validate({k: v for k, v in r.items() if k != "account_id"}) for r in rows]
    )


@router.post("/letters", status_code=201, response_model=LetterOut, tags=["letters"], dependencies=[PREPARES])
async def create_letter(request: Request, who: CallerDep, body: CreateLetterIn) -> JSONResponse:
    """Create a serial letter (Titel, Dokumententyp, Empfängergruppen, Liegenschaft or cross-property)."""
    service = _service(request)
    letter = await _run(
        lambda: service.create_letter(
            who.ctx,
            title=body.title,
            document_type_id=body.document_type_id,
            recipient_groups=body.recipient_groups,
            scope=body.scope,
            property_id=body.property_id,
            include_archived=body.include_archived,
            letter_date=body.letter_date,
            period_start=body.period_start,
            period_end=body.period_end,
        )
    )
    return await _letter_response(request, letter, 201)


@router.get("/letters/{letter_id}", response_model=LetterOut, tags=["letters"])
async def get_letter(request: Request, who: CallerDep, letter_id: str) -> JSONResponse:
    """The letter with documents, parts, assignments, warnings, released items and print status."""
    service = _service(request)
    letter = await _run(lambda: service.get_letter(who.account_id, _letter_uuid(letter_id)))
    response = await _letter_response(request, letter)
    problem = request.app.state.relay.health.problem_for(account_id=who.account_id, letter_id=str(letter.id))
    if problem is not None:
        body = json.loads(bytes(response.body))
        body["publish_problem"] = problem
        response = JSONResponse(body, headers={"ETag": f'"{letter.version}"'})
    return response


@router.delete("/letters/{letter_id}", response_model=LetterOut, tags=["letters"])
async def delete_letter(
    request: Request,
    who: CallerDep,
    claims: VerifiedCaller,
    letter_id: str,
    reason: Annotated[str, Query(max_length=500)] = "",
) -> JSONResponse:
    """Delete the serial letter ("Serienbrief löschen"); released letters are withdrawn from the portal.

    A draft is the preparer's to delete; deleting a released letter withdraws documents from recipients, which is a
    release decision (as in the gateway).
    """
    service = _service(request)
    current = await _run(lambda: service.get_letter(who.account_id, _letter_uuid(letter_id)))
    refuse_without(request, claims, RELEASE if current.items else PREPARE)
    letter = await _run(lambda: service.delete(who.ctx, _letter_uuid(letter_id), reason=reason))
    return await _letter_response(request, letter)


WAITING_STATUSES = ("splitting", "assigning", "print_ordered")


@router.get("/stuck-letters", tags=["letters"])
async def stuck_letters(
    request: Request,
    who: CallerDep,
    older_than_seconds: Annotated[float | None, Query(ge=0)] = None,
) -> dict[str, Any]:
    """Letters that wait for another service longer than ``older_than_seconds`` (default: the setting)."""
    settings: Settings = request.app.state.settings
    service = _service(request)
    projector: LetterSummaryProjector = request.app.state.projector
    await _run(projector.catch_up)
    ids = [
        uuid.UUID(row["letter_id"])
        for status in WAITING_STATUSES
        for row in await _run(lambda s=status: projector.list_letters(who.account_id, status=s, limit=500))  # type: ignore[misc]
    ]
    threshold = settings.stuck_after_seconds if older_than_seconds is None else older_than_seconds
    found = await _run(lambda: service.stuck_letters(who.account_id, ids, older_than=threshold))
    return {
        "older_than_seconds": threshold,
        "letters": [
            {
                "letter_id": s.letter_id,
                "title": s.title,
                "status": s.status,
                "waiting_for": s.waiting_for,
                "since": s.since.isoformat(),
                "seconds": round(s.seconds),
            }
            for s in found
        ],
    }


@router.post("/letters/{letter_id}/resend", tags=["letters"], dependencies=[PREPARES])
async def resend(request: Request, who: CallerDep, letter_id: str) -> JSONResponse:
    """Erneut anstoßen: publish the open requests of a waiting letter again, with their original event ids."""
    service = _service(request)
    letter, envelopes = await _run(lambda: service.resend_requests(who.ctx, _letter_uuid(letter_id)))
    publisher = request.app.state.relay.publisher
    try:
        for envelope in envelopes:
            await publisher.publish(envelope)
    except Exception as exc:  # noqa: BLE001 - the broker is down: say so, staff can try again
        return JSONResponse({"detail": f"broker unavailable: {exc}", "code": "broker_unavailable"}, status_code=503)
    body = LetterOut.of(letter).model_dump(mode="json")
    body["resent_event_ids"] = [str(e.event_id) for e in envelopes]
    return JSONResponse(body, headers={"ETag": f'"{letter.version}"'})


@router.get("/letters/{letter_id}/audit", response_model=AuditLogOut, tags=["letters"])
async def audit_log(request: Request, who: CallerDep, letter_id: str) -> AuditLogOut:
    """Who did what when: the letter's full event history."""
    service = _service(request)
    entries = await _run(lambda: service.audit_log(who.account_id, _letter_uuid(letter_id)))
    return AuditLogOut(letter_id=letter_id, entries=[AuditEntryOut(**asdict(e)) for e in entries])


# ------------------------------------------------------------------------------------------------- documents


def _parse_rule(rule: str | None, role: DocumentRole) -> SplitRule | None:
    if role != DocumentRole.SPLIT:
        return None
    if not rule:
        return SplitRule(strategy=SplitStrategy.ADDRESS_BLOCK)
    try:
        return SplitRule.model_validate(json.loads(rule))
    except (ValueError, ValidationError) as exc:
        raise DocumentError(f"invalid split rule: {exc}") from exc


class UploadRejectedError(DocumentError):
    """One or more uploaded files cannot be split; nothing of the upload was attached."""

    code = "upload_rejected"

    def __init__(self, problems: list[UploadProblem]) -> None:
        super().__init__(" ".join(p.message for p in problems))
        self.problems = problems


@router.post(
    "/letters/{letter_id}/documents",
    status_code=201,
    response_model=LetterOut,
    tags=["documents"],
    dependencies=[PREPARES],
)
async def upload_document(
    request: Request,
    who: CallerDep,
    letter_id: str,
    file: Annotated[list[UploadFile], File(description="one or more PDFs (repeat the field)")],
    role: Annotated[DocumentRole, Form()] = DocumentRole.SPLIT,
    rule: Annotated[str | None, Form(description="SplitRule as JSON (default: address_block)")] = None,
) -> JSONResponse:
    """Upload source PDFs (multipart). The first document is the cover letter and is always split.

    Every file is checked here (readable, not encrypted, has pages, size); if any file has a problem, ALL
    problems of all files are answered at once (422, ``code=upload_rejected``, German ``problems``) and nothing
    is attached.
    """
    service = _service(request)
    settings: Settings = request.app.state.settings
    store: ObjectStore = request.app.state.store
    lid = _letter_uuid(letter_id)
    letter = await _run(lambda: service.get_letter(who.account_id, lid))
    if letter.has_processed_command(who.command_id):
        return await _letter_response(request, letter, 201)
    split_rule = _parse_rule(rule, role)
    if not file:
        raise DocumentError("no file uploaded")
    uploads: list[tuple[str, bytes]] = []
    problems: list[UploadProblem] = []
    for upload in file:
        data = await upload.read(settings.max_upload_bytes + 1)
        name = (upload.filename or "dokument.pdf")[:255]
        found = await _run(lambda d=data, n=name: check_upload(d, n, max_bytes=settings.max_upload_bytes))  # type: ignore[misc]
        problems.extend(found)
        uploads.append((name, data))
    if problems:
        raise UploadRejectedError(problems)
    for index, (filename, data) in enumerate(uploads):
        # One command per file: a retried request attaches each file once.
        ctx = who.ctx
        if index:
            command_id = f"{who.command_id}#{index}" if who.command_id else ""
            ctx = CommandContext(who.account_id, who.actor, command_id, None)
        letter = await _attach(service, store, ctx, lid, filename, data, role, split_rule)
    return await _letter_response(request, letter, 201)


async def _attach(
    service: LetterService,
    store: ObjectStore,
    ctx: CommandContext,
    lid: uuid.UUID,
    filename: str,
    data: bytes,
    role: DocumentRole,
    split_rule: SplitRule | None,
) -> SerialLetter:
    document_id = service.new_document_id(lid, ctx.command_id)
    key = source_key(ctx.account_id, str(lid), document_id)
    await _run(
        lambda: store.put(
            key,
            data,
            content_type="application/pdf",
            metadata={"filename": filename.encode("ascii", "replace").decode()},
        )
    )
    letter: SerialLetter = await _run(
        lambda: service.attach_document(
            ctx,
            lid,
            document_id=document_id,
            filename=filename,
            role=role,
            rule=split_rule,
            source_key=key,
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
    )
    return letter


@router.patch(
    "/letters/{letter_id}/documents/{document_id}",
    response_model=LetterOut,
    tags=["documents"],
    dependencies=[PREPARES],
)
async def change_document(
    request: Request, who: CallerDep, letter_id: str, document_id: str, body: ChangeDocumentIn
) -> JSONResponse:
    """Change a document's role (split / attachment) and split rule."""
    return await _command(
        request,
        letter_id,
        lambda s, lid: s.change_document(who.ctx, lid, document_id=document_id, role=body.role, rule=body.rule),
    )


@router.delete(
    "/letters/{letter_id}/documents/{document_id}",
    response_model=LetterOut,
    tags=["documents"],
    dependencies=[PREPARES],
)
async def remove_document(request: Request, who: CallerDep, letter_id: str, document_id: str) -> JSONResponse:
    return await _command(request, letter_id, lambda s, lid: s.remove_document(who.ctx, lid, document_id=document_id))


@router.put(
    "/letters/{letter_id}/documents/order", response_model=LetterOut, tags=["documents"], dependencies=[PREPARES]
)
async def reorder_documents(request: Request, who: CallerDep, letter_id: str, body: ReorderIn) -> JSONResponse:
    return await _command(request, letter_id, lambda s, lid: s.reorder_documents(who.ctx, lid, order=body.order))


def _stream(
    store: ObjectStore, key: str, media_type: str, filename: str, byte_range: tuple[int, int] | None = None
) -> StreamingResponse:
    """The object (or ``byte_range`` = (offset, size) of it, e.g. one thumbnail of a pack) as a download."""
    try:
        if byte_range is None:
            size, body = store.stat(key).size, store.stream(key)
        else:
            data = store.get_range(key, *byte_range)
            size, body = len(data), iter([data])
    except ObjectNotFoundError:
        raise HTTPException(404, "the file is not (yet) in storage") from None
    return StreamingResponse(
        body,
        media_type=media_type,
        headers={"Content-Length": str(size), "Content-Disposition": content_disposition("inline", filename)},
    )


def _checked_key(who: Caller, letter: SerialLetter, key: str | None) -> str:
    # Defence in depth: never stream an object outside this account's letter folder.
    if not key or not key.startswith(letter_prefix(who.account_id, str(letter.id))):
        raise HTTPException(404, "no such file for this letter")
    return key


@router.get("/letters/{letter_id}/documents/{document_id}/pdf", tags=["documents"], response_class=StreamingResponse)
async def document_pdf(request: Request, who: CallerDep, letter_id: str, document_id: str) -> StreamingResponse:
    """The uploaded source PDF."""
    service = _service(request)
    letter = await _run(lambda: service.get_letter(who.account_id, _letter_uuid(letter_id)))
    doc = letter.document(document_id)
    key = _checked_key(who, letter, doc.source_key)
    response: StreamingResponse = await _run(
        lambda: _stream(request.app.state.store, key, "application/pdf", doc.filename)
    )
    return response


@router.post("/letters/{letter_id}/split", response_model=LetterOut, tags=["documents"], dependencies=[PREPARES])
async def start_split(request: Request, who: CallerDep, letter_id: str) -> JSONResponse:
    """Start splitting: one SplitRequested per split document (attachments are appended to every part)."""
    return await _command(request, letter_id, lambda s, lid: s.start_split(who.ctx, lid))


@router.post("/letters/{letter_id}/reopen", response_model=LetterOut, tags=["documents"], dependencies=[PREPARES])
async def reopen(request: Request, who: CallerDep, letter_id: str) -> JSONResponse:
    """Back to draft to edit documents ("Dokumente bearbeiten"): split results and assignments are dropped."""
    return await _command(request, letter_id, lambda s, lid: s.reopen(who.ctx, lid))


# ------------------------------------------------------------------------------------------------- parts, review


@router.get("/letters/{letter_id}/parts/{part_id}/pdf", tags=["review"], response_class=StreamingResponse)
async def part_pdf(request: Request, who: CallerDep, letter_id: str, part_id: str) -> StreamingResponse:
    """One individual letter as PDF (for review and download before release)."""
    service = _service(request)
    letter = await _run(lambda: service.get_letter(who.account_id, _letter_uuid(letter_id)))
    part = letter.part(part_id)
    key = _checked_key(who, letter, part.storage_key)
    response: StreamingResponse = await _run(
        lambda: _stream(request.app.state.store, key, "application/pdf", f"{part_id}.pdf")
    )
    return response


@router.get("/letters/{letter_id}/parts/{part_id}/thumbnail", tags=["review"], response_class=StreamingResponse)
async def part_thumbnail(request: Request, who: CallerDep, letter_id: str, part_id: str) -> StreamingResponse:
    """PNG thumbnail of the part's first page."""
    service = _service(request)
    letter = await _run(lambda: service.get_letter(who.account_id, _letter_uuid(letter_id)))
    part = letter.part(part_id)
    key = _checked_key(who, letter, part.thumbnail_key)
    # Parts split before thumbnail packs have one PNG object each (no range).
    offset, size = part.thumbnail_offset, part.thumbnail_size
    byte_range = (offset, size) if offset is not None and size is not None else None
    response: StreamingResponse = await _run(
        lambda: _stream(request.app.state.store, key, "image/png", f"{part_id}.png", byte_range)
    )
    return response


@router.post(
    "/letters/{letter_id}/parts/{part_id}/reassign", response_model=LetterOut, tags=["review"], dependencies=[PREPARES]
)
async def reassign(request: Request, who: CallerDep, letter_id: str, part_id: str, body: ReassignIn) -> JSONResponse:
    return await _command(
        request,
        letter_id,
        lambda s, lid: s.reassign_part(
            who.ctx,
            lid,
            part_id=part_id,
            contact_id=body.contact_id,
            property_id=body.property_id,
            unit_id=body.unit_id,
        ),
    )


@router.post(
    "/letters/{letter_id}/parts/{part_id}/unassign", response_model=LetterOut, tags=["review"], dependencies=[PREPARES]
)
async def unassign(request: Request, who: CallerDep, letter_id: str, part_id: str) -> JSONResponse:
    return await _command(request, letter_id, lambda s, lid: s.unassign_part(who.ctx, lid, part_id=part_id))


@router.post(
    "/letters/{letter_id}/parts/{part_id}/discard", response_model=LetterOut, tags=["review"], dependencies=[PREPARES]
)
async def discard(request: Request, who: CallerDep, letter_id: str, part_id: str) -> JSONResponse:
    return await _command(request, letter_id, lambda s, lid: s.discard_part(who.ctx, lid, part_id=part_id))


@router.get("/letters/{letter_id}/parts", response_model=PartsPageOut, tags=["review"])
async def parts_page(
    request: Request,
    who: CallerDep,
    letter_id: str,
    filter: Annotated[str, Query(pattern="^(" + "|".join(PART_FILTERS) + ")$")] = "all",  # noqa: A002
    property_id: Annotated[str | None, Query(max_length=128, description="'none': parts without property")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> JSONResponse:
    """One page of the review list: filter zur Prüfung (review), nicht zugeordnet (unassigned), ... by property."""
    service = _service(request)

    def render(letter: SerialLetter) -> tuple[dict[str, Any], int]:
        page = PartsPageOut.of(letter, part_filter=filter, property_id=property_id, offset=offset, limit=limit)
        return page.model_dump(mode="json"), letter.version

    body, version = await _run(lambda: service.read(who.account_id, _letter_uuid(letter_id), render))
    return JSONResponse(body, headers={"ETag": f'"{version}"'})


async def _bulk(request: Request, who: Caller, letter_id: str, action: BulkAction, **kw: Any) -> JSONResponse:
    service = _service(request)
    letter, bulk_id = await _run(lambda: service.bulk_review(who.ctx, _letter_uuid(letter_id), action=action, **kw))
    response = await _letter_response(request, letter)
    response.headers["X-SmartPost-Bulk-Id"] = bulk_id
    return response


@router.post(
    "/letters/{letter_id}/review/discard-unmatched", response_model=LetterOut, tags=["review"], dependencies=[PREPARES]
)
async def discard_unmatched(request: Request, who: CallerDep, letter_id: str) -> JSONResponse:
    """Alle nicht zuordenbaren verwerfen: every part without contact and without candidates, one command."""
    return await _bulk(request, who, letter_id, BulkAction.DISCARD_UNMATCHED)


@router.post(
    "/letters/{letter_id}/review/accept-safe", response_model=LetterOut, tags=["review"], dependencies=[PREPARES]
)
async def accept_safe(
    request: Request, who: CallerDep, letter_id: str, body: AcceptSafeIn | None = None
) -> JSONResponse:
    """Alle sicheren Vorschläge übernehmen: only a unique top candidate with strong evidence, one command."""
    policy = SafeProposalPolicy(**(body or AcceptSafeIn()).model_dump())
    return await _bulk(request, who, letter_id, BulkAction.ACCEPT_SAFE, policy=policy)


@router.post(
    "/letters/{letter_id}/review/defer-property", response_model=LetterOut, tags=["review"], dependencies=[PREPARES]
)
async def defer_property(request: Request, who: CallerDep, letter_id: str, body: DeferPropertyIn) -> JSONResponse:
    """Diese Liegenschaft zurückstellen: its letters are not released with this letter (undoable before release)."""
    return await _bulk(request, who, letter_id, BulkAction.DEFER_PROPERTY, property_id=body.property_id)


@router.post(
    "/letters/{letter_id}/review/bulk/{bulk_id}/undo",
    response_model=LetterOut,
    tags=["review"],
    dependencies=[PREPARES],
)
async def undo_bulk(request: Request, who: CallerDep, letter_id: str, bulk_id: str) -> JSONResponse:
    """Undo a bulk action for every part nobody changed since (before release)."""
    return await _command(request, letter_id, lambda s, lid: s.undo_bulk_review(who.ctx, lid, bulk_id=bulk_id))


@router.post("/letters/{letter_id}/review/confirm", response_model=LetterOut, tags=["review"], dependencies=[PREPARES])
async def confirm_review(request: Request, who: CallerDep, letter_id: str) -> JSONResponse:
    """Endkontrolle: every part is assigned or discarded, at least one assigned."""
    return await _command(request, letter_id, lambda s, lid: s.confirm_review(who.ctx, lid))


# ------------------------------------------------------------------------------------------------- release and after


@router.post("/letters/{letter_id}/release", response_model=LetterOut, tags=["release"], dependencies=[RELEASES])
async def release(request: Request, who: CallerDep, letter_id: str, body: ReleaseIn) -> JSONResponse:
    """Release to the portal; each assigned part becomes one item visible only to its contact."""
    return await _command(
        request, letter_id, lambda s, lid: s.release(who.ctx, lid, notify_by_email=body.notify_by_email)
    )


@router.post("/letters/{letter_id}/print-order", response_model=LetterOut, tags=["release"], dependencies=[RELEASES])
async def order_print(request: Request, who: CallerDep, letter_id: str, body: PrintOrderIn) -> JSONResponse:
    """Order postal dispatch of the released, not revoked items (once per letter)."""
    return await _command(request, letter_id, lambda s, lid: s.order_print(who.ctx, lid, options=body.options()))


@router.post("/letters/{letter_id}/revocations", response_model=LetterOut, tags=["release"], dependencies=[RELEASES])
async def revoke(request: Request, who: CallerDep, letter_id: str, body: RevokeIn) -> JSONResponse:
    """Withdraw one unit's released letter(s) (or the given items) from the portal."""
    return await _command(
        request,
        letter_id,
        lambda s, lid: s.revoke(who.ctx, lid, unit_id=body.unit_id, item_ids=body.item_ids, reason=body.reason),
    )


# ------------------------------------------------------------------------------------------------- document types


@router.get("/document-types", response_model=DocumentTypeTreeOut, tags=["document types"])
async def document_types(request: Request, who: CallerDep) -> DocumentTypeTreeOut:
    """The account's document-type tree (folders in the portal, at most five levels)."""
    service = _service(request)
    tree = await _run(lambda: service.document_type_tree(who.account_id))
    return DocumentTypeTreeOut.of(tree)


@router.post(
    "/document-types",
    status_code=201,
    response_model=DocumentTypeTreeOut,
    tags=["document types"],
    dependencies=[PREPARES],
)
async def add_document_type(request: Request, who: CallerDep, body: DocumentTypeIn) -> DocumentTypeTreeOut:
    service = _service(request)
    tree, node_id = await _run(lambda: service.add_document_type(who.ctx, name=body.name, parent_id=body.parent_id))
    return DocumentTypeTreeOut.of(tree, created_id=node_id)


@router.patch(
    "/document-types/{node_id}", response_model=DocumentTypeTreeOut, tags=["document types"], dependencies=[ADMINISTERS]
)
async def change_document_type(request: Request, who: CallerDep, node_id: str, body: DocumentTypeIn) -> Response:
    """Rename and/or move a document type (``parent_id`` null = top level)."""
    service = _service(request)
    tree = await _run(
        lambda: service.change_document_type(who.ctx, node_id=node_id, name=body.name, parent_id=body.parent_id)
    )
    return JSONResponse(DocumentTypeTreeOut.of(tree).model_dump(mode="json"))


@router.delete(
    "/document-types/{node_id}", response_model=DocumentTypeTreeOut, tags=["document types"], dependencies=[ADMINISTERS]
)
async def remove_document_type(request: Request, who: CallerDep, node_id: str) -> Response:
    service = _service(request)
    tree = await _run(lambda: service.remove_document_type(who.ctx, node_id=node_id))
    return JSONResponse(DocumentTypeTreeOut.of(tree).model_dump(mode="json"))
