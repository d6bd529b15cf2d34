"""HTTP API of the splitter: the split-strategy proposal for an uploaded PDF (the split itself runs on Kafka).

``POST /split-proposals`` takes the PDF as the raw body (``application/pdf``), reads up to ``PROPOSAL_PAGES`` pages
in the sandbox (a crafted file cannot reach the service process) and answers the candidate rules, best first,
with German reasons (:mod:`smartpost_splitter.proposal`). Nothing is stored. The caller must prove itself
(signed caller claims, :mod:`smartpost_shared.identity`).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request

from smartpost_shared.identity import verified_account
from smartpost_shared.logging import get_logger
from smartpost_splitter.adapters.sandbox import SandboxError
from smartpost_splitter.adapters.scan import proposal_pages
from smartpost_splitter.proposal import explain, propose

log = get_logger(__name__)
router = APIRouter()

PROPOSAL_PAGES = 300  # enough to judge a layout; a 10,000-page export is not read whole for a proposal
PROPOSAL_SECONDS = 60.0
PROPOSAL_MAX_BYTES = 512 * 1024 * 1024
AccountDep = Annotated[str, Depends(verified_account)]


@router.post("/split-proposals")
async def split_proposal(request: Request, account: AccountDep) -> dict[str, Any]:
    sandbox = request.app.state.sandbox
    with tempfile.TemporaryDirectory(prefix="smartpost-proposal-") as folder:
        path = Path(folder) / "upload.pdf"
        size = 0
        with path.open("wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > PROPOSAL_MAX_BYTES:
                    raise HTTPException(413, "Die Datei ist zu groß für einen Vorschlag.")
                out.write(chunk)
        if size == 0:
            raise HTTPException(422, "Die Datei ist leer.")
        try:
            total, pages = await asyncio.to_thread(
                sandbox.call, proposal_pages, str(path), PROPOSAL_PAGES, timeout=PROPOSAL_SECONDS
            )
        except SandboxError as exc:
            log.warning("proposal.unreadable", account_id=account, fault=exc.fault.value, detail=exc.detail[:200])
            raise HTTPException(422, "Die Datei lässt sich für einen Vorschlag nicht lesen.") from None
        except Exception as exc:  # noqa: BLE001 - a PDF the reader refuses: no proposal, the upload goes on
            log.warning("proposal.unreadable", account_id=account, error=str(exc)[:200])
            raise HTTPException(422, "Die Datei lässt sich für einen Vorschlag nicht lesen.") from None
    ranked = propose(pages)
    log.info(
        "proposal.made",
        account_id=account,
        pages=total,
        pages_read=len(pages),
        best=ranked[0].rule if ranked else None,
        score=round(ranked[0].score, 3) if ranked else None,
    )
    if not ranked:
        return {"pages": total, "pages_read": len(pages), "proposal": None, "alternatives": [], "explanation": ""}
    return {
        "pages": total,
        "pages_read": len(pages),
        "proposal": ranked[0].as_dict(),
        "alternatives": [a.as_dict() for a in ranked[1:]],
        "explanation": explain(ranked[0], ranked[1:], pages_read=len(pages), pages_total=total),
    }
