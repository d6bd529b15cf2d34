"""Admin routes for dead letters (role ``admin``): list, show and re-drive those of the staff member's account.

The same operations as ``python -m smartpost_shared.redrive`` (which platform operators use for every account and
for messages that are not events at all); here an admin sees only dead letters whose envelope names their account.
JSON for scripts and the operations page; errors in German.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from smartpost_gateway.settings import Role, Settings
from smartpost_gateway.web import ForbiddenError, PostSessionDep, SessionDep
from smartpost_shared.logging import get_logger
from smartpost_shared.redrive import dead_letter_topics, read_dead_letters, redrive, select

if TYPE_CHECKING:
    from smartpost_gateway.auth import StaffSession

log = get_logger(__name__)

router = APIRouter(prefix="/admin/dead-letters", tags=["admin"])


class RedriveRequest(BaseModel):
    topic: str = Field(min_length=1, max_length=200)
    coordinates: list[str] = Field(min_length=1, max_length=500)


def _admin(session: StaffSession) -> None:
    if not session.can(Role.ADMIN):
        raise ForbiddenError("Ihnen fehlt die Rolle „Administration“ für diese Aktion.")


def _topics(topic: str | None) -> list[str]:
    try:
        return dead_letter_topics(topic)
    except ValueError as exc:
        raise HTTPException(status_code=404, detail="Dieses Thema (Topic) gibt es nicht.") from exc


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(_settings)]


@router.get("")
async def list_dead_letters(
    session: SessionDep,
    settings: SettingsDep,
    topic: str | None = None,
    reason: str | None = None,
    include_redriven: bool = False,
) -> dict[str, Any]:
    _admin(session)
    letters = select(
        await read_dead_letters(settings.kafka, _topics(topic)),
        reason=reason,
        account_id=session.account_id,
        include_redriven=include_redriven,
    )
    return {"dead_letters": [letter.summary() for letter in letters]}


@router.get("/{topic}/{partition}/{offset}")
async def show_dead_letter(
    session: SessionDep, settings: SettingsDep, topic: str, partition: int, offset: int
) -> dict[str, Any]:
    _admin(session)
    letters = select(
        await read_dead_letters(settings.kafka, _topics(topic)),
        coordinates=[f"{partition}:{offset}"],
        account_id=session.account_id,
        include_redriven=True,
    )
    if not letters:
        raise HTTPException(status_code=404, detail="Diese Nachricht liegt nicht in der Ablage für Fehlläufer.")
    return letters[0].detail()


@router.post("/redrive")
async def redrive_dead_letters(
    session: PostSessionDep, settings: SettingsDep, body: RedriveRequest
) -> dict[str, list[str]]:
    _admin(session)
    letters = select(
        await read_dead_letters(settings.kafka, _topics(body.topic)),
        coordinates=body.coordinates,
        account_id=session.account_id,
        include_redriven=True,
    )
    if len(letters) != len(set(body.coordinates)):
        raise HTTPException(
            status_code=404, detail="Mindestens eine der gewählten Nachrichten gibt es nicht (mehr) für Ihr Konto."
        )
    result = await redrive(settings.kafka, letters)
    log.info("dead_letters.redriven", actor=session.login, **result.as_dict())
    return result.as_dict()
