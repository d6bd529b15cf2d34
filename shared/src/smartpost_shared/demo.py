"""The SmartPost walkthrough: one generated serial letter from PDF to portal, e-mail and paper.

Run against a running local system (``python -m smartpost_shared.localrun up``):

    python -m smartpost_shared.demo

It talks only to the services' public APIs (as the gateway and an ERP connector would) and prints what happened.
The end-to-end test (``tests/e2e/test_pipeline_e2e.py``) runs the same walkthrough and asserts on its report.
"""

from __future__ import annotations

import argparse
import json
import mailbox
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import httpx

from smartpost_shared.devstack import Stack
from smartpost_shared.sample_letters import SampleRecipient, write_serial_letter

DEMO_ACCOUNT = "demo"
ACTOR = "anna@hv-muster.de"
# The walkthrough prepares and releases (no four-eyes account): it claims exactly those staff roles.
STAFF_ROLES = ("prepare", "release")

PROPERTIES = [
    {
        "property_id": "P-LIND",
        "reference": "WEG-0815",
        "name": "WEG Lindenstraße 12",
        "street": "Lindenstraße 12",
        "postal_code": "10115",
        "city": "Berlin",
    },
    {
        "property_id": "P-PARK",
        "reference": "WEG-0923",
        "name": "WEG Parkallee 7",
        "street": "Parkallee 7",
        "postal_code": "20144",
        "city": "Hamburg",
    },
]
UNITS = [
    {"unit_id": "U-LIND-01", "property_id": "P-LIND", "number": "WE 01", "position": "EG links"},
    {"unit_id": "U-LIND-02", "property_id": "P-LIND", "number": "WE 02", "position": "EG rechts"},
    {"unit_id": "U-LIND-03", "property_id": "P-LIND", "number": "WE 03", "position": "1. OG links"},
    {"unit_id": "U-PARK-01", "property_id": "P-PARK", "number": "WE 01", "position": "EG"},
    {"unit_id": "U-PARK-02", "property_id": "P-PARK", "number": "WE 02", "position": "1. OG"},
]


_CONTACT_COLUMNS = (
    "contact_id",
    "reference_id",
    "salutation",
    "first_name",
    "last_name",
    "street",
    "postal_code",
    "city",
    "email",
    "channel_preference",
    "portal_registered",
)
_CONTACT_ROWS: list[tuple[str | bool | None, ...]] = [
    (
        "C-1001",
        "K-004711",
        "Herrn",
        "Hans",
        "Müller",
        "Lindenstraße 12",
        "10115",
        "Berlin",
        "hans.mueller@example.org",
        "online",
        True,
    ),
    ("C-1002", "K-004712", "Frau", "Anna", "Schmidt", "Gartenweg 3", "14467", "Potsdam", None, "post", False),
    (
        "C-1003",
        "K-004713",
        "Frau",
        "Leyla",
        "Öztürk",
        "Parkallee 7",
        "20144",
        "Hamburg",
        "leyla.oeztuerk@example.org",
        "online",
        True,
    ),
    (
        "C-1004",
        "K-004714",
        "Herrn",
        "Jürgen",
        "Weiß",
        "Am Markt 2",
        "04109",
        "Leipzig",
        "j.weiss@example.org",
        "post",
        True,
    ),
    (
        "C-1005",
        "K-004715",
        "Frau",
        "Marie",
        "Lefèvre",
        "Parkallee 7",
        "20144",
        "Hamburg",
        "marie.lefevre@example.org",
        "online",
        False,
    ),
    (
        "C-1006",
        "K-004716",
        "Herrn",
        "Tobias",
        "Klein",
        "Lindenstraße 12",
        "10115",
        "Berlin",
        "tobias.klein@example.org",
        "online",
        True,
    ),
]


def _contact(row: tuple[str | bool | None, ...]) -> dict[str, Any]:
    data: dict[str, Any] = dict(zip(_CONTACT_COLUMNS, row, strict=True))
    data["address"] = {k: data.pop(k) for k in ("street", "postal_code", "city")}
    return data


