"""Application tests: real SQLite file, fake SMTP (records mails, can be down, refuse, or 'crash')."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from email.policy import default

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from smartpost_notifier.adapters.db import NotifierRepository, create_tables, mails
from smartpost_notifier.adapters.smtp import SmtpPermanentError, SmtpTransientError
from smartpost_notifier.api import router
from smartpost_notifier.application import Notifier
from smartpost_notifier.domain import MailStatus, digest_mail_id, immediate_mail_id
from smartpost_notifier.settings import Settings
from smartpost_shared.contracts.envelope import make_envelope, parse_envelope
from smartpost_shared.contracts.masterdata import ContactUpserted, PropertyUpserted, UnitUpserted
from smartpost_shared.contracts.portal import DocumentPublished, DocumentRevoked
from smartpost_shared.db import make_engine, outbox
from smartpost_shared.identity import CallerVerifier
from smartpost_shared.messaging import SqlIdempotency
from smartpost_shared.settings import IdentitySettings
from smartpost_shared.testing.identity import caller_headers

ACCOUNT = "acc-unit"


class Crash(BaseException):
    """Stands for kill -9 in the middle of an SMTP transaction."""


class FakeMailer:
    def __init__(self) -> None:
        self.delivered: list[bytes] = []
        self.mode = "ok"

    def send(self, mail, on_handed_over) -> str:
        if self.mode == "down":
            raise SmtpTransientError("connection refused")
        if self.mode == "refuse":
            raise SmtpPermanentError("RCPT TO refused: 550 no such user")
        if self.mode == "crash_before_dot":
            raise Crash
        on_handed_over()
        self.delivered.append(mail.as_bytes())
        if self.mode == "crash_after_dot":
            raise Crash
        return "250 OK"

    def close(self) -> None:
        pass

    def subjects_to(self) -> list[tuple[str, str]]:
        out = []
        for raw in self.delivered:
            msg = message_from_bytes(raw, policy=default)
            out.append((msg["To"].addresses[0].addr_spec, msg["X-SmartPost-Kind"]))
        return sorted(out)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def env(sqlite_url):
    engine = make_engine(sqlite_url)
    create_tables(engine)
    settings = Settings(
        database_url=sqlite_url,
        immediate_delay_seconds=5,
        retry_base_seconds=2,
        retry_max_seconds=60,
        unknown_contact_grace_seconds=600,
        account_name="HV Muster",
    )
    clock = Clock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    mailer = FakeMailer()
    notifier = Notifier(engine, settings, mailer, clock=clock)
    idem = SqlIdempotency(engine, "notifier")

    class Env:
        pass

    e = Env()
    e.engine, e.settings, e.clock, e.mailer, e.notifier, e.idem = engine, settings, clock, mailer, notifier, idem

    def deliver(payload, handler=None):
        envelope = make_envelope(payload, account_id=ACCOUNT, producer="test")
        envelope = parse_envelope(envelope.to_bytes())
        fn = handler or {
            "DocumentPublished": notifier.on_document_published,
            "DocumentRevoked": notifier.on_document_revoked,
        }.get(envelope.event_type, notifier.on_masterdata)
        assert idem.run_once(fn, envelope)
        return envelope

    def contact(cid, email="x@example.org", registered=True, **kw):
        deliver(ContactUpserted(contact_id=cid, email=email, portal_registered=registered, last_name=cid, **kw))

    def publish(doc, contact_id, letter="L1", notify=True, at=None, unit_id=None, property_id=None, visible=True):
        return deliver(
            DocumentPublished(
                document_id=doc,
                letter_id=letter,
                item_id=f"item-{doc}",
                contact_id=contact_id,
                property_id=property_id,
                unit_id=unit_id,
                title=f"Titel {doc}",
                folder=["Abrechnung"],
                letter_date=date(2026, 1, 2),
                notify_by_email=notify,
                published_at=at or clock.now,
                visible_on_publication=visible,
            )
        )

    def send_all():
        return notifier.send_due()

    def status(mail_id):
        with engine.connect() as conn:
            return NotifierRepository(conn).mail(mail_id)

    def outbox_events():
        with engine.connect() as conn:
            return [parse_envelope(r.body) for r in conn.execute(select(outbox.c.body))]

    e.deliver, e.contact, e.publish, e.send_all, e.status, e.outbox_events = (
        deliver,
        contact,
        publish,
        send_all,
        status,
        outbox_events,
    )
    yield e
    engine.dispose()


def test_immediate_mail_once_per_recipient_and_release_only_to_registered_with_email(env):
    env.deliver(PropertyUpserted(property_id="p1", reference="P1", name="Lindenstraße 5"))
    env.deliver(UnitUpserted(unit_id="u1", property_id="p1", number="1"))
    env.deliver(UnitUpserted(unit_id="u2", property_id="p1", number="2", position="EG rechts"))
    env.contact("c-reg", email="reg@example.org")
    env.contact("c-unreg", email="unreg@example.org", registered=False)
    env.contact("c-noemail", email=None)
    env.publish("d1", "c-reg", unit_id="u1", property_id="p1")
    env.publish("d2", "c-reg", unit_id="u2", property_id="p1")  # same letter, second unit: same mail
    env.publish("d3", "c-unreg")
    env.publish("d4", "c-noemail")
    # not before the grouping delay
    assert env.send_all().processed == 0
    env.clock.advance(6)
    report = env.send_all()
    assert (report.sent, report.skipped) == (1, 2)
    assert env.mailer.subjects_to() == [("reg@example.org", "immediate")]
    msg = message_from_bytes(env.mailer.delivered[0], policy=default)
    text = msg.get_body(("plain",)).get_content()
    assert "Titel d1" in text
    assert "Titel d2" in text
    assert "Einheit 2 (EG rechts)" in text
    assert env.status(immediate_mail_id(ACCOUNT, "c-unreg", "L1")).last_error == "not_registered_in_portal"
    assert env.status(immediate_mail_id(ACCOUNT, "c-noemail", "L1")).last_error == "no_email_address"
    events = env.outbox_events()
    assert len(events) == 1
    assert events[0].payload.document_ids == ["d1", "d2"]
    assert events[0].payload.kind == "immediate"
    # nothing more to send, ever
    env.clock.advance(3600)
    assert env.send_all().processed == 0


def test_no_immediate_mail_without_the_tick_and_redelivery_changes_nothing(env):
    env.contact("c1")
    envelope = env.publish("d1", "c1", notify=False)
    assert not env.idem.run_once(env.notifier.on_document_published, envelope)
    env.clock.advance(60)
    assert env.send_all().processed == 0
    assert env.mailer.delivered == []


def test_document_arriving_after_the_immediate_mail_does_not_cause_a_second_one(env):
    env.contact("c1")
    env.publish("d1", "c1")
    env.clock.advance(6)
    env.send_all()
    env.publish("d2", "c1")
    env.clock.advance(60)
    env.send_all()
    assert len(env.mailer.delivered) == 1


def test_revocation_cancels_a_pending_mail_and_removes_the_document_from_digests(env):
    env.contact("c1")
    env.publish("d1", "c1")
    env.deliver(DocumentRevoked(document_id="d1", letter_id="L1", item_id="item-d1", contact_id="c1", reason="wrong"))
    env.clock.advance(6)
    env.send_all()
    assert env.status(immediate_mail_id(ACCOUNT, "c1", "L1")).status is MailStatus.CANCELLED
    assert env.notifier.run_digest(ACCOUNT, date(2026, 1, 5)) == 0
    assert env.mailer.delivered == []


def test_digest_lists_the_day_regardless_of_immediate_mail_and_is_built_once(env):
    env.contact("c1", email="one@example.org")
    env.contact("c2", email="two@example.org")
    env.publish("d1", "c1", letter="L1", notify=True)
    env.publish("d2", "c1", letter="L2", notify=False)
    env.publish("d3", "c2", letter="L2", notify=False)
    env.publish("d4", "c2", letter="L3", notify=False, at=datetime(2026, 1, 5, 23, 30, tzinfo=UTC))  # 6 Jan local
    env.clock.advance(6)
    env.send_all()  # the immediate mail for c1
    assert env.notifier.run_digest(ACCOUNT, date(2026, 1, 5)) == 2
    assert env.notifier.run_digest(ACCOUNT, date(2026, 1, 5)) == 0
    env.send_all()
    assert env.mailer.subjects_to() == [
        ("one@example.org", "digest"),
        ("one@example.org", "immediate"),
        ("two@example.org", "digest"),
    ]
    digest_c1 = next(
        message_from_bytes(raw, policy=default)
        for raw in env.mailer.delivered
        if b"X-SmartPost-Kind: digest" in raw and b"one@example.org" in raw
    )
    text = digest_c1.get_body(("plain",)).get_content()
    assert "Titel d1" in text
    assert "Titel d2" in text
    digest_c2 = next(raw for raw in env.mailer.delivered if b"two@example.org" in raw)
    assert b"Titel d4" not in digest_c2  # published on the next local day
    assert env.notifier.run_digest(ACCOUNT, date(2026, 1, 6)) == 1
    env.send_all()
    assert len(env.mailer.delivered) == 4


def test_late_document_goes_into_the_next_digest_instead_of_being_lost(env):
    env.contact("c1")
    env.publish("d1", "c1", notify=False)
    env.notifier.run_digest(ACCOUNT, date(2026, 1, 5))
    env.send_all()
    # d2 was published on 5 Jan but its event arrives after that day's digest went out
    env.publish("d2", "c1", notify=False, at=datetime(2026, 1, 5, 20, tzinfo=UTC))
    assert env.notifier.run_digest(ACCOUNT, date(2026, 1, 5)) == 0
    assert env.notifier.run_digest(ACCOUNT, date(2026, 1, 6)) == 1
    env.send_all()
    assert len(env.mailer.delivered) == 2
    assert b"Titel d2" in env.mailer.delivered[1]


def test_scheduler_runs_the_digest_at_the_configured_local_time_once(env):
    env.contact("c1")
    env.publish("d1", "c1", notify=False)  # 5 Jan 10:00 Berlin
    env.clock.now = datetime(2026, 1, 6, 5, 59, tzinfo=UTC)  # 06:59 Berlin
    assert [r for r in env.notifier.run_due_digests() if r[2]] == []
    env.clock.now = datetime(2026, 1, 6, 6, 0, tzinfo=UTC)  # 07:00 Berlin
    runs = env.notifier.run_due_digests()
    assert [(day, n) for _, day, n in runs if n] == [(date(2026, 1, 5), 1)]
    assert env.notifier.run_due_digests() == []
    env.send_all()
    assert env.mailer.subjects_to() == [("x@example.org", "digest")]
    assert env.status(digest_mail_id(ACCOUNT, "c1", date(2026, 1, 5))).status is MailStatus.SENT


def test_smtp_outage_retries_with_backoff_and_loses_nothing(env):
    env.contact("c1")
    env.contact("c2")
    env.publish("d1", "c1")
    env.publish("d2", "c2")
    env.clock.advance(6)
    env.mailer.mode = "down"
    report = env.send_all()
    assert report.sent == 0
    first = env.status(immediate_mail_id(ACCOUNT, "c1", "L1"))
    second = env.status(immediate_mail_id(ACCOUNT, "c2", "L1"))
    assert {first.status, second.status} == {MailStatus.PENDING}
    assert max(first.attempts, second.attempts) == 1
    assert env.send_all().processed == 0  # backing off
    env.clock.advance(2)
    env.send_all()  # still down: attempt 2, next delay 4 s
    env.mailer.mode = "ok"
    env.clock.advance(2)
    assert env.send_all().sent == 0
    env.clock.advance(2)
    assert env.send_all().sent == 2
    assert len(env.mailer.delivered) == 2


def test_permanent_refusal_is_recorded_and_not_retried(env):
    env.contact("c1")
    env.publish("d1", "c1")
    env.clock.advance(6)
    env.mailer.mode = "refuse"
    assert env.send_all().failed == 1
    row = env.status(immediate_mail_id(ACCOUNT, "c1", "L1"))
    assert row.status is MailStatus.FAILED
    assert "550" in row.last_error
    env.mailer.mode = "ok"
    env.clock.advance(3600)
    assert env.send_all().processed == 0
    assert env.outbox_events() == []


def test_unknown_contact_waits_for_master_data_then_is_skipped(env):
    env.publish("d1", "c-late")
    env.clock.advance(6)
    assert env.send_all().deferred == 1
    env.contact("c-late", email="late@example.org")
    env.clock.advance(2)
    assert env.send_all().sent == 1
    env.publish("d2", "c-never", letter="L9")
    env.clock.advance(700)
    env.send_all()
    assert env.status(immediate_mail_id(ACCOUNT, "c-never", "L9")).status is MailStatus.SKIPPED


def restart(env) -> Notifier:
    return Notifier(env.engine, env.settings, env.mailer, clock=env.clock)


def test_crash_before_the_final_dot_resends_after_restart(env):
    env.contact("c1")
    env.publish("d1", "c1")
    env.clock.advance(6)
    env.mailer.mode = "crash_before_dot"
    with pytest.raises(Crash):
        env.send_all()
    mail_id = immediate_mail_id(ACCOUNT, "c1", "L1")
    assert env.status(mail_id).status is MailStatus.SENDING
    env.mailer.mode = "ok"
    notifier = restart(env)
    assert notifier.recover_in_flight() == (1, 0)
    assert notifier.send_due().sent == 1
    assert len(env.mailer.delivered) == 1
    assert len(env.outbox_events()) == 1


def test_crash_after_the_final_dot_never_sends_twice(env):
    env.contact("c1")
    env.publish("d1", "c1")
    env.clock.advance(6)
    env.mailer.mode = "crash_after_dot"
    with pytest.raises(Crash):
        env.send_all()
    mail_id = immediate_mail_id(ACCOUNT, "c1", "L1")
    # The point of no return is in the hand-over journal (one write()), not in a database commit.
    assert env.status(mail_id).status is MailStatus.SENDING
    assert mail_id in env.notifier.journal.handed_over()
    env.mailer.mode = "ok"
    notifier = restart(env)
    assert notifier.recover_in_flight() == (0, 1)
    env.clock.advance(3600)
    assert notifier.send_due().processed == 0
    assert len(env.mailer.delivered) == 1
    with env.engine.connect() as conn:
        row = conn.execute(select(mails.c.status, mails.c.confirmed).where(mails.c.mail_id == mail_id)).one()
    assert (row.status, row.confirmed) == ("sent", False)
    events = env.outbox_events()
    assert len(events) == 1
    assert events[0].event_id == uuid.uuid5(uuid.NAMESPACE_URL, f"smartpost:notifier/NotificationSent/{mail_id}")


def test_document_hidden_by_the_contract_window_is_announced_neither_now_nor_in_the_digest(env):
    env.contact("c1", email="one@example.org")
    env.publish("d1", "c1", letter="L1", notify=True, visible=False)  # e.g. an owner who sold years ago
    env.publish("d2", "c1", letter="L2", notify=False)
    env.clock.advance(60)
    env.send_all()
    assert env.mailer.delivered == []  # no immediate mail for the hidden one
    assert env.notifier.run_digest(ACCOUNT, date(2026, 1, 5)) == 1
    env.send_all()
    (digest,) = env.mailer.delivered
    assert b"Titel d2" in digest
    assert b"Titel d1" not in digest


def _parallel(env, connections: int = 4) -> list[FakeMailer]:
    """The env's notifier with ``connections`` SMTP connections (fake mailers) per batch."""
    extra: list[FakeMailer] = []

    def factory() -> FakeMailer:
        extra.append(FakeMailer())
        return extra[-1]

    env.notifier.settings = env.settings.model_copy(update={"send_connections": connections})
    env.notifier.mailer_factory = factory
    return extra


