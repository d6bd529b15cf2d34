"""End to end through ALL services as real processes over real tansu, SeaweedFS and aiosmtpd.

A cross-property serial letter (owners of two properties, one owner with units in both) goes from a generated
PDF through split, assignment, staff review, release to the portal (read back as two recipients), immediate
e-mails (read back from the SMTP server's Maildir) and paper dispatch at a hybrid-mail HTTP provider.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from smartpost_shared.demo import CONTACTS, CONTRACTS, Report, Walkthrough, account_mails, owner_letters
from smartpost_shared.localrun import DEMO_ENV, SERVICES, LocalSystem, free_ports_for

if TYPE_CHECKING:
    from collections.abc import Iterator

    from smartpost_shared.devstack import Stack

pytestmark = [pytest.mark.real, pytest.mark.slow]

# Its own account: the session's broker and SMTP server are shared with other end-to-end tests (whose fresh consumer
# groups read the topics from the beginning), so only this account's mails count.
ACCOUNT = f"e2e-{uuid.uuid4().hex[:8]}"


def _staff_users_of(account: str) -> str:
    """The demo's staff logins (anna, ben, clara), moved to this module's account."""
    users = json.loads(DEMO_ENV["SMARTPOST_GATEWAY_STAFF_USERS"])
    return json.dumps({login: {**user, "account_id": account} for login, user in users.items()})


@pytest.fixture(scope="module")
def system(stack: Stack) -> Iterator[LocalSystem]:
    data = Path(tempfile.mkdtemp(prefix="smartpost-e2e-"))
    local = LocalSystem(stack, data, ports=free_ports_for(list(SERVICES)), group_tag=f"e2e-{data.name}")
    local.extra_env = {
        "SMARTPOST_NOTIFIER_IMMEDIATE_DELAY_SECONDS": "1",
        "SMARTPOST_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "SMARTPOST_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
        # staff logins of the demo (the data-protection test logs in as an admin)
        "SMARTPOST_GATEWAY_STAFF_USERS": _staff_users_of(ACCOUNT),
    }
    try:
        local.start_all()
        yield local
    finally:
        local.stop_all()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def demo(system: LocalSystem, stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> tuple[Walkthrough, Report]:
    """The demo walkthrough, run once per module (the metrics test reads what it left behind)."""
    urls = {name: system.url(name) for name in SERVICES if name in system.ports}
    walk = Walkthrough(urls, stack.maildir, stack, account=ACCOUNT, timeout=90)
    return walk, walk.run(tmp_path_factory.mktemp("demo"))


def test_serial_letter_from_pdf_to_portal_email_and_paper(
    system: LocalSystem, stack: Stack, demo: tuple[Walkthrough, Report]
) -> None:
    walk, report = demo

    # Split: one individual letter per owner contract (plus one for an unknown person), none merged, none lost.
    expected_letters = owner_letters()
    assert report.parts == len(expected_letters)
    # The letter for someone missing from master data is never assigned; staff discard it in the review.
    known = {c["contact_id"] for c in CONTACTS}
    assert report.discarded == sum(1 for r in expected_letters if r.contact_id not in known) == 1
    # Assignment: no wrong automatic assignment; everything else went through review.
    truth = [r.contact_id for r in expected_letters]
    known_truth = [c for c in truth if c in known]
    assert [a["contact_id"] for a in report.assignments if a["status"] == "assigned"] == [
        c for c, a in zip(truth, report.assignments, strict=True) if a["status"] == "assigned"
    ]
    assert report.auto_assigned + report.needs_review == report.parts
    assert report.auto_assigned >= len(known_truth) - 2
    letter = walk._ok(walk.http.get(walk._url("letters", f"/letters/{report.letter_id}")))
    items = letter["items"]
    assert sorted(i["contact_id"] for i in items) == sorted(known_truth)
    # Property and unit per letter come from the contract of that letter's unit (cross-property owner included).
    owner_units = sorted((c["contact_id"], c["unit_id"]) for c in CONTRACTS if c["role"] == "owner")
    assert sorted((i["contact_id"], i["unit_id"]) for i in items) == owner_units
    assert report.state_after_release == "released"

    # Portal: each recipient sees exactly their own letter.
    assert len(report.portal["C-1001"]) == 1
    assert "Lindenstraße" in report.portal["C-1001"][0]
    assert len(report.portal["C-1003"]) == 1
    assert "Parkallee" in report.portal["C-1003"][0]
    assert report.downloaded_bytes > 10_000

    # E-mail: exactly one immediate mail per registered owner with an address, none for the others.
    mails = account_mails(stack.maildir, walk.account)
    recipients = Counter(str(m["To"]) for m in mails)
    contacts = {c["contact_id"]: c for c in CONTACTS}
    owners = {c["contact_id"] for c in CONTRACTS if c["role"] == "owner"}
    for cid in owners:
        email = contacts[cid]["email"]
        sent = sum(n for to, n in recipients.items() if email and email in to)
        if contacts[cid]["portal_registered"] and email:
            assert sent == 1, f"{cid} got {sent} mails"
        else:
            assert sent == 0
    for mail in mails:
        assert not mail.is_multipart() or all(part.get_content_disposition() != "attachment" for part in mail.walk()), (
            "notification mails carry no attachment"
        )

    # Paper: only contacts who prefer post, one envelope per contact (C-1004's two units in one envelope).
    post_contacts = sorted(c["contact_id"] for c in CONTACTS if c["channel_preference"] == "post")
    assert sorted(p["contact_id"] for p in report.mailpieces) == post_contacts
    assert all(p["status"] in {"submitted", "printing", "sent", "delivered"} for p in report.mailpieces)
    # The estimate before the order is what was sent (cover pages included).
    assert report.estimate["totals"]["sheets"] == sum(p["sheets"] for p in report.mailpieces)
    assert report.estimate["totals"]["cost_cents"] == sum(p["cost_cents"] for p in report.mailpieces)
    provider = httpx.get(f"{system.provider_url}/_control/letters", timeout=10).json()
    provider_letters = provider if isinstance(provider, list) else provider.get("letters", [])
    ours = {str(p["mailpiece_id"]) for p in report.mailpieces}
    at_provider = Counter(str(p["reference"]) for p in provider_letters if str(p.get("reference")) in ours)
    assert at_provider == dict.fromkeys(ours, 1), f"exactly one paper letter per mailpiece: {at_provider}"

    # Audit: the letter's history names who did what.
    audit = walk._ok(walk.http.get(walk._url("letters", f"/letters/{report.letter_id}/audit")))
    entries = audit.get("entries", audit) if isinstance(audit, dict) else audit
    assert any("anna@hv-muster.de" in str(e) for e in entries)


def test_another_account_sees_nothing_of_the_demo_letter(system: LocalSystem) -> None:
    foreign = httpx.Client(
        base_url=system.url("letters"),
        headers=system.stack.caller_headers("other", "x@y.z", audience="letters", roles=("prepare",)),
    )
    listing = foreign.get("/v1/letters").json()
    assert listing.get("letters", listing.get("items", [])) == []


def _metrics(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    from prometheus_client.parser import text_string_to_metric_families

    response = httpx.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 200
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def _total(values: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for ls, v in values.get(name, []) if all(ls.get(k) == want for k, want in labels.items()))


def test_metrics_of_every_service_show_the_demo(system: LocalSystem, demo: tuple[Walkthrough, Report]) -> None:
    """After the demo, /metrics on every service shows its numbers (the operations dashboard reads these)."""
    _, report = demo
    httpx.get(f"{system.url('gateway')}/healthz", timeout=10)
    m = {name: _metrics(system.url(name)) for name in SERVICES if name in system.ports}
    assert set(m) == set(SERVICES)
    for name, values in m.items():
        sources = values.get("smartpost_metrics_source_up", [])
        assert all(v == 1.0 for _, v in sources), f"{name}: a metrics source is down: {sources}"
        assert _total(values, "smartpost_http_request_duration_seconds_count", service=name) >= 1, name
    for name in ("letters", "splitter", "assignment", "portal-publisher", "notifier", "print-dispatch"):
        lag = m[name].get("smartpost_consumer_lag", [])
        assert lag, f"{name}: consumer lag per group and partition"
        assert all("partition" in ls and "group" in ls for ls, _ in lag)
        assert "smartpost_dead_letter_topic_messages" in m[name]
    for name in ("letters", "assignment", "portal-publisher", "notifier", "print-dispatch"):
        assert "smartpost_outbox_backlog" in m[name], name
        assert "smartpost_outbox_oldest_age_seconds" in m[name], name
    # letters by state (the demo letter was released and ordered on paper), with waiting time per state
    letters = m["letters"]
    assert (
        _total(letters, "smartpost_letters", state="print_ordered")
        + _total(letters, "smartpost_letters", state="released")
        >= 1
    )
    assert "smartpost_letters_oldest_waiting_seconds" in letters
    # split pages and seconds
    assert _total(m["splitter"], "smartpost_split_pages_total", outcome="split") >= report.pages
    assert _total(m["splitter"], "smartpost_split_seconds_count", outcome="split") >= 1
    # assignments automatic / review
    assignment = m["assignment"]
    assert _total(assignment, "smartpost_assignment_parts", method="auto") >= report.auto_assigned
    # mails sent, mailpieces by status
    assert _total(m["notifier"], "smartpost_mails", kind="immediate", status="sent") >= 3
    assert "smartpost_mails_deferred" in m["notifier"]
    pieces = m["print-dispatch"].get("smartpost_mailpieces", [])
    assert sum(v for _, v in pieces) >= len(report.mailpieces) >= 1
    # the single-owner work of each service runs in exactly one process (one replica here)
    for name in ("letters", "notifier", "print-dispatch"):
        assert _total(m[name], "smartpost_lease_held") >= 1, name


def _gateway_login(client: httpx.Client, login: str) -> str:
    import re

    response = client.post("/login", data={"login": login, "password": "demo-passwort-1"})
    assert response.status_code == 200, response.text
    match = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
    assert match
    return match.group(1)


def test_gdpr_erasure_of_one_contact_in_every_service_and_the_export(  # noqa: PLR0915 - one scenario
    system: LocalSystem, stack: Stack, demo: tuple[Walkthrough, Report]
) -> None:
    """Runs last: erases Jürgen Weiß (two letters, portal, e-mail, paper) after the demo; the others stay."""
    import json
    import time

    from pydantic import SecretStr

    from smartpost_shared.settings import StorageSettings
    from smartpost_shared.storage import MinioStore

    walk, report = demo
    victim, other = "C-1004", "C-1001"
    secrets = ("Weiß", "j.weiss@example.org", "Am Markt 2", "04109", "K-004714")
    gateway = httpx.Client(base_url=system.url("gateway"), timeout=60, follow_redirects=True)
    csrf = _gateway_login(gateway, "clara@hv-muster.de")

    def export(contact: str) -> dict:
        response = gateway.get(f"/admin/privacy/contacts/{contact}/export")
        assert response.status_code == 200, response.text
        return response.json()

    def pdfs(contact: str) -> list[str]:
        import io
        import zipfile

        response = gateway.get(f"/admin/privacy/contacts/{contact}/export", params={"format": "zip"})
        assert response.status_code == 200, response.text
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            return [
                "pdf" if archive.read(name).startswith(b"%PDF") else name
                for name in archive.namelist()
                if name == "auskunft.json" or name.endswith(".pdf")
            ]

    before = export(victim)
    assert before["Nicht erreichbare Dienste"] == {}
    assert set(before["Gespeicherte Daten"]) == {
        "Stammdaten und Zuordnung",
        "Serienbriefe",
        "Kundenportal",
        "E-Mail-Benachrichtigungen",
        "Briefversand",
    }
    assert all(s in json.dumps(before, ensure_ascii=False) for s in ("Weiß", "j.weiss@example.org", "Am Markt 2"))
    assert sorted(pdfs(victim)) == ["auskunft.json", "pdf", "pdf"]  # his two letters as PDF in the ZIP
    other_before = export(other)["Gespeicherte Daten"]
    letter = walk._ok(walk.http.get(walk._url("letters", f"/letters/{report.letter_id}")))
    victim_parts = [i["storage_key"] for i in letter["items"] if i["contact_id"] == victim and i.get("storage_key")]
    other_parts = [i["storage_key"] for i in letter["items"] if i["contact_id"] == other and i.get("storage_key")]

    # Only an admin, only the own account: staff without the role, and an admin of another account, are refused.
    anna = httpx.Client(base_url=system.url("gateway"), timeout=30, follow_redirects=True)
    anna_csrf = _gateway_login(anna, "anna@hv-muster.de")
    refused = anna.post(f"/admin/privacy/contacts/{victim}/erasure", json={}, headers={"X-CSRF-Token": anna_csrf})
    assert refused.status_code == 403
    foreign = httpx.post(
        f"{system.url('assignment')}/internal/contacts/{victim}/erasure",
        json={"reason": "fremd"},
        headers=stack.caller_headers("other-account", "x@y.z", audience="assignment", roles=("admin",)),
        timeout=30,
    )
    assert foreign.status_code == 404
    no_role = httpx.post(
        f"{system.url('assignment')}/internal/contacts/{victim}/erasure",
        json={},
        headers=stack.caller_headers(ACCOUNT, "x@y.z", audience="assignment"),
        timeout=30,
    )
    assert no_role.status_code == 403

    started = time.monotonic()
    asked = gateway.post(
        f"/admin/privacy/contacts/{victim}/erasure",
        json={"reason": "Antrag nach Art. 17 DSGVO"},
        headers={"X-CSRF-Token": csrf},
    )
    assert asked.status_code == 202, asked.text
    erasure_id = asked.json()["erasure_id"]
    status: dict = {}
    while time.monotonic() - started < 60:
        status = gateway.get(f"/admin/privacy/contacts/{victim}/erasure", params={"erasure_id": erasure_id}).json()
        if status["abgeschlossen"]:
            break
        time.sleep(0.5)
    assert status["abgeschlossen"], status
    counts = {name: s["anzahl"] for name, s in status["dienste"].items()}
    assert counts["assignment"]["stammdaten_kontakt"] == 1
    assert counts["letters"]["einzelbriefe"] == 2  # his two letters (two units)
    assert counts["portal-publisher"]["portal_dokumente"] == 2
    assert counts["notifier"]["mails"] >= 1
    assert counts["print-dispatch"]["sendungen"] == 1

    after = export(victim)
    text = json.dumps(after, ensure_ascii=False)
    for secret in secrets:
        assert secret not in text, secret
    # Left: which letters went to this contact id (assignment rows, evidence erased) and the paper dispatch the
    # provider already has (ids, tracking, postage; no address), kept by law.
    assert set(after["Gespeicherte Daten"]) == {"Stammdaten und Zuordnung", "Briefversand"}
    kept = after["Gespeicherte Daten"]["Stammdaten und Zuordnung"]
    assert set(kept) == {"Zuordnungen"}
    assert len(kept["Zuordnungen"]) == 2
    assert all(a["Belege"] in ([], ["[gelöscht]"]) for a in kept["Zuordnungen"])
    pieces = after["Gespeicherte Daten"]["Briefversand"]["Briefsendungen"]
    assert [p["Anschrift"] for p in pieces] == [[]]
    assert len(after["Durchgeführte Löschungen"]) == 5
    assert pdfs(victim) == ["auskunft.json"]
    # The letter still loads; his items keep their ids, the part PDFs are gone, everyone else's are there.
    letter_after = walk._ok(walk.http.get(walk._url("letters", f"/letters/{report.letter_id}")))
    assert sorted(i["contact_id"] for i in letter_after["items"]) == sorted(i["contact_id"] for i in letter["items"])
    store = MinioStore(StorageSettings(endpoint=stack.s3_endpoint, secret_key=SecretStr(stack.s3_secret_key)))
    assert victim_parts
    assert other_parts
    assert not any(store.exists(key) for key in victim_parts)
    assert all(store.exists(key) for key in other_parts)
    # Everybody else is untouched.
    assert export(other)["Gespeicherte Daten"] == other_before
    audit = gateway.get("/admin/privacy/audit").json()["entries"]
    mine = [(e["action"], e["actor"]) for e in audit if e["contact_id"] == victim]
    assert [action for action, _ in mine] == ["export", "export", "erasure_requested", "export", "export"]
    assert {actor for _, actor in mine} == {"clara@hv-muster.de"}