CONTACTS = [_contact(row) for row in _CONTACT_ROWS]
CONTRACTS = [
    {"contract_id": "V-1", "contact_id": "C-1001", "unit_id": "U-LIND-01", "role": "owner", "start": "2019-01-01"},
    {"contract_id": "V-2", "contact_id": "C-1002", "unit_id": "U-LIND-02", "role": "owner", "start": "2021-07-01"},
    {"contract_id": "V-3", "contact_id": "C-1004", "unit_id": "U-LIND-03", "role": "owner", "start": "2015-05-01"},
    # Jürgen Weiß owns units in both properties: cross-property letters resolve by the reference on the page.
    {"contract_id": "V-4", "contact_id": "C-1004", "unit_id": "U-PARK-02", "role": "owner", "start": "2018-03-01"},
    {"contract_id": "V-5", "contact_id": "C-1003", "unit_id": "U-PARK-01", "role": "owner", "start": "2020-10-01"},
    {"contract_id": "V-6", "contact_id": "C-1005", "unit_id": "U-PARK-02", "role": "tenant", "start": "2022-02-01"},
    {"contract_id": "V-7", "contact_id": "C-1006", "unit_id": "U-LIND-01", "role": "tenant", "start": "2023-04-01"},
]


def demo_masterdata() -> dict[str, Any]:
    """The demo account as an ERP would export it (the assignment service's JSON import format)."""
    return {"properties": PROPERTIES, "units": UNITS, "contacts": CONTACTS, "contracts": CONTRACTS}


def owner_letters() -> list[SampleRecipient]:
    """One annual statement per owner contract, as the ERP would print them (address, Kontakt-Nr., Objekt, Einheit)."""
    props = {p["property_id"]: p for p in PROPERTIES}
    units = {u["unit_id"]: u for u in UNITS}
    contacts = {c["contact_id"]: c for c in CONTACTS}
    letters = []
    for contract in CONTRACTS:
        if contract["role"] != "owner":
            continue
        c, u = contacts[contract["contact_id"]], units[contract["unit_id"]]
        p = props[u["property_id"]]
        letters.append(
            SampleRecipient(
                contact_id=c["contact_id"],
                reference_id=c["reference_id"],
                address_lines=[
                    f"{c['salutation']} {c['first_name']} {c['last_name']}",
                    c["address"]["street"],
                    f"{c['address']['postal_code']} {c['address']['city']}",
                ],
                property_ref=f"{p['reference']} {p['street']}",
                unit_ref=f"{u['number']} ({u['position']})",
                salutation_line=("Sehr geehrter Herr" if c["salutation"] == "Herrn" else "Sehr geehrte Frau")
                + f" {c['last_name']},",
            )
        )
    # The ERP export also holds a letter for someone who is not (yet) in SmartPost's master data: it must never be
    # assigned automatically; staff see it in the review and discard it.
    letters.append(
        SampleRecipient(
            contact_id="UNKNOWN",
            reference_id="K-009999",
            address_lines=["Herrn Karl Unbekannt", "Nirgendweg 1", "99999 Irgendwo"],
            property_ref="WEG-0815 Lindenstraße 12",
            unit_ref="WE 09 (DG)",
            salutation_line="Sehr geehrter Herr Unbekannt,",
        )
    )
    return letters


@dataclass
class Report:
    """What the walkthrough observed (printed by the CLI, asserted by the end-to-end test)."""

    letter_id: str = ""
    pages: int = 0
    parts: int = 0
    auto_assigned: int = 0
    needs_review: int = 0
    manually_assigned: int = 0
    discarded: int = 0
    assignments: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    state_after_release: str = ""
    portal: dict[str, list[str]] = field(default_factory=dict)
    downloaded_bytes: int = 0
    mails: list[dict[str, str]] = field(default_factory=list)
    mailpieces: list[dict[str, Any]] = field(default_factory=list)
    estimate: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


