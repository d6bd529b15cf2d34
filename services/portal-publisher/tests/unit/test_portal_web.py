"""The recipients' web portal over HTTP (in-memory store, SQLite file, no broker): login, invitation, forgotten
password, inbox by folder, unread marker, download with proof of delivery, refusals as German pages, CSRF."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from smartpost_portal_publisher.adapters.mail import MailNotSentError, OutgoingMail
from smartpost_portal_publisher.app import create_app
from smartpost_portal_publisher.application import Publisher
from smartpost_portal_publisher.domain import document_id_for
from smartpost_portal_publisher.settings import Settings
from smartpost_shared.contracts.common import DocumentType
from smartpost_shared.db import outbox
from smartpost_shared.masterdata import apply_masterdata
from smartpost_shared.messaging import SqlIdempotency
from smartpost_shared.storage import MemoryStore
from smartpost_shared.testing.identity import caller_headers

PASSWORD = "ein-langes-passwort"
HTML = {"Accept": "text/html,application/xhtml+xml"}


class FakeMailer:
    def __init__(self) -> None:
        self.sent: list[OutgoingMail] = []
        self.fail = False

    def send(self, mail: OutgoingMail) -> None:
        if self.fail:
            raise MailNotSentError("relay down")
        self.sent.append(mail)


@pytest.fixture
def env(tmp_path, scenario, make_pdf):
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'portal.sqlite3'}",
        download_link_secret=SecretStr("unit-test-secret"),
        log_json=False,
        accounts={scenario.account_id: {"name": "Hausverwaltung Muster GmbH", "logo_url": "/logo.png"}},
    )
    store = MemoryStore()
    mailer = FakeMailer()
    app = create_app(settings, store=store, mailer=mailer)
    app.state.create_tables()  # the lifespan (which creates them) is not started here
    engine = app.state.engine
    md = SqlIdempotency(engine, "t:md")
    for envelope in scenario.masterdata():
        md.run_once(lambda e, c: apply_masterdata(c, e), envelope)
    for index in range(3):
        store.put(scenario.key(index), make_pdf(f"letter {index}"), content_type="application/pdf")
    letters = SqlIdempotency(engine, "t:letters")
    items = [scenario.item(0, "c-anna"), scenario.item(1, "c-bert")]
    letters.run_once(Publisher().on_letter_released, scenario.release(items))

    class Env:
        pass

    e = Env()
    e.app, e.engine, e.mailer, e.letters, e.items, e.settings = app, engine, mailer, letters, items, settings
    e.base = f"/kundenportal/{scenario.account_id}"
    e.anna_doc = document_id_for(scenario.account_id, items[0].item_id)
    e.bert_doc = document_id_for(scenario.account_id, items[1].item_id)
    e.staff = TestClient(app)
    return e


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found, html
    return found.group(1)


def invitation(env, scenario, contact_id: str) -> str:
    r = env.staff.post(
        "/internal/invitations",
        json={"contact_id": contact_id},
        headers=caller_headers(scenario.account_id, audience="portal-publisher", roles=["prepare"]),
    )
    assert r.status_code == 201, r.text
    return r.json()["code"]


def browser(env) -> TestClient:
    return TestClient(env.app, headers=HTML)


def register(env, scenario, contact_id: str, login: str) -> TestClient:
    client = browser(env)
    page = client.get(f"{env.base}/einladung")
    r = client.post(
        f"{env.base}/einladung",
        data={
            "code": invitation(env, scenario, contact_id).lower(),
            "login": login,
            "password": PASSWORD,
            "password_repeat": PASSWORD,
            "csrf_token": csrf(page.text),
        },
    )
    assert r.status_code == 200, r.text
    assert str(r.url).endswith("/posteingang?hinweis=willkommen")
    assert "Ihr Zugang ist eingerichtet" in r.text
    return client


def viewed_events(env) -> list[dict]:
    with env.engine.connect() as conn:
        bodies = [json.loads(r.body) for r in conn.execute(select(outbox.c.body)).all()]
    return [b for b in bodies if b["event_type"] == "DocumentViewed"]


def test_mail_link_asks_for_login_then_opens_the_document_and_the_download_is_recorded(env, scenario):
    register(env, scenario, "c-anna", "anna@example.org")
    client = browser(env)
    # The link in the notification mail, opened without a session: the login page, then back to the document.
    page = client.get(f"{env.base}/dokumente/{env.anna_doc}")
    assert page.status_code == 200
    assert urlsplit(str(page.url)).path == f"{env.base}/anmelden"
    assert "Hausverwaltung Muster GmbH" in page.text
    assert 'src="/logo.png"' in page.text
    weiter = parse_qs(urlsplit(str(page.url)).query)["weiter"][0]
    r = client.post(
        f"{env.base}/anmelden",
        data={"login": "Anna@Example.org", "password": PASSWORD, "weiter": weiter, "csrf_token": csrf(page.text)},
    )
    assert r.status_code == 200
    assert urlsplit(str(r.url)).path == f"{env.base}/dokumente/{env.anna_doc}"
    assert "Heizkostenabrechnung 2025" in r.text
    assert "Lindenstraße 1" in r.text
    assert "1.OG links" in r.text
    assert "neu, noch nicht geöffnet" in r.text

    inbox = client.get(f"{env.base}/posteingang")
    assert inbox.text.count('data-testid="dokument"') == 1
    assert '<span class="neu">Neu</span>' in inbox.text
    assert "1 ungelesenes Dokument" in inbox.text

    assert viewed_events(env) == []
    pdf = client.get(f"{env.base}/dokumente/{env.anna_doc}/herunterladen")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert urlsplit(str(pdf.url)).path == f"/portal/downloads/{env.anna_doc}"
    assert [v["payload"]["document_id"] for v in viewed_events(env)] == [env.anna_doc]

    inbox = client.get(f"{env.base}/posteingang")
    assert '<span class="neu">Neu</span>' not in inbox.text
    assert "Alles gelesen" in inbox.text


def test_inbox_by_folder_shows_only_the_folder(env, scenario, make_pdf):
    # A second letter for Anna in another folder.
    other = scenario.__class__(account_id=scenario.account_id)
    env.app.state.store.put(other.key(0), make_pdf("x"), content_type="application/pdf")
    release = other.release([other.item(0, "c-anna")])
    payload = release.payload.model_copy(
        update={
            "title": "Einladung Eigentümerversammlung",
            "document_type": DocumentType(id="dt-ev", path=["Versammlungen", "Einladung"]),
        }
    )
    release = release.model_copy(update={"payload": payload})
    env.letters.run_once(Publisher().on_letter_released, release)
    client = register(env, scenario, "c-anna", "anna@example.org")
    inbox = client.get(f"{env.base}/posteingang")
    assert inbox.text.count('data-testid="dokument"') == 2
    assert "Versammlungen" in inbox.text
    assert "Abrechnungen" in inbox.text
    one = client.get(f"{env.base}/posteingang", params={"ordner": "Versammlungen/Einladung"})
    assert one.text.count('data-testid="dokument"') == 1
    assert "Einladung Eigentümerversammlung" in one.text
    assert "Heizkostenabrechnung" not in one.text


def test_recipient_a_never_sees_b_and_a_revoked_document_disappears(env, scenario):
    anna = register(env, scenario, "c-anna", "anna@example.org")
    bert = register(env, scenario, "c-bert", "bert@example.org")
    assert env.bert_doc not in anna.get(f"{env.base}/posteingang").text
    refused = anna.get(f"{env.base}/dokumente/{env.bert_doc}")
    assert refused.status_code == 404
    assert "Dokument nicht gefunden" in refused.text
    assert re.search(r'data-testid="vorgangsnummer">[0-9a-f]{10}<', refused.text)
    assert anna.get(f"{env.base}/dokumente/{env.bert_doc}/herunterladen").status_code == 404
    assert env.bert_doc in bert.get(f"{env.base}/posteingang").text

    env.letters.run_once(Publisher().on_items_revoked, scenario.revoke([env.items[1].item_id]))
    inbox = bert.get(f"{env.base}/posteingang")
    assert env.bert_doc not in inbox.text
    assert "keine Dokumente" in inbox.text
    gone = bert.get(f"{env.base}/dokumente/{env.bert_doc}")
    assert gone.status_code == 410
    assert "zurückgezogen" in gone.text


def test_expired_download_link_explains_itself_to_a_browser_and_stays_json_for_apps(env, scenario):
    client = register(env, scenario, "c-anna", "anna@example.org")
    r = client.get(f"{env.base}/dokumente/{env.anna_doc}/herunterladen", follow_redirects=False)
    assert r.status_code == 303
    link = r.headers["location"]
    service = env.app.state.portal
    service.clock = lambda: datetime.now(UTC) + timedelta(minutes=10)
    expired = client.get(link)
    assert expired.status_code == 403
    assert "Download-Link ist abgelaufen" in expired.text
    assert "Zum Posteingang" in expired.text
    api = TestClient(env.app).get(link)
    assert api.status_code == 403
    assert api.json() == {"detail": "download link expired"}
    tampered = client.get(link.replace("s=", "s=x"))
    assert "ungültig" in tampered.text


def test_invitation_errors_are_german_and_keep_the_input(env, scenario):
    client = browser(env)
    page = client.get(f"{env.base}/einladung", params={"code": "ABCD-EFGH"})
    assert 'value="ABCD-EFGH"' in page.text
    token = csrf(page.text)
    base = {"login": "anna@example.org", "csrf_token": token}
    r = client.post(
        f"{env.base}/einladung", data={**base, "code": "X", "password": PASSWORD, "password_repeat": "anders-123456"}
    )
    assert r.status_code == 422
    assert "stimmen nicht überein" in r.text
    assert 'value="anna@example.org"' in r.text
    r = client.post(f"{env.base}/einladung", data={**base, "code": "X", "password": "kurz", "password_repeat": "kurz"})
    assert "Einladungscode ist ungültig" in r.text
    code = invitation(env, scenario, "c-anna")
    r = client.post(f"{env.base}/einladung", data={**base, "code": code, "password": "kurz", "password_repeat": "kurz"})
    assert "mindestens 10 Zeichen" in r.text
    env.app.state.portal.clock = lambda: datetime.now(UTC) + timedelta(days=40)
    r = client.post(
        f"{env.base}/einladung", data={**base, "code": code, "password": PASSWORD, "password_repeat": PASSWORD}
    )
    assert r.status_code == 401
    assert "Einladungscode ist abgelaufen" in r.text
    assert "ask your" not in r.text


def test_wrong_password_and_lockout_in_german(env, scenario):
    register(env, scenario, "c-anna", "anna@example.org")
    client = browser(env)
    token = csrf(client.get(f"{env.base}/anmelden").text)
    r = client.post(
        f"{env.base}/anmelden", data={"login": "anna@example.org", "password": "falsch", "csrf_token": token}
    )
    assert r.status_code == 401
    assert "Benutzername oder Passwort ist falsch." in r.text


def test_forms_without_the_csrf_token_are_refused(env, scenario):
    register(env, scenario, "c-anna", "anna@example.org")
    client = browser(env)
    client.get(f"{env.base}/anmelden")
    r = client.post(f"{env.base}/anmelden", data={"login": "anna@example.org", "password": PASSWORD})
    assert r.status_code == 403
    assert "Formular abgelaufen" in r.text
    r = client.post(
        f"{env.base}/anmelden", data={"login": "anna@example.org", "password": PASSWORD, "csrf_token": "0" * 64}
    )
    assert r.status_code == 403
    # A fresh client has no CSRF cookie at all: refused too.
    r = browser(env).post(
        f"{env.base}/anmelden", data={"login": "anna@example.org", "password": PASSWORD, "csrf_token": "0" * 64}
    )
    assert r.status_code == 403


def test_after_login_only_paths_of_this_portal_are_followed(env, scenario):
    register(env, scenario, "c-anna", "anna@example.org")
    client = browser(env)
    token = csrf(client.get(f"{env.base}/anmelden").text)
    for target in ("https://evil.example/", "//evil.example/x", f"{env.base}/../../internal"):
        r = client.post(
            f"{env.base}/anmelden",
            data={"login": "anna@example.org", "password": PASSWORD, "weiter": target, "csrf_token": token},
            follow_redirects=False,
        )
        assert r.headers["location"] == f"{env.base}/posteingang"


def test_forgotten_password_mail_link_sets_a_new_password_once(env, scenario):
    register(env, scenario, "c-anna", "anna@example.org")
    client = browser(env)
    page = client.get(f"{env.base}/passwort-vergessen")
    r = client.post(
        f"{env.base}/passwort-vergessen", data={"login": "nobody@example.org", "csrf_token": csrf(page.text)}
    )
    assert 'data-testid="reset-gesendet"' in r.text
    assert env.mailer.sent == []  # unknown login: same answer, no mail
    r = client.post(f"{env.base}/passwort-vergessen", data={"login": "anna@example.org", "csrf_token": csrf(page.text)})
    assert 'data-testid="reset-gesendet"' in r.text
    (mail,) = env.mailer.sent
    assert mail.to_address == "anna@example.org"
    assert mail.sender_name == "Hausverwaltung Muster GmbH"
    assert "Guten Tag Anna Arendt," in mail.text
    link = re.search(r"http://testserver(\S+)", mail.text).group(1)
    form = client.get(link)
    assert "Neues Passwort festlegen" in form.text
    token = parse_qs(urlsplit(link).query)["t"][0]
    new = "ein-ganz-neues-passwort"
    r = client.post(
        f"{env.base}/passwort-neu",
        data={"t": token, "password": new, "password_repeat": new, "csrf_token": csrf(form.text)},
    )
    assert str(r.url).endswith("/posteingang?hinweis=passwort-geaendert")
    assert "Ihr neues Passwort ist gespeichert" in r.text
    # The link works once; the old password no longer logs in, the new one does.
    used = client.get(link)
    assert used.status_code == 401
    assert "schon benutzt" in used.text
    login_page = browser(env).get(f"{env.base}/anmelden")
    assert env.app.state.portal.login(scenario.account_id, "anna@example.org", new)
    with pytest.raises(Exception, match="login or password wrong"):
        env.app.state.portal.login(scenario.account_id, "anna@example.org", PASSWORD)
    assert login_page.status_code == 200


def test_expired_reset_link_explains_itself_and_mail_outage_is_reported(env, scenario):
    register(env, scenario, "c-anna", "anna@example.org")
    client = browser(env)
    page = client.get(f"{env.base}/passwort-vergessen")
    client.post(f"{env.base}/passwort-vergessen", data={"login": "anna@example.org", "csrf_token": csrf(page.text)})
    link = re.search(r"http://testserver(\S+)", env.mailer.sent[0].text).group(1)
    # A second request right away sends no second mail (no flooding), the answer is the same.
    again = client.post(
        f"{env.base}/passwort-vergessen", data={"login": "anna@example.org", "csrf_token": csrf(page.text)}
    )
    assert 'data-testid="reset-gesendet"' in again.text
    assert len(env.mailer.sent) == 1
    env.app.state.portal.clock = lambda: datetime.now(UTC) + timedelta(hours=2)
    r = client.get(link)
    assert r.status_code == 401
    assert "ist abgelaufen (er gilt eine Stunde)" in r.text
    assert "Neuen Link anfordern" in r.text
    env.mailer.fail = True
    r = client.post(f"{env.base}/passwort-vergessen", data={"login": "anna@example.org", "csrf_token": csrf(page.text)})
    assert r.status_code == 503
    assert "keine E-Mail versenden" in r.text
    # The relay is back: asking again at once sends the mail (the failed attempt does not throttle).
    env.mailer.fail = False
    r = client.post(f"{env.base}/passwort-vergessen", data={"login": "anna@example.org", "csrf_token": csrf(page.text)})
    assert 'data-testid="reset-gesendet"' in r.text
    assert len(env.mailer.sent) == 2


def test_unknown_pages_are_german_for_browsers_and_json_for_apps(env, scenario):
    r = browser(env).get(f"{env.base}/gibt-es-nicht")
    assert r.status_code == 404
    assert "Seite nicht gefunden" in r.text
    assert "Not Found" not in r.text
    assert "Hausverwaltung Muster GmbH" in r.text
    assert TestClient(env.app).get("/gibt-es-nicht").json() == {"detail": "Not Found"}
    r = browser(env).get("/kundenportal/%3Cscript%3E/posteingang")
    assert r.status_code == 404
    assert "<script>" not in r.text


def test_logout_ends_the_session(env, scenario):
    client = register(env, scenario, "c-anna", "anna@example.org")
    page = client.get(f"{env.base}/posteingang")
    r = client.post(f"{env.base}/abmelden", data={"csrf_token": csrf(page.text)})
    assert "Sie haben sich abgemeldet." in r.text
    again = client.get(f"{env.base}/posteingang")
    assert urlsplit(str(again.url)).path == f"{env.base}/anmelden"


def test_dates_in_german():
    from datetime import date

    from smartpost_portal_publisher.web import german_date, german_long_date

    assert german_date(date(2026, 3, 2)) == "02.03.2026"
    assert german_long_date(date(2026, 3, 2)) == "2. März 2026"
    assert german_date(datetime(2026, 11, 30, 15, 48, tzinfo=UTC)) == "30.11.2026 um 16:48 Uhr"
    assert german_date(datetime(2026, 7, 1, 10, 0, tzinfo=UTC)) == "01.07.2026 um 12:00 Uhr"


def test_cookies_are_secure_outside_local_development(tmp_path):
    base = {"database_url": f"sqlite:///{tmp_path / 'p.sqlite3'}", "log_json": False}
    strong = SecretStr("k8Jq2-vN0pX4-wT7zR1y-aB3c")
    production = Settings(
        **base,
        local_development=False,
        public_base_url="https://portal.example.org",
        download_link_secret=strong,
        storage={"secret_key": strong},
        kafka={"signing_key": strong},
    )
    assert production.secure_cookies is True
    assert Settings(**base, local_development=True).secure_cookies is False
    assert Settings(**base, local_development=True, cookie_secure=True).secure_cookies is True


def mail_invitation(env, scenario, contact_id: str, actor: str = "anna@hv.example"):
    return env.staff.post(
        "/internal/invitations/email",
        json={"contact_id": contact_id},
        headers=caller_headers(scenario.account_id, actor, audience="portal-publisher", roles=["prepare"]),
    )


def portal_access(env, scenario, contact_id: str) -> tuple[bool, bool]:
    """(has a login, has an open invitation) as staff see it in the letter's deliveries."""
    r = env.staff.get(
        f"/internal/letters/{scenario.letter_id}/deliveries",
        headers=caller_headers(scenario.account_id, audience="portal-publisher", roles=["prepare"]),
    )
    (found,) = [d for d in r.json() if d["contact_id"] == contact_id]
    return found["portal_login"], found["invited_at"] is not None


