from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from smartpost_notifier.domain import (
    DocumentLine,
    Ineligible,
    Recipient,
    digest_days_to_run,
    digest_mail_id,
    greeting,
    group_for_mail,
    immediate_mail_id,
    ineligibility,
    latest_due_digest_day,
    message_id,
    publication_day,
    retry_delay,
)

BERLIN = ZoneInfo("Europe/Berlin")


def recipient(**kw) -> Recipient:
    base = {"contact_id": "c1", "email": "a@example.org", "portal_registered": True, "archived": False}
    return Recipient(**{**base, **kw})


def test_mail_ids_are_deterministic_and_distinct_per_recipient_release_and_day():
    assert immediate_mail_id("acc", "c1", "l1") == immediate_mail_id("acc", "c1", "l1")
    ids = {
        immediate_mail_id("acc", "c1", "l1"),
        immediate_mail_id("acc", "c2", "l1"),
        immediate_mail_id("acc", "c1", "l2"),
        immediate_mail_id("acc2", "c1", "l1"),
        digest_mail_id("acc", "c1", date(2026, 1, 5)),
        digest_mail_id("acc", "c1", date(2026, 1, 6)),
    }
    assert len(ids) == 6
    assert message_id("abc", "example.org") == "<abc@example.org>"


def test_publication_day_is_the_local_berlin_day():
    # 23:30 UTC on 5 January is 00:30 on 6 January in Berlin (winter time)
    assert publication_day(datetime(2026, 1, 5, 23, 30, tzinfo=UTC), BERLIN) == date(2026, 1, 6)
    # 21:59 UTC in summer is 23:59 Berlin (CEST)
    assert publication_day(datetime(2026, 7, 5, 21, 59, tzinfo=UTC), BERLIN) == date(2026, 7, 5)
    assert publication_day(datetime(2026, 7, 5, 22, 0, tzinfo=UTC), BERLIN) == date(2026, 7, 6)


def test_digest_for_a_day_is_due_the_next_morning_at_the_configured_time():
    seven = time(7, 0)
    # 06:59 Berlin on 6 Jan (05:59 UTC): yesterday's digest is not due yet
    assert latest_due_digest_day(datetime(2026, 1, 6, 5, 59, tzinfo=UTC), BERLIN, seven) == date(2026, 1, 4)
    # 07:00 Berlin on 6 Jan: the digest of 5 Jan is due
    assert latest_due_digest_day(datetime(2026, 1, 6, 6, 0, tzinfo=UTC), BERLIN, seven) == date(2026, 1, 5)
    # summer time: 07:00 CEST is 05:00 UTC
    assert latest_due_digest_day(datetime(2026, 7, 6, 5, 0, tzinfo=UTC), BERLIN, seven) == date(2026, 7, 5)
    assert latest_due_digest_day(datetime(2026, 7, 6, 4, 59, tzinfo=UTC), BERLIN, seven) == date(2026, 7, 4)


def test_digest_days_to_run_catch_up_oldest_first_and_skip_done_days():
    now = datetime(2026, 1, 6, 6, 0, tzinfo=UTC)
    assert digest_days_to_run(now, BERLIN, time(7), set(), 3) == [date(2026, 1, 3), date(2026, 1, 4), date(2026, 1, 5)]
    assert digest_days_to_run(now, BERLIN, time(7), {date(2026, 1, 4), date(2026, 1, 3)}, 3) == [date(2026, 1, 5)]
    assert digest_days_to_run(now, BERLIN, time(7), {date(2026, 1, 5)}, 1) == []


def test_retry_delay_grows_exponentially_and_is_capped():
    assert [retry_delay(n, 2.0, 60.0) for n in range(1, 8)] == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert retry_delay(10_000, 1.0, 300.0) == 300.0


def test_only_registered_contacts_with_an_address_are_eligible():
    assert ineligibility(recipient()) is None
    assert ineligibility(None) is Ineligible.UNKNOWN_CONTACT
    assert ineligibility(recipient(portal_registered=False)) is Ineligible.NOT_REGISTERED
    assert ineligibility(recipient(email=None)) is Ineligible.NO_EMAIL
    assert ineligibility(recipient(email="  ")) is Ineligible.NO_EMAIL
    assert ineligibility(recipient(archived=True)) is Ineligible.ARCHIVED


def test_greeting_by_salutation_and_language():
    assert greeting(recipient(salutation="Frau", last_name="Müller"), "de") == "Sehr geehrte Frau Müller,"
    assert greeting(recipient(salutation="Herr", last_name="Schmidt"), "de") == "Sehr geehrter Herr Schmidt,"
    assert greeting(recipient(first_name="Kim", last_name="Lee"), "de") == "Guten Tag Kim Lee,"
    assert greeting(recipient(company="ACME GmbH"), "de") == "Sehr geehrte Damen und Herren,"
    assert greeting(recipient(salutation="Frau", last_name="Müller"), "en") == "Dear Ms Müller,"
    assert greeting(recipient(salutation="Herr", last_name="Schmidt"), "en") == "Dear Mr Schmidt,"
    assert greeting(recipient(), "en") == "Dear Sir or Madam,"


def line(doc_id: str, title: str, prop: str | None, folder: tuple[str, ...] = ("Abrechnung",)) -> DocumentLine:
    return DocumentLine(
        document_id=doc_id,
        title=title,
        folder=folder,
        letter_date=date(2026, 1, 5),
        published_at=datetime(2026, 1, 5, 10, tzinfo=UTC),
        property_name=prop,
    )


def test_digest_groups_by_property_then_folder_and_title():
    groups = group_for_mail(
        [
            line("d1", "Zahlungserinnerung", None, ("Mahnungen",)),
            line("d2", "Wirtschaftsplan", "Lindenstraße 5"),
            line("d3", "Abrechnung 2025", "Am Markt 1", ("Abrechnung", "Heizkosten")),
            line("d4", "Einladung", "Am Markt 1", ("Versammlung",)),
            line("d5", "Abrechnung 2025", "Am Markt 1", ("Abrechnung",)),
        ]
    )
    assert [g.heading for g in groups] == ["Am Markt 1", "Lindenstraße 5", None]
    assert [d.document_id for d in groups[0].documents] == ["d5", "d3", "d4"]
    assert [d.document_id for d in groups[2].documents] == ["d1"]
