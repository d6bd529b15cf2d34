"""Staff roles, enforced by every service from the verified caller claims (:mod:`smartpost_shared.identity`).

The gateway's role model (``smartpost_gateway.settings.Role``) is checked again behind it: a token of the account
alone is not enough, and the gateway's check is not the only one. Machine callers (an ERP connector, the demo tool)
claim roles explicitly like anyone else; ``import`` is the narrow role of a master-data importer, which an issuer can
be limited to (``"roles": ["import"]``).

Usage in a FastAPI app: ``router = APIRouter(dependencies=[STAFF])`` (default deny: any staff role) and per command
``@router.post(..., dependencies=[requires(PREPARE)])``. A caller without the role gets 403 with a German detail;
what it held and needed goes to the log.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, HTTPException, Request

from smartpost_shared.identity import VerifiedCaller  # noqa: TC001 - FastAPI reads it at runtime
from smartpost_shared.logging import get_logger

PREPARE, RELEASE, ADMIN, IMPORT = "prepare", "release", "admin", "import"
STAFF_ROLES = frozenset({PREPARE, RELEASE, ADMIN})
ROLE_LABELS = {PREPARE: "Vorbereiten", RELEASE: "Freigeben", ADMIN: "Administration", IMPORT: "Stammdatenimport"}

log = get_logger(__name__)


def refusal_detail(*roles: str) -> str:
    labels = " oder ".join(f"„{ROLE_LABELS.get(r, r)}“" for r in roles)
    return f"Dafür fehlt Ihnen die Berechtigung ({labels})."


def refuse_without(request: Request, claims: VerifiedCaller, *roles: str) -> None:
    """403 unless the verified caller holds one of ``roles`` (German for the user, the detail goes to the log)."""
    if claims.roles & set(roles):
        return
    log.warning(
        "identity.role_refused",
        path=request.url.path,
        method=request.method,
        needed=sorted(roles),
        held=sorted(claims.roles),
        issuer=claims.issuer,
        actor=claims.actor,
        account_id=claims.account_id,
    )
    raise HTTPException(403, refusal_detail(*roles))


def requires(*roles: str) -> Any:
    """A FastAPI dependency (for ``dependencies=[...]``): the verified caller holds one of ``roles``."""

    def check(request: Request, claims: VerifiedCaller) -> None:
        refuse_without(request, claims, *roles)

    return Depends(check)


STAFF = requires(*sorted(STAFF_ROLES))