def test_parallel_connections_send_every_mail_exactly_once(env):
    extra = _parallel(env)
    for i in range(30):
        env.contact(f"c{i}", email=f"c{i}@example.org")
        env.publish(f"d{i}", f"c{i}")
    env.clock.advance(6)
    report = env.send_all()
    assert report.sent == 30
    mailers = [env.mailer, *extra]
    assert len(mailers) == 4
    assert all(m.delivered for m in mailers)  # the batch really was spread over the connections
    addresses = [to for m in mailers for to, _ in m.subjects_to()]
    assert sorted(addresses) == sorted(f"c{i}@example.org" for i in range(30))
    assert len(env.outbox_events()) == 30  # one NotificationSent per mail
    assert env.send_all().processed == 0


def test_parallel_outage_on_one_connection_puts_the_rest_back_and_loses_nothing(env):
    extra = _parallel(env)
    for i in range(20):
        env.contact(f"c{i}", email=f"c{i}@example.org")
        env.publish(f"d{i}", f"c{i}")
    env.clock.advance(6)
    env.notifier._mailers(4)  # make the connections now to break one of them
    extra[0].mode = "down"
    report = env.send_all()
    assert report.deferred == 1
    assert report.sent < 20
    with env.engine.connect() as conn:
        statuses = [r.status for r in conn.execute(select(mails.c.status))]
    assert MailStatus.SENDING.value not in statuses  # nothing left claimed
    extra[0].mode = "ok"
    for _ in range(5):
        env.clock.advance(120)
        env.send_all()
    addresses = [to for m in [env.mailer, *extra] for to, _ in m.subjects_to()]
    assert sorted(addresses) == sorted(f"c{i}@example.org" for i in range(20))  # each exactly once