def test_staff_mail_an_invitation_the_link_fills_in_the_code_and_a_login_is_never_reset(env, scenario):
    r = mail_invitation(env, scenario, "c-anna")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "sent"
    assert body["email"] == "anna@example.org"
    assert "code" not in body  # the code goes only into the mail
    (mail,) = env.mailer.sent
    assert mail.to_address == "anna@example.org"
    # staff see the open invitation beside the letter
    assert portal_access(env, scenario, "c-anna") == (False, True)
    assert portal_access(env, scenario, "c-bert") == (False, False)
    assert mail.subject == "Einladung in das Kundenportal von Hausverwaltung Muster GmbH"
    link = re.search(r"http\S+/einladung\?code=\S+", mail.text)
    assert link, mail.text
    # the link opens the redeem page with the code filled in
    client = browser(env)
    page = client.get(link.group(0).replace("http://testserver", ""))
    code = parse_qs(urlsplit(link.group(0)).query)["code"][0]
    assert f'value="{code}"' in page.text
    r = client.post(
        f"{env.base}/einladung",
        data={
            "code": code,
            "login": "anna@example.org",
            "password": PASSWORD,
            "password_repeat": PASSWORD,
            "csrf_token": csrf(page.text),
        },
    )
    assert str(r.url).endswith("/posteingang?hinweis=willkommen"), r.text
    assert portal_access(env, scenario, "c-anna") == (True, False)
    # a second click: the contact has a login now; nothing is issued, nothing mailed, the login stays
    again = mail_invitation(env, scenario, "c-anna", actor="bernd@hv.example")
    assert again.status_code == 200
    assert again.json()["status"] == "already_registered"
    assert len(env.mailer.sent) == 1
    fresh = browser(env)
    login_page = fresh.get(f"{env.base}/anmelden")
    r = fresh.post(
        f"{env.base}/anmelden",
        data={"login": "anna@example.org", "password": PASSWORD, "csrf_token": csrf(login_page.text)},
    )
    assert r.status_code == 200
    assert "/posteingang" in str(r.url)
    # audited: who, when, which contact, what came of it
    audit = env.staff.get(
        "/internal/staff-audit",
        headers=caller_headers(scenario.account_id, audience="portal-publisher", roles=["prepare"]),
    ).json()
    invites = [a for a in audit if a["action"].startswith("invitation")]
    assert [(a["actor"], a["action"]) for a in invites] == [
        ("anna@hv.example", "invitation_mailed"),
        ("bernd@hv.example", "invitation_refused"),
    ]
    assert all(a["detail"]["contact_id"] == "c-anna" and a["at"] for a in invites)


