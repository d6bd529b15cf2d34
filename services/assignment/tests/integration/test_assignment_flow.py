"""Real broker (tansu) end to end: master data + LetterCreated + DocumentSplit -> PagesAssigned, corrections."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from datetime import date
from typing import Any, Self

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from smartpost_assignment.app import create_app
from smartpost_assignment.settings import Settings
from smartpost_shared.contracts.common import (
    ChannelPreference,
    ContractRole,
    DocumentType,
    LetterScope,
    PostalAddress,
    SplitStrategy,
)
from smartpost_shared.contracts.documents import DocumentSplit, SplitPart
from smartpost_shared.contracts.envelope import Envelope, make_envelope, parse_envelope
from smartpost_shared.contracts.letters import AssignmentCorrected, CorrectionAction, LetterCreated
from smartpost_shared.contracts.masterdata import ContactUpserted, ContractUpserted, PropertyUpserted, UnitUpserted
from smartpost_shared.messaging import EventPublisher, make_broker
from smartpost_shared.testing.identity import caller_headers
from smartpost_shared.topics import ASSIGNMENT

pytestmark = [pytest.mark.real, pytest.mark.asyncio]


def _md(account: str, payload: Any) -> Envelope:
    return make_envelope(payload, account_id=account, producer="erp-integration")


def masterdata(account: str, tag: str) -> list[Envelope]:
    """Two properties; Müller owns a unit in both, Schmidt owns one, Yilmaz rents, Weber sold mid-year."""
    p1, p2 = f"{tag}-P1", f"{tag}-P2"
    events: list[Any] = [
        PropertyUpserted(property_id=p1, reference=f"WEG-{tag}-1", name="WEG Lindenstraße 12"),
        PropertyUpserted(property_id=p2, reference=f"WEG-{tag}-2", name="WEG Gartenweg 3"),
        UnitUpserted(unit_id=f"{p1}-U1", property_id=p1, number="WE 01", position="EG links"),
        UnitUpserted(unit_id=f"{p1}-U2", property_id=p1, number="WE 02", position="EG rechts"),
        UnitUpserted(unit_id=f"{p2}-U1", property_id=p2, number="WE 01", position="1. OG"),
    ]
    people = [
        ("mueller", "K-1001", "Herrn", "Hans", "Müller", "Lindenstraße 12", "10115", "Berlin"),
        ("schmidt", "K-1002", "Frau", "Anna", "Schmidt", "Gartenweg 3", "14467", "Potsdam"),
        ("yilmaz", "K-1003", "Frau", "Lea", "Yilmaz", "Lindenstraße 12", "10115", "Berlin"),
        ("weber", "K-1004", "Herrn", "Otto", "Weber", "Am Markt 1", "10178", "Berlin"),
    ]
    for key, ref, sal, first, last, street, pc, city in people:
        events.append(
            ContactUpserted(
                contact_id=f"{tag}-{key}",
                reference_id=ref,
                salutation=sal,
                first_name=first,
                last_name=last,
                address=PostalAddress(street=street, postal_code=pc, city=city),
                email=f"{key}@example.org",
                channel_preference=ChannelPreference.ONLINE,
            )
        )
    contracts = [
        ("c1", "mueller", f"{p1}-U1", p1, ContractRole.OWNER, date(2018, 1, 1), None),
        ("c2", "mueller", f"{p2}-U1", p2, ContractRole.OWNER, date(2019, 1, 1), None),
        ("c3", "schmidt", f"{p1}-U2", p1, ContractRole.OWNER, date(2024, 7, 1), None),
        ("c4", "weber", f"{p1}-U2", p1, ContractRole.OWNER, date(2010, 1, 1), date(2024, 6, 30)),
        ("c5", "yilmaz", f"{p1}-U2", p1, ContractRole.TENANT, date(2020, 1, 1), None),
    ]
    for cid, who, unit, prop, role, start, end in contracts:
        events.append(
            ContractUpserted(
                contract_id=f"{tag}-{cid}",
                contact_id=f"{tag}-{who}",
                unit_id=unit,
                property_id=prop,
                role=role,
                start=start,
                end=end,
            )
        )
    return [_md(account, e) for e in events]


def part(
    letter: str, index: int, lines: list[str], ids: list[str] = (), prefs: list[str] = (), pages: int = 2
) -> SplitPart:  # type: ignore[assignment]
    first = index * pages + 1
    return SplitPart(
        part_id=f"{letter}-part-{index}",
        index=index,
        first_page=first,
        last_page=first + pages - 1,
        page_count=pages,
        storage_key=f"acc/{letter}/parts/{index}.pdf",
        sha256=hashlib.sha256(f"{letter}{index}".encode()).hexdigest(),
        size_bytes=1000,
        address_lines=lines,
        identifiers=list(ids),
        property_refs=list(prefs),
    )


def letter_created(
    account: str, letter: str, scope: LetterScope, property_id: str | None, groups: list[str]
) -> Envelope:
    return make_envelope(
        LetterCreated(
            letter_id=letter,
            title="Hausgeldabrechnung 2024",
            document_type=DocumentType(id="abrechnung", path=["Abrechnungen"]),
            recipient_groups=groups,
            scope=scope,
            property_id=property_id,
            letter_date=date(2025, 3, 1),
            created_by="staff@hv.example",
        ),
        account_id=account,
        producer="letters",
    )


def document_split(account: str, letter: str, parts: list[SplitPart]) -> Envelope:
    return make_envelope(
        DocumentSplit(
            letter_id=letter,
            document_id=f"{letter}-doc",
            source_key=f"accounts/{account}/letters/{letter}/sources/source.pdf",
            strategy=SplitStrategy.ADDRESS_BLOCK,
            source_page_count=sum(p.page_count for p in parts),
            # Consumers refuse keys outside the event's account, so the parts live in this account's area.
            parts=[
                p.model_copy(update={"storage_key": f"accounts/{account}/letters/{letter}/parts/{p.index}.pdf"})
                for p in parts
            ],
        ),
        account_id=account,
        producer="splitter",
    )


class AssignedEvents:
    """Reads assignment.events from the beginning (no group) and hands out PagesAssigned per letter."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = AIOKafkaConsumer(ASSIGNMENT.name, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        self.seen: list[Envelope] = []

    async def __aenter__(self) -> Self:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def wait_for(self, letter_id: str, count: int = 1, timeout: float = 30.0) -> list[Envelope]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await self.consumer.getmany(timeout_ms=300)
            for records in batch.values():
                self.seen += [parse_envelope(r.value) for r in records if r.value]
            found = [e for e in self.seen if getattr(e.payload, "letter_id", None) == letter_id]
            if len(found) >= count:
                return found
        msg = f"no {count} PagesAssigned for {letter_id} within {timeout}s (have {len(self.seen)} events)"
        raise AssertionError(msg)