def test_portal_events_applied_as_one_batch_like_one_by_one(env):
    """The notifier consumes portal.events in batches: one transaction, same rows, redelivery changes nothing."""
    env.contact("c1")
    env.contact("c2")
    events = [
        parse_envelope(
            make_envelope(
                DocumentPublished(
                    document_id=doc,
                    letter_id="L1",
                    item_id=f"item-{doc}",
                    contact_id=cid,
                    title="Titel",
                    folder=["Abrechnung"],
                    letter_date=date(2026, 1, 2),
                    notify_by_email=True,
                    published_at=env.clock.now,
                ),
                account_id=ACCOUNT,
                producer="test",
            ).to_bytes()
        )
        for doc, cid in (("d1", "c1"), ("d2", "c1"), ("d3", "c2"))
    ]
    revoke = parse_envelope(
        make_envelope(
            DocumentRevoked(document_id="d3", letter_id="L1", item_id="item-d3", contact_id="c2", reason="falsch"),
            account_id=ACCOUNT,
            producer="test",
        ).to_bytes()
    )
    handlers = {
        "DocumentPublished": env.notifier.on_document_published,
        "DocumentRevoked": env.notifier.on_document_revoked,
    }
    assert env.idem.run_batch(handlers, [*events, revoke]) == 4
    assert env.idem.run_batch(handlers, [*events, revoke]) == 0  # redelivered batch: nothing applied twice
    env.clock.advance(6)
    assert env.send_all().sent == 1
    assert env.mailer.subjects_to() == [("x@example.org", "immediate")]
    assert env.status(immediate_mail_id(ACCOUNT, "c2", "L1")).status is MailStatus.CANCELLED
    sent = env.outbox_events()
    assert len(sent) == 1
    assert sorted(sent[0].payload.document_ids) == ["d1", "d2"]


