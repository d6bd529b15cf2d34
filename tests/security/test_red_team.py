"""Red team (issue #13): attacks the rest of the suite did not try yet, each against the real code paths.

Every test is one attack (counted in "security suite: N attacks, M succeeded"); a failing test is an attack that
succeeded. Found and fixed with this file (the tests failed before the fix):

- a trusted issuer granted itself any role: an ERP connector limited to its own account signed ``roles: ["admin"]``
  and changed the portal's access window; ``"roles": []`` in its trusted-issuer entry was silently ignored;
- a caller token with a lifetime of ten years was accepted (a leaked token was a standing key);
- a misspelt restriction in a trusted-issuer entry (``"account": [...]``) was ignored, leaving the issuer unlimited;
- login CSRF on the staff gateway: another site's form logged the browser into an account of the attacker's choice;
- the gateway read and parsed 150 MB of JSON from a client without a session; letters took JSON up to 200 MB; the
  splitter's proposal API streamed a declared 600 MB body up to its 512 MB limit before refusing;
- ``weiter=/kundenportal/<acc>/%2e%2e/...`` led out of the account's portal after login;
- a claim check of one account could name another account's stored event body;
- outside local development the portal built reset links from the request's Host header (no public_base_url);
- ids with "?" or ".." in gateway addresses cut the service path: a "prepare" user deleted a letter;
- every service's personal-data export answered any verified caller (the erasure needs "admin").
"""

from __future__ import annotations

import asyncio
import base64
import re
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from aiokafka import AIOKafkaProducer
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from smartpost_shared.contracts import Envelope, make_envelope
from smartpost_shared.contracts.common import ContractRole, DocumentType
from smartpost_shared.contracts.letters import LetterItemsRevoked, LetterReleased, ReleasedItem
from smartpost_shared.contracts.masterdata import ContactUpserted, ContractUpserted, PropertyUpserted, UnitUpserted
from smartpost_shared.event_signing import SIGNATURE_HEADER, EventSigner
from smartpost_shared.identity import CallerTokenIssuer, CallerVerifier, InvalidCallerError, generate_keypair
from smartpost_shared.messaging import EventConsumer, make_broker
from smartpost_shared.settings import IdentitySettings, KafkaSettings, TrustedIssuer
from smartpost_shared.storage import MemoryStore, part_key
from smartpost_shared.testing.identity import caller_headers
from smartpost_shared.topics import LETTERS, SPLITTER

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

# ------------------------------------------------------------------------------------------------ caller tokens

PRIVATE, PUBLIC = generate_keypair()
ERP = CallerTokenIssuer("erp-hv-muster", PRIVATE)


def _claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": "erp-hv-muster",
        "aud": "portal-publisher",
        "sub": "erp",
        "acc": "hv-muster",
        "iat": now,
        "exp": now + 60,
        **extra,
    }


def _verifier(**restrictions: Any) -> CallerVerifier:
    return CallerVerifier("portal-publisher", {"erp-hv-muster": TrustedIssuer(public_key=PUBLIC, **restrictions)})


def _refused(verifier: CallerVerifier, token: str) -> bool:
    try:
        verifier.verify(token)
    except InvalidCallerError:
        return True
    return False


@pytest.mark.parametrize("secret", ["text", "raw"])
def test_hs256_signed_with_the_public_key_is_no_proof(secret: str) -> None:
    # Algorithm confusion: the public key is public, so an HMAC "signed" with it must not count.
    key = PUBLIC.encode() if secret == "text" else base64.b64decode(PUBLIC)
    token = jwt.encode(_claims(), key, algorithm="HS256")
    assert _refused(_verifier(), token)


def test_a_token_that_is_not_yet_valid_is_refused() -> None:
    now = int(time.time())
    verifier = _verifier()
    assert _refused(verifier, jwt.encode(_claims(iat=now + 3600, exp=now + 3660), ERP._key, algorithm="EdDSA"))
    assert _refused(verifier, jwt.encode(_claims(nbf=now + 3600, exp=now + 3660), ERP._key, algorithm="EdDSA"))


def test_a_ten_year_token_is_no_standing_key() -> None:
    # Before: any lifetime was accepted, so a token from a log file or a proxy dump worked for years.
    token = jwt.encode(_claims(exp=int(time.time()) + 10 * 365 * 86400), ERP._key, algorithm="EdDSA")
    assert _refused(_verifier(), token)
    assert not _refused(_verifier(), ERP.mint("portal-publisher", "hv-muster", "erp"))


def test_an_issuer_cannot_grant_itself_a_role_it_may_not_grant() -> None:
    # Before: TrustedIssuer had no notion of roles; "roles": [] was ignored and "admin" came through.
    limited = _verifier(accounts=["hv-muster"], roles=[])
    assert _refused(limited, ERP.mint("portal-publisher", "hv-muster", "erp", ["admin"]))
    assert limited.verify(ERP.mint("portal-publisher", "hv-muster", "erp")).roles == frozenset()
    some = _verifier(roles=["prepare"])
    assert _refused(some, ERP.mint("portal-publisher", "hv-muster", "erp", ["prepare", "release"]))
    assert some.verify(ERP.mint("portal-publisher", "hv-muster", "erp", ["prepare"])).roles == {"prepare"}


def test_a_misspelt_restriction_does_not_leave_the_issuer_unlimited() -> None:
    with pytest.raises(ValidationError):
        TrustedIssuer.model_validate({"public_key": PUBLIC, "account": ["hv-muster"]})
    with pytest.raises(ValidationError):
        IdentitySettings.model_validate({"trusted_issuers": {"erp": {"public_key": PUBLIC, "role": []}}})