_MAILPIECE_FIELDS = ("mailpiece_id", "contact_id", "status", "sheets", "letter_class", "cost_cents", "provider_ref")


class Walkthrough:
    def __init__(
        self,
        urls: dict[str, str],
        maildir: Path,
        stack: Stack,
        account: str = DEMO_ACCOUNT,
        timeout: float = 90,
    ) -> None:
        self.urls = urls
        self.maildir = maildir
        self.account = account
        self.timeout = timeout
        services_by_origin = {url.rstrip("/"): name for name, url in urls.items()}

        def prove_caller(request: httpx.Request) -> None:
            # Every call carries claims signed with the stack's "tools" key, for the one service it goes to.
            audience = services_by_origin.get(f"{request.url.scheme}://{request.url.netloc.decode()}")
            if audience is not None:
                # The master-data import needs the importer's role (smartpost_shared.roles), claimed only for it.
                roles = (*STAFF_ROLES, "import") if request.url.path == "/imports" else STAFF_ROLES
                request.headers.update(stack.caller_headers(account, ACTOR, audience=audience, roles=roles))

        self.http = httpx.Client(timeout=30, event_hooks={"request": [prove_caller]})
        self.report = Report()
        # Data stays in var/ between runs: only what this run publishes and sends counts as its result.
        self.started_at = datetime.now(UTC)
        self.mails_before: set[str] = set()

    # -- helpers -----------------------------------------------------------------------------------------------
    def _url(self, service: str, path: str) -> str:
        version = "/v1" if service == "letters" else ""
        return self.urls[service].rstrip("/") + version + path

    def _ok(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            msg = f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text[:500]}"
            raise RuntimeError(msg)
        return response.json() if response.content else None

    def _poll(self, what: str, probe: Any, timeout: float | None = None) -> Any:
        deadline = time.monotonic() + (timeout or self.timeout)
        last: Any = None
        while time.monotonic() < deadline:
            last = probe()
            if last:
                return last
            time.sleep(0.3)
        msg = f"timed out waiting for {what} (last: {str(last)[:300]})"
        raise TimeoutError(msg)

    def _step(self, name: str, started: float) -> None:
        self.report.timings[name] = round(time.monotonic() - started, 2)

    # -- steps -------------------------------------------------------------------------------------------------
    def load_master_data(self) -> None:
        t = time.monotonic()
        body = json.dumps(demo_masterdata()).encode()
        self._ok(
            self.http.post(self._url("assignment", "/imports"), files={"file": ("demo.json", body, "application/json")})
        )

        def all_known() -> bool:
            r = self.http.get(self._url("assignment", "/contacts"), params={"q": "", "limit": 100})
            return r.status_code == 200 and len(_items(r.json())) >= len(CONTACTS)

        self._poll("master data in the assignment service", all_known)
        self._step("master data", t)

    def document_type(self) -> str:
        tree = self._ok(self.http.get(self._url("letters", "/document-types")))
        found = _find_node(tree, ["Abrechnungen", "Jahresabrechnung"])
        if found:
            return found
        parent = _find_node(tree, ["Abrechnungen"])
        if parent is None:
            tree = self._ok(self.http.post(self._url("letters", "/document-types"), json={"name": "Abrechnungen"}))
            parent = _find_node(tree, ["Abrechnungen"])
        tree = self._ok(
            self.http.post(
                self._url("letters", "/document-types"), json={"name": "Jahresabrechnung", "parent_id": parent}
            )
        )
        node = _find_node(tree, ["Abrechnungen", "Jahresabrechnung"])
        assert node is not None
        return node

    def create_and_split(self, pdf: Path) -> dict[str, Any]:
        t = time.monotonic()
        letter = self._ok(
            self.http.post(
                self._url("letters", "/letters"),
                json={
                    "title": "Jahresabrechnung 2025",
                    "document_type_id": self.document_type(),
                    "recipient_groups": ["owners"],
                    "scope": "cross_property",
                    "letter_date": datetime.now(UTC).date().isoformat(),
                },
            )
        )
        letter_id = letter["letter_id"]
        self.report.letter_id = letter_id
        letter = self._ok(
            self.http.post(
                self._url("letters", f"/letters/{letter_id}/documents"),
                files={"file": (pdf.name, pdf.read_bytes(), "application/pdf")},
            )
        )
        document_id = letter["documents"][0]["document_id"]
        self._ok(
            self.http.patch(
                self._url("letters", f"/letters/{letter_id}/documents/{document_id}"),
                # Every letter's first page says "Seite 1 von N": robust even when one owner gets two letters
                # in a row (two units), where an identifier-change rule would merge them.
                json={"role": "split", "rule": {"strategy": "first_page", "first_page_text": "Seite 1 von"}},
            )
        )
        self._ok(self.http.post(self._url("letters", f"/letters/{letter_id}/split"), json={}))

        def assigned() -> dict[str, Any] | None:
            current = self._ok(self.http.get(self._url("letters", f"/letters/{letter_id}")))
            docs = current["documents"]
            if any(d.get("failure") for d in docs):
                msg = f"split failed: {docs[0]['failure']}"
                raise RuntimeError(msg)
            parts = [p for d in docs for p in d["parts"]]
            if parts and all(p["assignment"] is not None for p in parts):
                return dict(current)
            return None

        current: dict[str, Any] = self._poll("split and assignment", assigned)
        self._step("split + assign", t)
        parts = [p for d in current["documents"] for p in d["parts"]]
        self.report.pages = sum(p["page_count"] for p in parts)
        self.report.parts = len(parts)
        for part in parts:
            a = part["assignment"]
            self.report.assignments.append(
                {
                    "part": f"S. {part['first_page']}-{part['last_page']}",
                    "contact_id": a["contact_id"],
                    "property_id": a["property_id"],
                    "unit_id": a["unit_id"],
                    "status": a["status"],
                    "method": a["method"],
                    "score": a["score"],
                }
            )
        self.report.auto_assigned = sum(1 for p in parts if p["assignment"]["status"] == "assigned")
        self.report.needs_review = len(parts) - self.report.auto_assigned
        self.report.warnings = [w["message"] for d in current["documents"] for w in d.get("warnings", [])]
        return current

    def review(self, letter: dict[str, Any]) -> None:
        """Staff review: what the service could not assign is decided by a person.

        A part without any candidate (recipient not in master data) is discarded; one that needs review gets the
        candidate staff pick (here: the best-ranked one).
        """
        letter_id = self.report.letter_id
        for part in (p for d in letter["documents"] for p in d["parts"]):
            assignment = part["assignment"]
            if assignment["status"] == "assigned":
                continue
            if not assignment["candidates"]:
                self._ok(self.http.post(self._url("letters", f"/letters/{letter_id}/parts/{part['part_id']}/discard")))
                self.report.discarded += 1
                continue
            best = assignment["candidates"][0]
            self._ok(
                self.http.post(
                    self._url("letters", f"/letters/{letter_id}/parts/{part['part_id']}/reassign"),
                    json={k: best.get(k) for k in ("contact_id", "property_id", "unit_id")},
                )
            )
            self.report.manually_assigned += 1

    def release(self) -> None:
        t = time.monotonic()
        letter_id = self.report.letter_id
        self._ok(self.http.post(self._url("letters", f"/letters/{letter_id}/review/confirm"), json={}))
        released = self._ok(
            self.http.post(self._url("letters", f"/letters/{letter_id}/release"), json={"notify_by_email": True})
        )
        self.report.state_after_release = released["status"]
        self._step("release", t)

    def read_portal(self, contact_ids: list[str]) -> None:
        t = time.monotonic()
        portal = self.urls["portal-publisher"]
        for contact_id in contact_ids:
            invitation = self._poll(
                f"portal invitation for {contact_id}",
                lambda cid=contact_id: _json_if_ok(
                    self.http.post(f"{portal}/internal/invitations", json={"contact_id": cid})
                ),
            )
            session = self._ok(
                httpx.post(
                    f"{portal}/portal/invitations/redeem",
                    json={
                        "code": invitation["code"],
                        "login": f"{contact_id.lower()}@demo.example",
                        "password": "ein-langes-demo-passwort",
                    },
                )
            )
            auth = {"Authorization": f"Bearer {session['token']}"}

            def documents(headers: dict[str, str] = auth) -> list[dict[str, Any]]:
                r = httpx.get(f"{portal}/portal/documents", headers=headers)
                docs = _items(r.json()) if r.status_code == 200 else []
                return [d for d in docs if datetime.fromisoformat(d["published_at"]) >= self.started_at]

            docs = self._poll(f"documents in {contact_id}'s portal inbox", documents)
            self.report.portal[contact_id] = [
                f"{d['title']} · {' / '.join(d.get('folder', []))} · {d.get('property_name') or ''} "
                f"{d.get('unit_number') or ''}".strip()
                for d in docs
            ]
            content = httpx.get(f"{portal}/portal/documents/{docs[0]['document_id']}/content", headers=auth)
            if content.status_code != 200 or not content.content.startswith(b"%PDF"):
                msg = f"download failed for {contact_id}: {content.status_code}"
                raise RuntimeError(msg)
            self.report.downloaded_bytes += len(content.content)
        self._step("portal", t)

    def read_mail(self, addresses: set[str]) -> None:
        """Wait for the immediate e-mails (one per registered recipient with an address) in the SMTP Maildir."""
        t = time.monotonic()
        self.report.mails = self._poll(
            "immediate e-mails in the SMTP server's Maildir", lambda: self.new_mails_to(addresses), timeout=60
        )
        self._step("e-mail", t)

    def new_mails_to(self, addresses: set[str]) -> list[dict[str, str]] | None:
        """Mails of this run and account to ``addresses``, or None while one address has none yet.

        Another system on the same broker and SMTP server may mail the same demo addresses for another account.
        """
        found = [
            {"to": _decoded(m["To"]), "subject": _decoded(m["Subject"])}
            for key, m in mailbox.Maildir(self.maildir, create=False).items()
            if key not in self.mails_before
            and m["X-SmartPost-Account"] == self.account
            and any(a in str(m["To"]) for a in addresses)
        ]
        reached = {a for a in addresses if any(a in f["to"] for f in found)}
        return found if reached == addresses else None

    def order_print(self) -> None:
        t = time.monotonic()
        letter_id = self.report.letter_id
        options = {
            "recipient_filter": "post_preference",
            "color": False,
            "duplex": True,
            "registered": "none",
            "envelope": "DL",
            "one_envelope_per_contact": True,
            "provider": "hybridpost",
        }
        letter = self._ok(self.http.get(self._url("letters", f"/letters/{letter_id}")))
        item_fields = (
            "item_id",
            "document_id",
            "part_id",
            "contact_id",
            "property_id",
            "unit_id",
            "storage_key",
            "page_count",
        )
        items = [{k: item[k] for k in item_fields} for item in letter.get("items", [])]
        estimate = self._ok(
            self.http.post(self._url("print-dispatch", "/estimates"), json={"items": items, "options": options})
        )
        self.report.estimate = estimate
        self._ok(self.http.post(self._url("letters", f"/letters/{letter_id}/print-order"), json=options))

        def mailpieces() -> list[dict[str, Any]] | None:
            r = self.http.get(self._url("print-dispatch", f"/letters/{letter_id}/mailpieces"))
            pieces = _items(r.json()) if r.status_code == 200 else []
            done = [p for p in pieces if p.get("status") not in {"created", "validating"}]
            return pieces if pieces and len(done) == len(pieces) else None

        pieces = self._poll("mailpieces at the print provider", mailpieces)
        self.report.mailpieces = [{k: p.get(k) for k in _MAILPIECE_FIELDS} for p in pieces]
        self._step("print", t)

    def run(self, workdir: Path) -> Report:
        self.load_master_data()
        pdf = workdir / "jahresabrechnung-2025.pdf"
        write_serial_letter(pdf, owner_letters(), seed=7, pages_per_letter=(2, 4))
        self.review(self.create_and_split(pdf))
        if self.maildir.exists():
            self.mails_before = set(mailbox.Maildir(self.maildir, create=False).keys())
        self.release()
        self.read_portal(["C-1001", "C-1003"])
        owners = {c["contact_id"] for c in CONTRACTS if c["role"] == "owner"}
        self.read_mail(
            {str(c["email"]) for c in CONTACTS if c["portal_registered"] and c["email"] and c["contact_id"] in owners}
        )
        self.order_print()
        return self.report