# --- replay guard: publication events older than immediate_max_age_hours (48 h) are held for staff ----------------


def _publish_at(env, doc, contact_id, occurred_at, letter="L-old", notify=True):
    envelope = make_envelope(
        DocumentPublished(
            document_id=doc,
            letter_id=letter,
            item_id=f"item-{doc}",
            contact_id=contact_id,
            title=f"Titel {doc}",
            folder=["Abrechnung"],
            letter_date=date(2025, 12, 1),
            notify_by_email=notify,
            published_at=occurred_at,
            visible_on_publication=True,
        ),
        account_id=ACCOUNT,
        producer="test",
        occurred_at=occurred_at,
    )
    assert env.idem.run_once(env.notifier.on_document_published, parse_envelope(envelope.to_bytes()))


def test_replayed_old_publication_sends_no_mail_and_no_digest_but_is_held_for_staff(env):
    env.contact("c1", email="one@example.org")
    old = env.clock.now - timedelta(hours=49)
    _publish_at(env, "d-old", "c1", old, letter="L-old", notify=True)
    _publish_at(env, "d-old-digest", "c1", old, letter="L-old2", notify=False)
    _publish_at(env, "d-fresh", "c1", env.clock.now - timedelta(hours=47), letter="L-fresh", notify=True)
    env.clock.advance(6)
    assert env.send_all().sent == 1
    assert env.mailer.subjects_to() == [("one@example.org", "immediate")]
    assert b"Titel d-fresh" in env.mailer.delivered[0]
    held = env.status(immediate_mail_id(ACCOUNT, "c1", "L-old"))
    assert held.status is MailStatus.STALE
    assert held.last_error.startswith("Veraltet – bitte prüfen: Ereignis vom")
    assert "Grenze 48 Std." in held.last_error
    held_digest = env.status(digest_mail_id(ACCOUNT, "c1", old.date()))
    assert held_digest.status is MailStatus.STALE
    # neither the day's digest nor a later one lists the old documents; the fresh one is in the next digest
    for day in (old.date(), env.clock.now.date() - timedelta(days=1), env.clock.now.date()):
        env.notifier.run_digest(ACCOUNT, day)
    env.send_all()
    digests = [raw for raw in env.mailer.delivered if b"X-SmartPost-Kind: digest" in raw]
    assert len(digests) == 1
    assert b"d-old" not in digests[0]
    assert {m.mail_id for m in env.notifier.stale_mails(ACCOUNT)} == {held.mail_id, held_digest.mail_id}
    assert env.notifier.mail_counts(ACCOUNT)["immediate"]["stale"] == 1
    assert env.notifier.stale_mails("other-account") == []