@pytest.mark.parametrize(
    "claims",
    [
        {"acc": ["hv-muster", "other"]},
        {"acc": "*"},
        {"roles": "admin"},
        {"roles": ["admin"]},
        {"sub": ""},
        {"acc": "hv-muster-2"},
    ],
)
def test_odd_claims_from_a_limited_issuer_are_refused(claims: dict[str, Any]) -> None:
    limited = _verifier(accounts=["hv-muster"], audiences=["portal-publisher"], roles=[])
    assert not _refused(limited, jwt.encode(_claims(), ERP._key, algorithm="EdDSA"))
    assert _refused(limited, jwt.encode(_claims(**claims), ERP._key, algorithm="EdDSA"))


def test_an_issuer_limited_to_one_service_cannot_name_a_second_audience() -> None:
    importer_only = _verifier(accounts=["hv-muster"], audiences=["assignment"])
    token = jwt.encode(_claims(aud=["assignment", "portal-publisher"]), ERP._key, algorithm="EdDSA")
    assert _refused(importer_only, token)


def test_one_issuers_key_does_not_sign_for_another_issuer_name() -> None:
    other_private, other_public = generate_keypair()
    verifier = CallerVerifier(
        "portal-publisher",
        {
            "erp-hv-muster": TrustedIssuer(public_key=PUBLIC, accounts=["hv-muster"]),
            "gateway": TrustedIssuer(public_key=other_public),
        },
    )
    # The ERP connector's key, but the gateway's name (which may act for every account).
    token = jwt.encode(_claims(iss="gateway", acc="victim"), ERP._key, algorithm="EdDSA")
    assert _refused(verifier, token)
    assert not _refused(verifier, CallerTokenIssuer("gateway", other_private).mint("portal-publisher", "victim", "x"))


# ------------------------------------------------------------------------------------------------ recipient portal

PASSWORD = "ein-langes-passwort"


def _pdf(label: str) -> bytes:
    import io

    import pikepdf

    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    pdf.docinfo["/Title"] = label
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


class Portal:
    """A portal-publisher of its own (SQLite, in-memory store) with one account, two recipients, one letter each."""

    def __init__(self, tmp: str, erp_public: str | None = None, public_base_url: str | None = None) -> None:
        from smartpost_portal_publisher.app import create_app
        from smartpost_portal_publisher.application import Publisher
        from smartpost_portal_publisher.settings import Settings
        from smartpost_shared.masterdata import apply_masterdata
        from smartpost_shared.messaging import SqlIdempotency

        self.account = f"acct-{uuid.uuid4().hex[:8]}"
        trusted = IdentitySettings().trusted_issuers
        if erp_public:  # an ERP connector of this account that may grant no role
            trusted = {**trusted, "erp-hv": TrustedIssuer(public_key=erp_public, accounts=[self.account], roles=[])}
        settings = Settings(
            database_url=f"sqlite:///{tmp}/portal.sqlite3",
            download_link_secret=SecretStr(uuid.uuid4().hex),
            public_base_url=public_base_url,
            identity=IdentitySettings(trusted_issuers=trusted),
            log_json=False,
        )
        self.store = MemoryStore()
        self.mails: list[Any] = []
        mails = self.mails

        class Outbox:
            def send(self, mail: Any) -> None:
                mails.append(mail)

        self.app = create_app(settings, store=self.store, mailer=Outbox())
        self.app.state.create_tables()
        engine = self.app.state.engine
        a = self.account
        today = datetime.now(UTC).date()
        masterdata = [
            PropertyUpserted(property_id="p1", reference="WEG-01", name="Lindenstraße 1"),
            UnitUpserted(unit_id="u1", property_id="p1", number="1.OG"),
            UnitUpserted(unit_id="u2", property_id="p1", number="2.OG"),
            ContactUpserted(contact_id="c-anna", first_name="Anna", last_name="A", email="anna@example.org"),
            ContactUpserted(contact_id="c-bert", first_name="Bert", last_name="B", email="bert@example.org"),
            *[
                ContractUpserted(
                    contract_id=f"k-{c}",
                    contact_id=c,
                    unit_id=u,
                    property_id="p1",
                    role=ContractRole.TENANT,
                    start=today - timedelta(days=400),
                )
                for c, u in (("c-anna", "u1"), ("c-bert", "u2"))
            ],
        ]
        md = SqlIdempotency(engine, "t:md")
        for payload in masterdata:
            md.run_once(lambda e, c: apply_masterdata(c, e), make_envelope(payload, account_id=a, producer="erp"))
        letter = f"l-{uuid.uuid4().hex[:8]}"
        items = []
        for index, (contact, unit) in enumerate((("c-anna", "u1"), ("c-bert", "u2"))):
            key = part_key(a, letter, "d1", index)
            self.store.put(key, _pdf(contact), content_type="application/pdf")
            items.append(
                ReleasedItem(
                    item_id=f"{letter}-{index}",
                    document_id="d1",
                    part_id=f"p{index}",
                    contact_id=contact,
                    property_id="p1",
                    unit_id=unit,
                    storage_key=key,
                    page_count=1,
                )
            )
        self.items = items
        released = LetterReleased(
            letter_id=letter,
            title="Heizkosten",
            document_type=DocumentType(id="dt", path=["Abrechnungen"]),
            letter_date=today,
            notify_by_email=False,
            released_by="staff@hv.example",
            items=items,
        )
        self.letter_id = letter
        self.publisher = Publisher()
        self.ledger = SqlIdempotency(engine, "t:letters")
        assert self.ledger.run_once(
            self.publisher.on_letter_released, make_envelope(released, account_id=a, producer="letters")
        )
        self.client = TestClient(self.app, base_url="https://portal.test")

    def revoke(self, item_id: str) -> None:
        payload = LetterItemsRevoked(letter_id=self.letter_id, item_ids=[item_id], reason="x", actor="staff@hv.de")
        self.ledger.run_once(
            self.publisher.on_items_revoked, make_envelope(payload, account_id=self.account, producer="letters")
        )

    def bearer(self, contact_id: str, login: str) -> dict[str, str]:
        code = self.client.post(
            "/internal/invitations",
            json={"contact_id": contact_id},
            headers=caller_headers(self.account, audience="portal-publisher", roles=["prepare"]),
        ).json()["code"]
        answer = self.client.post(
            "/portal/invitations/redeem", json={"code": code, "login": login, "password": PASSWORD}
        )
        assert answer.status_code == 201, answer.text
        return {"Authorization": f"Bearer {answer.json()['token']}"}

    def web_login(self, client: TestClient, login: str, weiter: str = "") -> httpx.Response:
        page = client.get(f"/kundenportal/{self.account}/anmelden")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf, page.text[:500]
        form = {"login": login, "password": PASSWORD, "csrf_token": csrf.group(1), "weiter": weiter}
        return client.post(f"/kundenportal/{self.account}/anmelden", data=form, follow_redirects=False)