async def wait_until(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError("condition not met in time")


async def run_service(settings: Settings) -> tuple[Any, httpx.AsyncClient]:
    app = create_app(settings)
    return app, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://assignment")


def by_part(envelope: Envelope) -> dict[str, Any]:
    return {a.part_id: a for a in envelope.payload.assignments}  # type: ignore[attr-defined]


async def test_property_scope_split_first_then_letter_then_correction(  # noqa: PLR0915 - one story, told in order
    kafka_settings, sqlite_url, make_id
) -> None:
    account, other = make_id("acc"), make_id("acc")
    tag = make_id("t")
    letter = make_id("letter")
    settings = Settings(database_url=sqlite_url, kafka=kafka_settings, log_json=False)
    app, client = await run_service(settings)
    publisher_broker = make_broker(kafka_settings, service="test")
    async with app.router.lifespan_context(app), client, AssignedEvents(kafka_settings.bootstrap_servers) as assigned:
        await publisher_broker.start()
        try:
            publisher = EventPublisher(publisher_broker)
            for envelope in masterdata(account, tag) + masterdata(other, tag + "x"):
                await publisher.publish(envelope)

            async def masterdata_applied() -> bool:
                response = await client.get(
                    "/contacts", params={"q": "Weber"}, headers=caller_headers(account, audience="assignment")
                )
                return response.status_code == 200 and len(response.json()["contacts"]) == 1

            await wait_until(masterdata_applied)
            parts = [
                part(letter, 0, ["Herrn", "Hans Müller", "Lindenstraße 12", "10115 Berlin"], ["K-1001"]),
                part(letter, 1, ["Frau Anna Schmidt", "Gartenweg 3", "14467 Potsdam"]),  # no id: name + address
                part(letter, 2, ["Herrn Otto Weber", "Am Markt 1", "10178 Berlin"], ["K-1004"]),  # sold 2024
                part(letter, 3, ["Frau Lea Yilmaz", "Lindenstraße 12", "10115 Berlin"], pages=7),  # tenant, not owner
            ]
            # The split arrives BEFORE the letter context (different topics race): it must wait, not fail.
            await publisher.publish(document_split(account, letter, parts))
            await asyncio.sleep(1.0)
            await publisher.publish(letter_created(account, letter, LetterScope.PROPERTY, f"{tag}-P1", ["owners"]))
            (first,) = await assigned.wait_for(letter)
            assert first.account_id == account
            result = by_part(first)
            assert result[f"{letter}-part-0"].status == "assigned"
            assert result[f"{letter}-part-0"].contact_id == f"{tag}-mueller"
            assert result[f"{letter}-part-0"].property_id == f"{tag}-P1"
            assert result[f"{letter}-part-0"].unit_id == f"{tag}-P1-U1"
            assert result[f"{letter}-part-0"].method == "auto"
            assert result[f"{letter}-part-1"].status == "assigned"
            assert result[f"{letter}-part-1"].contact_id == f"{tag}-schmidt"
            # Weber's contract ended before the letter date: shown as candidate, never assigned automatically.
            weber = result[f"{letter}-part-2"]
            assert weber.status == "needs_review"
            assert weber.candidates[0].contact_id == f"{tag}-weber"
            # Yilmaz is a tenant, the letter goes to owners: not a candidate at all.
            assert result[f"{letter}-part-3"].status == "unmatched"
            codes = {w.code for w in first.payload.warnings}  # type: ignore[attr-defined]
            assert {"part_unmatched", "part_needs_review", "unusual_page_count"} <= codes

            # Staff assign Weber's part by hand: re-emitted as a correction, method manual, unit from contracts.
            correction = make_envelope(
                AssignmentCorrected(
                    letter_id=letter,
                    document_id=f"{letter}-doc",
                    part_id=f"{letter}-part-2",
                    action=CorrectionAction.REASSIGN,
                    contact_id=f"{tag}-weber",
                    actor="staff@hv.example",
                ),
                account_id=account,
                producer="letters",
            )
            await publisher.publish(correction)
            corrected = (await assigned.wait_for(letter, count=2))[1]
            assert corrected.payload.is_correction  # type: ignore[attr-defined]
            (fixed,) = corrected.payload.assignments  # type: ignore[attr-defined]
            assert (fixed.contact_id, fixed.method, fixed.unit_id) == (f"{tag}-weber", "manual", f"{tag}-P1-U2")
            assert "contract_ended" in {w.code for w in corrected.payload.warnings}  # type: ignore[attr-defined]

            # A cross-account correction is refused (dead-lettered), never applied.
            foreign = make_envelope(
                AssignmentCorrected(
                    letter_id=letter,
                    document_id=f"{letter}-doc",
                    part_id=f"{letter}-part-3",
                    action=CorrectionAction.REASSIGN,
                    contact_id=f"{tag}x-yilmaz",
                    actor="staff@hv.example",
                ),
                account_id=account,
                producer="letters",
            )
            await publisher.publish(foreign)
            await wait_until(lambda: _async(app.state.consumer.dead_lettered >= 1))

            # Master data changes, then staff re-run the matching: the confirmed part stays as staff set it.
            await publisher.publish(
                _md(
                    account,
                    ContractUpserted(
                        contract_id=f"{tag}-c4",
                        contact_id=f"{tag}-weber",
                        unit_id=f"{tag}-P1-U1",
                        property_id=f"{tag}-P1",
                        role=ContractRole.OWNER,
                        start=date(2010, 1, 1),
                        end=None,
                    ),
                )
            )
            await asyncio.sleep(1.0)
            headers = caller_headers(account, "staff@hv.example", audience="assignment", roles=["prepare"])
            response = await client.post(f"/letters/{letter}/rematch", headers=headers)
            assert response.status_code == 200, response.text
            view = (await client.get(f"/letters/{letter}/assignments", headers=headers)).json()
            parts_view = {p["part_id"]: p for p in view["documents"][0]["parts"]}
            assert parts_view[f"{letter}-part-2"]["unit_id"] == f"{tag}-P1-U2"
            assert parts_view[f"{letter}-part-2"]["confirmed"] is True
            assert parts_view[f"{letter}-part-3"]["status"] == "unmatched"
            # The other account cannot see this letter.
            other_view = await client.get(
                f"/letters/{letter}/assignments", headers=caller_headers(other, audience="assignment")
            )
            assert other_view.status_code == 404
        finally:
            await publisher_broker.stop()


async def _async(value: bool) -> bool:
    return value


async def test_cross_property_scope_and_account_isolation(kafka_settings, postgres_url, make_id) -> None:
    account_a, account_b = make_id("acc"), make_id("acc")
    tag_a, tag_b = make_id("a"), make_id("b")
    letter_b = make_id("letter")
    settings = Settings(database_url=postgres_url, kafka=kafka_settings, log_json=False)
    app, client = await run_service(settings)
    publisher_broker = make_broker(kafka_settings, service="test")
    async with app.router.lifespan_context(app), client, AssignedEvents(kafka_settings.bootstrap_servers) as assigned:
        await publisher_broker.start()
        try:
            publisher = EventPublisher(publisher_broker)
            for envelope in masterdata(account_a, tag_a) + masterdata(account_b, tag_b):
                await publisher.publish(envelope)
            # Account A alone has "Gerda Fremd"; a letter of account B addressed to her must find nobody.
            await publisher.publish(
                _md(
                    account_a,
                    ContactUpserted(
                        contact_id=f"{tag_a}-fremd",
                        reference_id="K-9999",
                        first_name="Gerda",
                        last_name="Fremd",
                        address=PostalAddress(street="Lindenstraße 12", postal_code="10115", city="Berlin"),
                    ),
                )
            )
            await publisher.publish(
                _md(
                    account_a,
                    ContractUpserted(
                        contract_id=f"{tag_a}-c9",
                        contact_id=f"{tag_a}-fremd",
                        unit_id=f"{tag_a}-P1-U1",
                        property_id=f"{tag_a}-P1",
                        role=ContractRole.OWNER,
                        start=date(2020, 1, 1),
                    ),
                )
            )

            async def applied() -> bool:
                response = await client.get(
                    "/contacts", params={"q": "Fremd"}, headers=caller_headers(account_a, audience="assignment")
                )
                b = await client.get(
                    "/contacts", params={"q": "Weber"}, headers=caller_headers(account_b, audience="assignment")
                )
                return len(response.json()["contacts"]) == 1 and len(b.json()["contacts"]) == 1

            await wait_until(applied)
            hidden = await client.get(
                "/contacts", params={"q": "Fremd"}, headers=caller_headers(account_b, audience="assignment")
            )
            assert hidden.json()["contacts"] == []

            await publisher.publish(letter_created(account_b, letter_b, LetterScope.CROSS_PROPERTY, None, ["owners"]))
            parts = [
                # Müller owns units in both properties: the property reference on the page decides.
                part(
                    letter_b,
                    0,
                    ["Herrn Hans Müller", "Lindenstraße 12", "10115 Berlin"],
                    ["K-1001"],
                    [f"WEG-{tag_b}-2"],
                ),
                # ... and without it the property is ambiguous: review, never a guess.
                part(letter_b, 1, ["Herrn Hans Müller", "Lindenstraße 12", "10115 Berlin"], ["K-1001"]),
                # Account A's contact, printed with its own reference id: no candidate in account B.
                part(letter_b, 2, ["Frau Gerda Fremd", "Lindenstraße 12", "10115 Berlin"], ["K-9999"]),
            ]
            await publisher.publish(document_split(account_b, letter_b, parts))
            (event,) = await assigned.wait_for(letter_b)
            result = by_part(event)
            first = result[f"{letter_b}-part-0"]
            assert (first.status, first.contact_id, first.property_id, first.unit_id) == (
                "assigned",
                f"{tag_b}-mueller",
                f"{tag_b}-P2",
                f"{tag_b}-P2-U1",
            )
            second = result[f"{letter_b}-part-1"]
            assert second.status == "needs_review"
            assert second.candidates[0].contact_id == f"{tag_b}-mueller"
            third = result[f"{letter_b}-part-2"]
            assert third.status == "unmatched"
            assert all(not c.contact_id.startswith(tag_a) for a in result.values() for c in a.candidates)
            # Cross-property letters have no "contact without a letter" warning.
            assert "contact_without_part" not in {w.code for w in event.payload.warnings}  # type: ignore[attr-defined]
            stored = await client.get(
                f"/letters/{letter_b}/assignments", headers=caller_headers(account_b, audience="assignment")
            )
            assert json.dumps(stored.json()).count(tag_a) == 0
        finally:
            await publisher_broker.stop()


async def test_import_status_derived_contract_ids_foreign_accounts_and_contact_paging(
    kafka_settings, sqlite_url, make_id
) -> None:
    account, other = make_id("acc"), make_id("acc")
    tag = make_id("i")
    rows = [
        (
            "account_id,record_type,property_id,reference,name,street,postal_code,city,unit_id,number,contact_id,"
            "first_name,last_name,role,start"
        ),
        f"{account},property,{tag}-P,1020,WEG Parkallee 7,Parkallee 7,10115,Berlin,,,,,,,",
        f"{account},unit,{tag}-P,,,,,,{tag}-U1,WE 01,,,,,",
    ]
    for n in range(5):
        rows.append(f"{account},contact,,,,Parkallee 7,10115,Berlin,,,{tag}-c{n},Eva,Paging{n},,")
        # No contract_id column value: the ERP exports none, the importer derives a stable one.
        rows.append(f"{account},contract,{tag}-P,,,,,,{tag}-U1,,{tag}-c{n},,,owner,2020-01-01")
    body = "\n".join(rows).encode()
    settings = Settings(database_url=sqlite_url, kafka=kafka_settings, log_json=False)
    app, client = await run_service(settings)
    async with app.router.lifespan_context(app), client:
        headers = caller_headers(account, "staff", audience="assignment", roles=["import"]) | {
            "Content-Type": "text/csv"
        }
        accepted = await client.post("/imports", content=body, headers=headers)
        assert accepted.status_code == 202, accepted.text
        import_id = accepted.json()["import_id"]
        assert accepted.json()["counts"] == {"property": 1, "unit": 1, "contact": 5, "contract": 5}

        async def applied() -> bool:
            status = await client.get(f"/imports/{import_id}", headers=caller_headers(account, audience="assignment"))
            assert status.status_code == 200
            assert status.json()["status"] in {"received", "applied"}
            return bool(status.json()["status"] == "applied")

        await wait_until(applied)
        status = (
            await client.get(f"/imports/{import_id}", headers=caller_headers(account, audience="assignment"))
        ).json()
        assert status["events"] == status["applied_events"] == 12
        # Another account sees nothing of it.
        hidden = await client.get(f"/imports/{import_id}", headers=caller_headers(other, audience="assignment"))
        assert hidden.status_code == 404
        # Paging with a total: 5 contacts, pages of 2.
        seen: list[str] = []
        offset: int | None = 0
        while offset is not None:
            page = await client.get(
                "/contacts",
                params={"q": "Paging", "limit": 2, "offset": offset},
                headers=caller_headers(account, audience="assignment"),
            )
            data = page.json()
            assert data["total"] == 5
            seen += [c["contact_id"] for c in data["contacts"]]
            offset = data["next_offset"]
        assert sorted(seen) == [f"{tag}-c{n}" for n in range(5)]
        # The derived contract ids are stable and visible on the contact.
        contact = (
            await client.get(f"/contacts/{tag}-c0", headers=caller_headers(account, audience="assignment"))
        ).json()
        assert contact["contracts"][0]["contract_id"].startswith("V-")
        # A file that also holds another account's rows is refused, naming the column; the refusal has a status.
        mixed = body + f"\n{other},contact,,,,Weg 1,10115,Berlin,,,{tag}-x,Max,Fremd,,".encode()
        refused = await client.post("/imports", content=mixed, headers=headers)
        assert refused.status_code == 422
        assert "account_id" in refused.json()["errors"][0]["message"]
        assert other in refused.json()["errors"][0]["message"]
        status = (
            await client.get(
                f"/imports/{refused.json()['import_id']}", headers=caller_headers(account, audience="assignment")
            )
        ).json()
        assert status["status"] == "rejected"
        assert "account_id" in status["errors"][0]["message"]