def test_a_second_replay_and_a_later_document_of_the_held_release_stay_held(env):
    env.contact("c1", email="one@example.org")
    old = env.clock.now - timedelta(days=30)
    _publish_at(env, "d1", "c1", old)
    _publish_at(env, "d2", "c1", old)  # second unit of the same release
    env.clock.advance(6)
    assert env.send_all().processed == 0
    mail_id = immediate_mail_id(ACCOUNT, "c1", "L-old")
    with env.engine.connect() as conn:
        assert sorted(NotifierRepository(conn).linked_document_ids(mail_id)) == ["d1", "d2"]
    # staff decide it is still wanted: released, it goes out once with both documents
    assert env.notifier.release_stale("other-account", mail_id) is False
    assert env.notifier.release_stale(ACCOUNT, mail_id) is True
    assert env.notifier.release_stale(ACCOUNT, mail_id) is False
    assert env.send_all().sent == 1
    assert b"Titel d1" in env.mailer.delivered[0]
    assert b"Titel d2" in env.mailer.delivered[0]


def test_replay_guard_can_be_switched_off(env):
    env.settings.immediate_max_age_hours = 0
    env.contact("c1", email="one@example.org")
    _publish_at(env, "d1", "c1", env.clock.now - timedelta(days=30))
    env.clock.advance(6)
    assert env.send_all().sent == 1