@pytest.fixture
def portal() -> Iterator[Portal]:
    env = Portal(tempfile.mkdtemp(prefix="red-portal-"))
    yield env
    env.app.state.engine.dispose()


def _docs(portal: Portal, headers: dict[str, str]) -> str:
    docs = portal.client.get("/portal/documents", headers=headers).json()
    assert len(docs) == 1
    return str(docs[0]["document_id"])


def test_a_recipient_cannot_open_a_neighbours_document_in_the_kundenportal(portal: Portal) -> None:
    anna = portal.bearer("c-anna", "anna@example.org")
    bert = portal.bearer("c-bert", "bert@example.org")
    bert_doc = _docs(portal, bert)
    browser = TestClient(portal.app, base_url="https://portal.test")
    assert portal.web_login(browser, "anna@example.org").status_code == 303
    base = f"/kundenportal/{portal.account}/dokumente/{bert_doc}"
    page = browser.get(base, follow_redirects=False)
    assert page.status_code in {403, 404}
    assert "Heizkosten" not in page.text
    download = browser.get(f"{base}/herunterladen", follow_redirects=False)
    assert download.status_code in {403, 404}
    assert "/portal/downloads/" not in download.headers.get("location", "")
    assert portal.client.get(f"/portal/documents/{bert_doc}/content", headers=anna).status_code == 404


def test_a_session_of_one_account_opens_nothing_in_another_accounts_portal(portal: Portal) -> None:
    browser = TestClient(portal.app, base_url="https://portal.test")
    portal.bearer("c-anna", "anna@example.org")
    assert portal.web_login(browser, "anna@example.org").status_code == 303
    token = browser.cookies.get("sp_portal_session")
    assert token
    # The cookie is path-bound, but an attacker sends it wherever they like.
    attacker = TestClient(portal.app, base_url="https://portal.test", cookies={"sp_portal_session": token})
    assert attacker.get(f"/kundenportal/{portal.account}/posteingang", follow_redirects=False).status_code == 200
    other = attacker.get("/kundenportal/other-account/posteingang", follow_redirects=False)
    assert other.status_code == 303
    assert "/anmelden" in other.headers["location"]


def test_the_page_after_login_is_never_another_site(portal: Portal) -> None:
    portal.bearer("c-anna", "anna@example.org")
    base = f"/kundenportal/{portal.account}"
    targets = [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        f"{base}/..//..//evil.example",
        f"{base}/\\evil.example",
        f"{base}/%2e%2e/%2e%2e/x",
        "/kundenportal/other-account/posteingang",
        f"{base}@evil.example",
    ]
    for target in targets:
        browser = TestClient(portal.app, base_url="https://portal.test")
        answer = portal.web_login(browser, "anna@example.org", weiter=target)
        assert answer.status_code == 303
        location = answer.headers["location"]
        assert location.startswith(f"{base}/"), (target, location)
        assert location == f"{base}/posteingang", (target, location)
    browser = TestClient(portal.app, base_url="https://portal.test")
    wanted = f"{base}/posteingang?ordner=Abrechnungen"
    assert portal.web_login(browser, "anna@example.org", weiter=wanted).headers["location"] == wanted


def test_a_planted_portal_session_cookie_is_not_adopted_at_login(portal: Portal) -> None:
    # Session fixation: the attacker sets a cookie value, the victim logs in, the attacker reuses the value.
    portal.bearer("c-anna", "anna@example.org")
    browser = TestClient(portal.app, base_url="https://portal.test")
    planted = "attacker-chosen-" + uuid.uuid4().hex
    browser.cookies.set("sp_portal_session", planted, domain="portal.test", path=f"/kundenportal/{portal.account}")
    answer = portal.web_login(browser, "anna@example.org")
    assert answer.status_code == 303
    issued = re.search(r"sp_portal_session=([^;]+)", answer.headers["set-cookie"])
    assert issued
    assert issued.group(1) != planted
    assert portal.client.get("/portal/me", headers={"Authorization": f"Bearer {planted}"}).status_code == 401