def test_staff_mail_invitation_without_address_unknown_contact_and_mail_outage(env, scenario):
    r = mail_invitation(env, scenario, "c-carl")  # no e-mail address in the master data
    assert (r.status_code, r.json()["status"]) == (200, "no_email")
    assert mail_invitation(env, scenario, "c-nobody").status_code == 404
    env.mailer.fail = True
    r = mail_invitation(env, scenario, "c-bert")
    assert (r.status_code, r.json()["code"]) == (503, "mail_not_sent")
    assert env.mailer.sent == []
    # another tenant's staff cannot invite this account's contact
    r = env.staff.post(
        "/internal/invitations/email",
        json={"contact_id": "c-bert"},
        headers=caller_headers("other-account", audience="portal-publisher", roles=["prepare"]),
    )
    assert r.status_code == 404


def test_wrong_method_incomplete_request_and_unexpected_error_are_german_pages(env, scenario, monkeypatch):
    leaks = re.compile(r"\{\"|detail|Method Not Allowed|Internal Server Error|Traceback|Field required")
    client = TestClient(env.app, headers=HTML, raise_server_exceptions=False)
    wrong = client.get(f"{env.base}/abmelden")
    assert wrong.status_code == 405
    assert "Diese Anfrage ist so nicht möglich" in wrong.text
    assert not leaks.search(wrong.text)

    def boom(*_args, **_kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(env.app.state.web_portal.service, "check_password_reset", boom)
    broken = client.get(f"{env.base}/passwort-neu?t=x")
    assert broken.status_code == 500
    assert "Ein Fehler ist aufgetreten" in broken.text
    assert re.search(r'data-testid="vorgangsnummer">[0-9a-f]{10}<', broken.text)
    assert not leaks.search(broken.text)
    # apps keep JSON
    assert TestClient(env.app).get(f"{env.base}/abmelden").json() == {"detail": "Method Not Allowed"}


def test_portal_pages_run_under_a_content_security_policy_without_inline_code(env, scenario):
    """Issue #13: no inline script, handler or style on the recipients' pages, and a policy that refuses them."""
    client = register(env, scenario, "c-anna", "anna@example.org")
    pages = [client.get(f"{env.base}/posteingang"), browser(env).get(f"{env.base}/anmelden")]
    for page in pages:
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "style-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        assert not re.search(r"<script(?![^>]*\bsrc=)|\sstyle=|\son[a-z]+=", page.text), page.text