def test_held_mails_over_http_only_for_the_callers_verified_account_and_release_role(env):
    """``/internal/mails/stale`` and ``.../release`` take the account from the signed claims: another account sees
    nothing and cannot send the mail; without the role ``release`` nothing is sent either."""
    env.contact("c1", email="one@example.org")
    _publish_at(env, "d-old", "c1", env.clock.now - timedelta(days=30))
    mail_id = immediate_mail_id(ACCOUNT, "c1", "L-old")
    app = FastAPI()
    app.include_router(router)
    app.state.notifier = env.notifier
    app.state.caller_verifier = CallerVerifier.from_settings("notifier", IdentitySettings())
    client = TestClient(app)

    def headers(account, roles=("release",)):
        return caller_headers(account, audience="notifier", roles=roles)

    assert client.get("/internal/mails/stale").status_code == 401
    other = client.get("/internal/mails/stale", headers=headers("other-account")).json()
    assert other == {"account_id": "other-account", "mails": []}
    own = client.get("/internal/mails/stale", headers=headers(ACCOUNT)).json()["mails"]
    assert [(m["mail_id"], m["contact_id"], m["document_titles"]) for m in own] == [(mail_id, "c1", ["Titel d-old"])]
    assert own[0]["reason"].startswith("Veraltet – bitte prüfen")
    path = f"/internal/mails/{mail_id}/release"
    assert client.post(path, headers=headers("other-account")).status_code == 409
    assert client.post(path, headers=headers(ACCOUNT, roles=("prepare", "admin"))).status_code == 403
    assert env.status(mail_id).status is MailStatus.STALE
    assert client.post(path, headers=headers(ACCOUNT)).json()["status"] == "pending"
    assert client.post(path, headers=headers(ACCOUNT)).status_code == 409
    assert client.get("/internal/mails/stale", headers=headers(ACCOUNT)).json()["mails"] == []