def test_download_links_cannot_be_bent_to_another_document_principal_or_time(portal: Portal) -> None:
    anna = portal.bearer("c-anna", "anna@example.org")
    bert = portal.bearer("c-bert", "bert@example.org")
    anna_doc, bert_doc = _docs(portal, anna), _docs(portal, bert)
    bert_principal = portal.client.get("/portal/me", headers=bert).json()["principal_id"]
    link = portal.client.post(f"/portal/documents/{anna_doc}/download-link", headers=anna).json()["url"]
    parts = urlsplit(link)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert portal.client.get(f"{parts.path}?{parts.query}").status_code == 200  # the genuine link works
    bent = [
        f"/portal/downloads/{bert_doc}?{urlencode(query)}",  # link for X used for Y
        f"/portal/downloads/{bert_doc}?{urlencode({**query, 'p': bert_principal})}",  # and Y's principal
        f"{parts.path}?{urlencode({**query, 'e': int(query['e']) + 86400})}",  # longer life
        f"{parts.path}?{urlencode({**query, 'a': 'other-account'})}",
        f"{parts.path}?{urlencode({**query, 's': query['s'][:-2] + 'AA'})}",
    ]
    for url in bent:
        assert portal.client.get(url).status_code in {403, 404}, url
    portal.revoke(portal.items[0].item_id)
    assert portal.client.get(f"{parts.path}?{parts.query}").status_code in {403, 404, 410}, "link after revocation"