def account_mails(maildir: Path, account: str) -> list[mailbox.MaildirMessage]:
    """The mails in the Maildir that the notifier sent for ``account`` (its ``X-SmartPost-Account`` header).

    Tests share one SMTP server and one broker: another test's notifier (a fresh database and consumer group reads
    the portal topic from the beginning) may send mails for that test's account to the same demo addresses.
    """
    if not maildir.exists():
        return []
    return [m for m in mailbox.Maildir(maildir, create=False) if m["X-SmartPost-Account"] == account]


def _decoded(header: str | None) -> str:
    """A mail header as people read it ("Jürgen Weiß <…>", not RFC 2047 encoded words)."""
    return str(make_header(decode_header(header or "")))


def _items(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in ("items", "contacts", "documents", "mailpieces", "results"):
            if isinstance(data.get(key), list):
                return list(data[key])
    return []


def _json_if_ok(response: httpx.Response) -> Any:
    return response.json() if response.status_code < 300 else None


def _find_node(tree: Any, path: list[str]) -> str | None:
    """The id of the document-type node at ``path`` in the letters service's flat node list."""
    for node in tree.get("nodes", []):
        if node.get("path") == path:
            return str(node["id"])
    return None


def print_report(report: Report) -> None:
    out = print  # the walkthrough's output is its purpose
    out(f"\nSerienbrief {report.letter_id}: {report.pages} Seiten -> {report.parts} Einzelbriefe")
    out(
        f"  automatisch zugeordnet: {report.auto_assigned}, zur Prüfung: {report.needs_review}, "
        f"von Hand zugeordnet: {report.manually_assigned}, verworfen: {report.discarded}"
    )
    for a in report.assignments:
        out(
            f"  {a['part']:>10}  -> {a['contact_id']}  {a['property_id']} / {a['unit_id']}  "
            f"({a['status']}, {a['method']}, score {a['score']:.2f})"
        )
    for w in report.warnings:
        out(f"  Warnung: {w}")
    out(f"Freigegeben: Status {report.state_after_release}")
    for contact, docs in report.portal.items():
        out(f"Portal von {contact}: {docs}")
    out(f"  heruntergeladen: {report.downloaded_bytes} Bytes PDF")
    out(f"E-Mails ({len(report.mails)}):")
    for mail in report.mails:
        out(f"  an {mail['to']}: {mail['subject']}")
    total = report.estimate.get("total_cost_cents", report.estimate.get("totals", {}))
    out(f"Kostenschätzung vor dem Auftrag: {total}")
    out(f"Briefversand ({len(report.mailpieces)} Sendungen):")
    for piece in report.mailpieces:
        out(f"  {piece}")
    out(f"Zeiten (s): {report.timings}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    stack_dir = os.environ.get("SMARTPOST_STACK_DIR", "var/stack")
    parser.add_argument("--maildir", default=os.environ.get("SMARTPOST_MAILDIR", f"{stack_dir}/maildir"))
    args = parser.parse_args()
    from smartpost_shared.localrun import SERVICES  # noqa: PLC0415

    urls = {name: f"http://127.0.0.1:{port}" for name, (_, port) in SERVICES.items()}
    stack = Stack(Path(stack_dir).resolve())
    with tempfile.TemporaryDirectory() as tmp:
        report = Walkthrough(urls, Path(args.maildir), stack).run(Path(tmp))
    print_report(report)


if __name__ == "__main__":
    main()