def _csrf(client: TestClient, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert found
    return found.group(1)


def test_a_password_reset_link_works_once(portal: Portal) -> None:
    portal.bearer("c-anna", "anna@example.org")
    base = f"/kundenportal/{portal.account}"
    browser = TestClient(portal.app, base_url="https://portal.test")
    token = _csrf(browser, f"{base}/passwort-vergessen")
    asked = browser.post(f"{base}/passwort-vergessen", data={"login": "anna@example.org", "csrf_token": token})
    assert asked.status_code == 200
    link = re.search(r"passwort-neu\?t=([A-Za-z0-9_\-%]+)", portal.mails[-1].text)
    assert link
    reset_token = link.group(1)

    def reset(password: str) -> int:
        # The CSRF token belongs to the browser's cookie, not to a page: the used link's page need not show a form.
        form = {"t": reset_token, "password": password, "password_repeat": password, "csrf_token": token}
        return browser.post(f"{base}/passwort-neu", data=form, follow_redirects=False).status_code

    assert reset("Erstes-neues-Passwort-1") == 303
    assert reset("Zweites-neues-Passwort-2") != 303, "a used reset link sets no second password"
    second = {"account_id": portal.account, "login": "anna@example.org", "password": "Zweites-neues-Passwort-2"}
    assert portal.client.post("/portal/sessions", json=second).status_code == 401
    first = {**second, "password": "Erstes-neues-Passwort-1"}
    assert portal.client.post("/portal/sessions", json=first).status_code == 201


def test_a_reset_mail_never_links_to_the_host_the_requester_names() -> None:
    # Host-header poisoning: the attacker asks for the victim's reset with "Host: evil.example"; the mailed link
    # (with a valid token) must point at the portal's public address.
    from smartpost_portal_publisher.settings import Settings
    from smartpost_shared.settings import InsecureSettingsError

    strong = SecretStr(uuid.uuid4().hex)
    production = {
        "local_development": False,
        "download_link_secret": strong,
        "storage": {"secret_key": strong},
        "kafka": {"signing_key": strong},
    }
    # Before: outside local development the portal started without a public base URL and used the Host header.
    with pytest.raises(InsecureSettingsError, match="public_base_url"):
        Settings(**production)
    assert Settings(**production, public_base_url="https://portal.example.org").public_base_url

    portal = Portal(tempfile.mkdtemp(prefix="red-portal-"), public_base_url="https://portal.example.org")
    try:
        portal.bearer("c-anna", "anna@example.org")
        base = f"/kundenportal/{portal.account}"
        browser = TestClient(portal.app, base_url="https://portal.test")
        token = _csrf(browser, f"{base}/passwort-vergessen")
        browser.post(
            f"{base}/passwort-vergessen",
            data={"login": "anna@example.org", "csrf_token": token},
            headers={"host": "evil.example", "x-forwarded-host": "evil.example"},
        )
        assert portal.mails
        assert "evil.example" not in portal.mails[-1].text
        assert f"https://portal.example.org{base}/passwort-neu?t=" in portal.mails[-1].text
    finally:
        portal.app.state.engine.dispose()


def test_an_invitation_code_registers_only_once(portal: Portal) -> None:
    code = portal.client.post(
        "/internal/invitations",
        json={"contact_id": "c-anna"},
        headers=caller_headers(portal.account, audience="portal-publisher", roles=["prepare"]),
    ).json()["code"]
    first = {"code": code, "login": "anna@example.org", "password": PASSWORD}
    assert portal.client.post("/portal/invitations/redeem", json=first).status_code == 201
    takeover = {"code": code, "login": "mallory@example.org", "password": PASSWORD}
    assert portal.client.post("/portal/invitations/redeem", json=takeover).status_code in {401, 403, 404, 409, 410}
    login = {"account_id": portal.account, "login": "mallory@example.org", "password": PASSWORD}
    assert portal.client.post("/portal/sessions", json=login).status_code == 401


def test_a_neighbour_cannot_remove_or_mimic_another_recipients_co_users(portal: Portal) -> None:
    anna = portal.bearer("c-anna", "anna@example.org")
    bert = portal.bearer("c-bert", "bert@example.org")
    assert (
        portal.client.post("/portal/co-users", json={"unit_id": "u1", "rights": "admin"}, headers=bert).status_code
        == 404
    )
    code = portal.client.post("/portal/co-users", json={"unit_id": "u1", "rights": "admin"}, headers=anna).json()[
        "code"
    ]
    partner = portal.client.post(
        "/portal/invitations/redeem", json={"code": code, "login": "partner", "password": PASSWORD}
    ).json()
    partner_id = partner["principal"]["principal_id"]
    assert portal.client.delete(f"/portal/co-users/{partner_id}", headers=bert).status_code == 404
    assert portal.client.get("/portal/co-users", headers=bert).json() == []
    partner_headers = {"Authorization": f"Bearer {partner['token']}"}
    assert portal.client.get("/portal/documents", headers=partner_headers).status_code == 200, "still there"


def test_staff_of_one_account_cannot_invite_into_another_accounts_contact(portal: Portal) -> None:
    # The contact exists only in the portal's account; a caller of another account names it.
    stranger = caller_headers("acct-stranger", audience="portal-publisher", roles=["prepare", "release"])
    answer = portal.client.post("/internal/invitations", json={"contact_id": "c-anna"}, headers=stranger)
    assert answer.status_code == 404
    mailed = portal.client.post("/internal/invitations/email", json={"contact_id": "c-anna"}, headers=stranger)
    assert mailed.status_code == 404
    deliveries = portal.client.get(f"/internal/letters/{portal.letter_id}/deliveries", headers=stranger)
    assert deliveries.json() == []


def test_an_erp_connector_cannot_claim_admin_to_widen_the_access_window() -> None:
    # Before: the issuer entry could not limit roles; the connector signed "admin" and changed what recipients see.
    erp_private, erp_public = generate_keypair()
    env = Portal(tempfile.mkdtemp(prefix="red-portal-"), erp_public=erp_public)
    try:
        erp = CallerTokenIssuer("erp-hv", erp_private)
        headers = erp.headers("portal-publisher", env.account, "erp", ["admin"])
        answer = env.client.put(
            "/internal/access-window", json={"days_before_start": 3650, "days_after_end": 3650}, headers=headers
        )
        assert answer.status_code in {401, 403}
        window = env.client.get(
            "/internal/access-window", headers=caller_headers(env.account, audience="portal-publisher")
        ).json()
        assert window["days_before_start"] != 3650
    finally:
        env.app.state.engine.dispose()


# ------------------------------------------------------------------------------------------------ staff gateway

STAFF_PASSWORD = "Richtiges-Passwort-1"


def _gateway() -> TestClient:
    from smartpost_gateway.app import create_app
    from smartpost_gateway.auth import hash_password
    from smartpost_gateway.settings import Settings

    password_hash = hash_password(STAFF_PASSWORD)
    users = {
        "anna@hv.de": {"password_hash": password_hash, "account_id": "acc-1", "roles": ["prepare", "release"]},
        "mallory@hv2.de": {"password_hash": password_hash, "account_id": "acc-2", "roles": ["prepare"]},
    }
    settings = Settings(
        staff_users=users,
        database_url=f"sqlite:///{tempfile.mkdtemp(prefix='red-gw-')}/gateway.sqlite3",
        log_json=False,
        local_development=False,
    )
    seen: list[str] = []

    def backend(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        return httpx.Response(503)

    app = create_app(settings, transport=httpx.MockTransport(backend))
    app.state.red_team_calls = seen
    return TestClient(app, base_url="https://gateway.test")


def _staff_login(client: TestClient, login: str) -> str:
    page = client.post("/login", data={"login": login, "password": STAFF_PASSWORD})
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf, page.text[:300]
    return csrf.group(1)


def test_login_csrf_from_another_site_is_refused() -> None:
    # Before: an auto-submitting form on evil.example logged the victim's browser into the attacker's account.
    with _gateway() as client:
        for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
            answer = client.post(
                "/login",
                data={"login": "mallory@hv2.de", "password": STAFF_PASSWORD},
                headers=headers,
                follow_redirects=False,
            )
            assert answer.status_code == 403, headers
            assert "smartpost_session" not in answer.headers.get("set-cookie", "")
        same_site = client.post(
            "/login",
            data={"login": "anna@hv.de", "password": STAFF_PASSWORD},
            headers={"Origin": "https://gateway.test", "Sec-Fetch-Site": "same-origin"},
            follow_redirects=False,
        )
        assert same_site.status_code == 303


def test_a_planted_staff_session_cookie_is_not_adopted_at_login() -> None:
    with _gateway() as client:
        planted = "x" * 43
        client.cookies.set("smartpost_session", planted)
        answer = client.post("/login", data={"login": "anna@hv.de", "password": STAFF_PASSWORD}, follow_redirects=False)
        issued = re.search(r"smartpost_session=([^;]+)", answer.headers["set-cookie"])
        assert issued
        assert issued.group(1) != planted


@pytest.mark.parametrize("with_htmx", [False, True])
def test_state_changing_posts_need_this_sessions_csrf_token(with_htmx: bool) -> None:
    with _gateway() as victim:
        victim_token = _staff_login(victim, "anna@hv.de")
        mallory = TestClient(victim.app, base_url="https://gateway.test")
        mallory_token = _staff_login(mallory, "mallory@hv2.de")
        assert victim_token != mallory_token
        calls: list[str] = victim.app.state.red_team_calls
        calls.clear()
        extra = {"HX-Request": "true"} if with_htmx else {}
        for path in ("/serienbriefe/L-1/loeschen", "/serienbriefe/L-1/freigeben", "/kontakte/c-1/einladung"):
            missing = victim.post(path, headers=extra, follow_redirects=False)
            foreign = victim.post(path, data={"csrf_token": mallory_token}, headers=extra, follow_redirects=False)
            header = victim.post(path, headers={**extra, "X-CSRF-Token": mallory_token}, follow_redirects=False)
            assert (missing.status_code, foreign.status_code, header.status_code) == (403, 403, 403), path
        assert calls == [], "no refused post reached a service"


def test_redrive_by_a_staff_member_without_the_admin_role_is_refused() -> None:
    with _gateway() as client:
        token = _staff_login(client, "anna@hv.de")
        body = {"topic": "letters.events", "coordinates": ["0:0"]}
        answer = client.post("/admin/dead-letters/redrive", json=body, headers={"X-CSRF-Token": token})
        assert answer.status_code == 403
        listing = client.get("/admin/dead-letters")
        assert listing.status_code == 403


# ------------------------------------------------------------------------------------------------ events (real broker)


@pytest.mark.real
async def test_a_genuine_event_replayed_onto_another_topic_is_dead_lettered(
    kafka_settings: KafkaSettings, make_id: Callable[[str], str]
) -> None:
    """The letters service's signed bytes, copied onto the splitter's topic, do not pass as the splitter's."""
    account = make_id("acc")
    letters_private, letters_public = generate_keypair()
    _, splitter_public = generate_keypair()
    consumer_settings = KafkaSettings(
        bootstrap_servers=kafka_settings.bootstrap_servers,
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
        trusted_producers={"letters": [letters_public], "splitter": [splitter_public]},
    )
    seen: list[tuple[str, str]] = []

    def recorder(topic: str) -> Callable[[Envelope], Any]:
        async def handle(envelope: Envelope) -> None:
            if envelope.account_id == account:
                seen.append((topic, str(envelope.event_id)))

        return handle

    broker = make_broker(consumer_settings, service="red-team")
    consumer = EventConsumer(broker, service="red-team", backoff_seconds=0.05)
    for topic in (LETTERS, SPLITTER):
        consumer.subscribe(
            topic,
            {"LetterItemsRevoked": recorder(topic.name)},
            group_id=make_id("g"),
            session_timeout_ms=2000,
            heartbeat_interval_ms=500,
        )
    raw = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers)
    await asyncio.gather(broker.start(), raw.start())
    try:
        payload = LetterItemsRevoked(letter_id="L", item_ids=["i"], reason="x", actor="a")
        genuine = make_envelope(payload, account_id=account, producer="letters")
        body = genuine.to_bytes()
        headers = [(SIGNATURE_HEADER, EventSigner(letters_private).sign(body).encode())]
        await raw.send_and_wait(SPLITTER.name, body, key=account.encode(), headers=headers)  # the replay
        await raw.send_and_wait(LETTERS.name, body, key=account.encode(), headers=headers)  # the original
        deadline = time.monotonic() + 30
        while not seen and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # the replay was sent first: give it time to (not) arrive
    finally:
        await asyncio.gather(broker.stop(), raw.stop())
    assert seen == [(LETTERS.name, str(genuine.event_id))]
    assert consumer.dead_lettered >= 1


# ------------------------------------------------------------------------------------------------ bounded bodies


async def _first_answer(app: Any, path: str, headers: dict[str, str]) -> int | None:
    """POST with a declared body of which only 10 bytes ever arrive: the status, or None if the app waits to read.

    An app that waits for the rest would have read (and parsed) all of it from whoever sent it.
    """
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("203.0.113.9", 40000),
        "server": ("gateway.test", 443),
        "state": {},
    }
    chunks = [{"type": "http.request", "body": b"x" * 10, "more_body": True}]

    async def receive() -> dict[str, Any]:
        if chunks:
            return chunks.pop()
        await asyncio.sleep(3600)  # the rest of the body never comes
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    try:
        await asyncio.wait_for(app(scope, receive, send), timeout=3)
    except TimeoutError:
        return None
    return next(int(m["status"]) for m in sent if m["type"] == "http.response.start")


async def test_the_gateway_reads_no_json_from_someone_who_is_not_logged_in() -> None:
    # Before: only multipart uploads needed a session; 150 MB of JSON to /admin/dead-letters/redrive was read and
    # parsed (the process grew by ~90 MB) before the route found there was no session.
    with _gateway() as client:
        headers = {"host": "gateway.test", "content-type": "application/json", "content-length": str(150 * 2**20)}
        assert await _first_answer(client.app, "/admin/dead-letters/redrive", headers) == 401
        form = {**headers, "content-type": "application/x-www-form-urlencoded"}
        assert await _first_answer(client.app, "/login", form) == 413, "the login form is no 200 MB upload either"


def _service_apps(tmp: str) -> list[tuple[str, Any, str, int, dict[str, str]]]:
    from smartpost_assignment.app import create_app as assignment_app
    from smartpost_assignment.settings import Settings as AssignmentSettings
    from smartpost_letters.app import create_app as letters_app
    from smartpost_letters.settings import Settings as LettersSettings
    from smartpost_notifier.app import create_app as notifier_app
    from smartpost_notifier.settings import Settings as NotifierSettings
    from smartpost_portal_publisher.app import create_app as portal_app
    from smartpost_portal_publisher.settings import Settings as PortalSettings
    from smartpost_print_dispatch.app import create_app as print_app
    from smartpost_print_dispatch.settings import Settings as PrintSettings
    from smartpost_shared.http import JSON_BODY_LIMIT

    db = f"sqlite:///{tmp}/%s.sqlite3"
    over_json = JSON_BODY_LIMIT + 1

    def proof(service: str) -> dict[str, str]:
        return caller_headers("acc-1", audience=service, roles=["prepare", "release", "admin", "import"])

    letters = letters_app(LettersSettings(data_dir=tmp), store=MemoryStore())
    assignment_settings = AssignmentSettings(database_url=db % "a")
    portal = portal_app(PortalSettings(database_url=db % "p"), store=MemoryStore())
    printing = print_app(PrintSettings(database_url=db % "pd"))
    return [
        ("letters", letters, "/v1/letters", over_json, proof("letters")),
        (
            "assignment",
            assignment_app(assignment_settings),
            "/letters/L/rematch",
            assignment_settings.max_import_bytes + 2 * 2**20,
            proof("assignment"),
        ),
        ("portal-publisher", portal, "/internal/access-window", over_json, proof("portal-publisher")),
        ("portal-publisher", portal, "/portal/sessions", over_json, {}),
        ("portal-publisher", portal, "/kundenportal/acc-1/anmelden", over_json, {}),
        ("print-dispatch", printing, "/estimates", over_json, proof("print-dispatch")),
        ("print-dispatch", printing, "/webhooks/pingen", over_json, {}),
        (
            "notifier",
            notifier_app(NotifierSettings(database_url=db % "n")),
            "/internal/digests/run",
            over_json,
            proof("notifier"),
        ),
    ]


async def test_every_service_refuses_an_oversized_json_body_before_reading_it() -> None:
    # Before: the letters service took JSON up to its 200 MB upload limit (bodies of any type were bounded alike).
    for name, app, path, size, headers in _service_apps(tempfile.mkdtemp(prefix="red-bodies-")):
        declared = {"host": "svc.test", "content-type": "application/json", "content-length": str(size), **headers}
        assert await _first_answer(app, path, declared) == 413, f"{name} {path}"


# ------------------------------------------------------------------------------------------------ letters service


def test_another_accounts_staff_can_neither_see_nor_touch_a_letter_and_file_names_steer_no_key() -> None:
    from smartpost_letters.app import create_app
    from smartpost_letters.settings import Settings

    store = MemoryStore()
    app = create_app(Settings(data_dir=tempfile.mkdtemp(prefix="red-letters-")), store=store)
    client = TestClient(app)
    anna = caller_headers("acc-1", "anna@hv.de", audience="letters", roles=["prepare", "release"])
    mallory = caller_headers("acc-2", "mallory@hv2.de", audience="letters", roles=["prepare", "release", "admin"])
    try:
        doc_type = client.post("/v1/document-types", json={"name": "Briefe"}, headers=anna).json()["created_id"]
        body = {"title": "T", "document_type_id": doc_type, "recipient_groups": ["owners"], "property_id": "p-1"}
        letter = client.post("/v1/letters", json=body, headers=anna).json()
        lid = letter["letter_id"]
        # A hostile upload name: the key is the service's own (account, letter, document id), never the name.
        hostile = "../../../accounts/acc-2/letters/x/sources/evil.pdf"
        upload = client.post(
            f"/v1/letters/{lid}/documents",
            files=[("file", (hostile, _pdf("mine"), "application/pdf"))],
            headers=anna,
        )
        assert upload.status_code == 201, upload.text
        keys = list(store._objects)
        assert keys
        assert all(k.startswith("accounts/acc-1/") and ".." not in k for k in keys), keys
        document_id = upload.json()["documents"][0]["document_id"]
        foreign = [
            ("GET", f"/v1/letters/{lid}", None),
            ("GET", f"/v1/letters/{lid}/audit", None),
            ("GET", f"/v1/letters/{lid}/parts", None),
            ("GET", f"/v1/letters/{lid}/documents/{document_id}/pdf", None),
            ("PATCH", f"/v1/letters/{lid}/documents/{document_id}", {"role": "attachment"}),
            ("PUT", f"/v1/letters/{lid}/documents/order", {"order": [document_id]}),
            ("POST", f"/v1/letters/{lid}/split", {}),
            ("POST", f"/v1/letters/{lid}/release", {"notify_by_email": True}),
            ("POST", f"/v1/letters/{lid}/revocations", {"item_ids": [], "reason": "x"}),
            ("DELETE", f"/v1/letters/{lid}/documents/{document_id}", None),
            ("DELETE", f"/v1/letters/{lid}", None),
        ]
        for method, path, payload in foreign:
            answer = client.request(method, path, json=payload, headers=mallory)
            assert answer.status_code == 404, f"{method} {path}: {answer.status_code} {answer.text[:200]}"
            assert "evil.pdf" not in answer.text, f"{method} {path} shows the letter's content"
        listing = client.get("/v1/letters", headers=mallory).json()
        assert lid not in str(listing)
        mine = client.get(f"/v1/letters/{lid}", headers=anna).json()
        assert [d["document_id"] for d in mine["documents"]] == [document_id], "nothing was changed or deleted"
        assert "mallory" not in client.get(f"/v1/letters/{lid}/audit", headers=anna).text
    finally:
        app.state.event_app.close()


# ------------------------------------------------------------------------------------------------ claim checks


def _claim_checked(store: MemoryStore, account: str) -> tuple[dict[str, Any], bytes]:
    """A big envelope of ``account`` put through the claim check: the wire header and the stored body."""
    import json

    from smartpost_shared.messaging import ClaimCheck

    payload = LetterItemsRevoked(letter_id="L", item_ids=[f"i-{n}" for n in range(50)], reason="x" * 500, actor="a")
    envelope = make_envelope(payload, account_id=account, producer="letters")
    body = envelope.to_bytes()
    header = json.loads(ClaimCheck(store, threshold=100).outgoing(body))
    assert "payload_ref" in header
    return header, body


def test_a_claim_check_cannot_point_at_another_accounts_event_body() -> None:
    # Before: a header of account A whose payload_ref named B's stored event (key and sha256 are on the wire for
    # anyone who reads the topic) handed B's envelope to the consumer as the message of A.
    from smartpost_shared.messaging import ClaimCheck, PermanentError

    store = MemoryStore()
    victim_header, _ = _claim_checked(store, "acc-victim")
    mine, _ = _claim_checked(store, "acc-mine")
    assert ClaimCheck(store).incoming(mine)  # the genuine one resolves
    pointed = {**mine, "event_id": victim_header["event_id"], "payload_ref": victim_header["payload_ref"]}
    with pytest.raises(PermanentError):
        ClaimCheck(store).incoming(pointed)
    sneaky = {
        **pointed,
        "payload_ref": {
            **victim_header["payload_ref"],
            "key": "accounts/acc-mine/../acc-victim/" + victim_header["payload_ref"]["key"].split("/", 2)[2],
        },
    }
    with pytest.raises(PermanentError):
        ClaimCheck(store).incoming(sneaky)


def test_a_tampered_claim_check_object_is_refused() -> None:
    from smartpost_shared.messaging import ClaimCheck, PermanentError

    store = MemoryStore()
    header, body = _claim_checked(store, "acc-mine")
    store.put(header["payload_ref"]["key"], body.replace(b'"reason":"x', b'"reason":"y'))
    with pytest.raises(PermanentError, match="sha256"):
        ClaimCheck(store).incoming(header)


async def test_the_splitter_proposal_api_reads_nothing_unproven_or_oversized() -> None:
    # Before: POST /split-proposals (new in main) had no body limit middleware: a declared 600 MB body from a proven
    # caller was streamed to disk up to 512 MB before the 413.
    from smartpost_shared.settings import StorageSettings
    from smartpost_splitter.api import PROPOSAL_MAX_BYTES
    from smartpost_splitter.app import create_app
    from smartpost_splitter.settings import Settings

    work = tempfile.mkdtemp(prefix="red-splitter-")
    storage = StorageSettings(secret_key=SecretStr("unused-in-this-test"))
    app = create_app(Settings(text_processes=1, log_json=False, work_dir=work, storage=storage))
    try:
        big = {"host": "splitter", "content-type": "application/pdf", "content-length": str(PROPOSAL_MAX_BYTES + 1)}
        assert await _first_answer(app, "/split-proposals", big) == 401
        other_service = {**big, **caller_headers("acc-1", audience="letters")}
        assert await _first_answer(app, "/split-proposals", other_service) == 401
        proven = {**big, **caller_headers("acc-1", audience="splitter")}
        assert await _first_answer(app, "/split-proposals", proven) == 413
    finally:
        app.state.sandbox.close()


def test_ids_in_gateway_addresses_cannot_steer_which_service_route_is_called() -> None:
    # Before: a "?" (or "#") or a ".." in a path id cut or climbed the service path, so a "prepare"-only user reached
    # letters routes the gateway reserves for "release": removing a "document" of letter "<id>?" sent
    # DELETE /v1/letters/<id> (deleting a released letter revokes it in the portal); "..?" reached GET /v1.
    with _gateway() as client:
        token = _staff_login(client, "mallory@hv2.de")  # role "prepare" only
        calls: list[str] = client.app.state.red_team_calls
        crafted = [
            "/serienbriefe/L-1%3F/dokumente/d-1/entfernen",
            "/serienbriefe/L-1%23/dokumente/d-1/entfernen",
            "/serienbriefe/L-1%252Frelease%3F/aufteilen",
            "/serienbriefe/L-1/dokumente/..%3F/entfernen",
            "/serienbriefe/L-1/dokumente/%2e%2e/regel",
            "/serienbriefe/L-1/teile/p%5C..%5Cx/verwerfen",
        ]
        page = "GET /v1/letters/L-1"  # the letter page shown with the refusal is fine; nothing else may be called
        for path in crafted:
            calls.clear()
            client.post(path, data={"csrf_token": token}, follow_redirects=False)
            assert [c for c in calls if c != page] == [], f"{path} reached {calls}"
        for path in ("/serienbriefe/L-1/teile/x%3F/pdf", "/serienbriefe/..%3F/teile/x/pdf"):
            calls.clear()
            client.get(path, follow_redirects=False)
            assert calls == [], f"{path} reached {calls}"
        calls.clear()
        client.post("/serienbriefe/L-1/dokumente/d-1/entfernen", data={"csrf_token": token}, follow_redirects=False)
        assert "DELETE /v1/letters/L-1/documents/d-1" in calls, "a plain id still reaches its route"


# ------------------------------------------------------------------------------------------------ privacy (GDPR)


def test_a_personal_data_export_needs_the_admin_role_in_every_service(portal: Portal) -> None:
    # Before: erasure needed "admin" in the caller's claims, but GET /internal/contacts/<id>/personal-data (a
    # contact's full record, in letters also the letters' contents) answered any verified caller of the account.
    portal.bearer("c-anna", "anna@example.org")
    path = "/internal/contacts/c-anna/personal-data"
    for roles in ((), ("prepare", "release")):
        plain = caller_headers(portal.account, "erp", audience="portal-publisher", roles=roles)
        assert portal.client.get(path, headers=plain).status_code == 403, roles
        records = portal.client.get("/internal/contacts/c-anna/erasures", headers=plain)
        assert records.status_code == 403, roles
    admin = caller_headers(portal.account, "chef@hv.de", audience="portal-publisher", roles=["admin"])
    answer = portal.client.get(path, headers=admin)
    assert answer.status_code == 200
    assert answer.json()["Daten"], "the admin gets the contact's data"
    stranger = caller_headers("acct-stranger", "chef@other.de", audience="portal-publisher", roles=["admin"])
    assert not portal.client.get(path, headers=stranger).json()["Daten"], "another account's admin gets nothing"
