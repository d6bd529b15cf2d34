"""Issue #15 item 3: the staff flow as a state machine, driven against the REAL services with random commands.

hypothesis' ``RuleBasedStateMachine`` issues random staff commands (create, upload good and bad PDFs, remove,
reorder, split, reopen, reassign, unassign, discard, confirm, release, revoke, order print, delete) on a few
letters, and kills (-9) and restarts services in between. After every step each letter must reach, within a
bounded time, a state from which a staff action or completion follows (never "waiting" for good), and the portal
and the paper must match the letter: every active released item is published and every revoked one withdrawn;
no mailpiece reaches the print provider twice.

Letters, splitter, assignment, portal-publisher and print-dispatch (with the fake hybrid-mail provider) run as
processes over tansu and SeaweedFS. Shrinking is off (every step talks to real servers); a failure prints the
steps hypothesis ran.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from smartpost_shared.demo import CONTACTS, demo_masterdata
from smartpost_shared.localrun import LocalSystem, free_ports_for
from smartpost_shared.sample_letters import demo_recipients, write_serial_letter
from smartpost_shared.testing.identity import caller_auth

if TYPE_CHECKING:
    from collections.abc import Iterator

    from smartpost_shared.devstack import Stack

pytestmark = [pytest.mark.real, pytest.mark.slow]

SERVICES = ["letters", "splitter", "assignment", "portal-publisher", "print-dispatch"]
ACCOUNT = "sm-" + uuid.uuid4().hex[:8]

SETTLE_SECONDS = 90.0  # the bound: a letter waiting for another service longer than this is stuck
WAITING = {"splitting", "assigning"}
EXAMPLES = 4
STEPS = 50
MIN_STEPS = 200  # hypothesis may end an example early: more examples run until 200 steps are done
CONTACT_IDS = [c["contact_id"] for c in CONTACTS]


class Env:
    """What the machine needs: the running system, HTTP clients, test PDFs."""

    system: LocalSystem
    pdfs: dict[str, bytes]
    document_type: str
    restarts = 0
    steps = 0
    statuses: ClassVar[Counter[str]] = Counter()  # statuses seen after steps (how far the random runs got)
    answers: ClassVar[Counter[str]] = Counter()  # command -> HTTP status


def _client(system: LocalSystem, service: str, roles: tuple[str, ...] = ("prepare", "release")) -> httpx.Client:
    # Every request carries its own token (services take a token for one state-changing request only).
    # Anna prepares and releases (every service checks the roles of the verified claims).
    auth = caller_auth(ACCOUNT, "anna@hv-muster.de", audience=service, roles=roles)
    return httpx.Client(base_url=system.url(service), auth=auth, timeout=30)


@pytest.fixture(scope="module")
def env(stack: Stack) -> Iterator[type[Env]]:
    data = Path(tempfile.mkdtemp(prefix="smartpost-sm-"))
    system = LocalSystem(stack, data, ports=free_ports_for(SERVICES), group_tag=f"sm-{data.name}")
    system.extra_env = {
        "SMARTPOST_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "SMARTPOST_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
        "SMARTPOST_PRINT_DISPATCH_DISPATCH_POLL_SECONDS": "0.3",
        "SMARTPOST_PRINT_DISPATCH_SUBMIT_RETRY_SECONDS": "0.5",
    }
    try:
        system.start_all(SERVICES)
        with _client(system, "assignment", roles=("import",)) as assignment:
            body = json.dumps(demo_masterdata()).encode()
            r = assignment.post("/imports", files={"file": ("demo.json", body, "application/json")})
            assert r.status_code < 300, r.text
        with _client(system, "letters") as letters:
            r = letters.post("/v1/document-types", json={"name": "Abrechnungen"})
            assert r.status_code == 201, r.text
            Env.document_type = r.json()["created_id"]
        good, bad = data / "good.pdf", data / "bad.pdf"
        write_serial_letter(good, demo_recipients(2, seed=11), seed=11, pages_per_letter=(1, 1))
        write_serial_letter(bad, demo_recipients(1, seed=12), seed=12, pages_per_letter=(1, 1), address_mode="missing")
        Env.system = system
        Env.pdfs = {"good": good.read_bytes(), "bad": bad.read_bytes()}
        yield Env
    finally:
        system.stop_all()
        shutil.rmtree(data, ignore_errors=True)


class StaffFlow(RuleBasedStateMachine):
    letters = Bundle("letters")

    def __init__(self) -> None:
        super().__init__()
        self.http = _client(Env.system, "letters")
        self.ids: list[str] = []
        self.log: list[str] = []

    # -- helpers ---------------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for _ in range(60):  # a restarted letters service is back within seconds
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError:
                time.sleep(0.5)
                continue
            if response.status_code == 503:
                time.sleep(0.5)
                continue
            # Staff commands in the wrong state are refused with a reason (409/422), never a server error.
            assert response.status_code < 500, f"{method} {path}: {response.status_code} {response.text[:300]}"
            self.log.append(f"{method} {path} -> {response.status_code}")
            command = path.rsplit("/", 1)[-1] if "parts" not in path else path.rsplit("/", 1)[-1] + "-part"
            Env.answers[f"{method} {command if not _is_id(command) else 'letter'} {response.status_code}"] += 1
            return response
        raise AssertionError(f"letters service unreachable for {method} {path}")

    def _letter(self, letter_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/v1/letters/{letter_id}").json())

    def _post(self, letter_id: str, action: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return self._call("POST", f"/v1/letters/{letter_id}/{action}", json=body)

    # -- rules -----------------------------------------------------------------------------------------------

    @initialize(target=letters)
    def first_letter(self) -> str:
        return self.create()

    @precondition(lambda self: len(self.ids) < 3)
    @rule(target=letters)
    def create_letter(self) -> str:
        return self.create()

    def create(self) -> str:
        body = {
            "title": "Jahresabrechnung",
            "document_type_id": Env.document_type,
            "recipient_groups": ["owners"],
            "scope": "cross_property",
        }
        response = self._call("POST", "/v1/letters", json=body)
        assert response.status_code == 201, response.text
        letter_id = str(response.json()["letter_id"])
        self.ids.append(letter_id)
        return letter_id

    @rule(letter=letters, kind=st.sampled_from(["good", "good", "good", "bad"]))
    def upload(self, letter: str, kind: str) -> None:
        self._call(
            "POST",
            f"/v1/letters/{letter}/documents",
            files={"file": (f"{kind}.pdf", Env.pdfs[kind], "application/pdf")},
            data={"role": "split"},
        )

    @rule(letter=letters, index=st.integers(0, 3))
    def remove(self, letter: str, index: int) -> None:
        documents = self._letter(letter)["documents"]
        if documents:
            document = documents[index % len(documents)]
            self._call("DELETE", f"/v1/letters/{letter}/documents/{document['document_id']}")

    @rule(letter=letters)
    def reorder(self, letter: str) -> None:
        documents = self._letter(letter)["documents"]
        order = [d["document_id"] for d in reversed(documents)]
        self._call("PUT", f"/v1/letters/{letter}/documents/order", json={"order": order})

    @rule(letter=letters)
    def split(self, letter: str) -> None:
        if not self._letter(letter)["documents"]:  # staff upload the export first
            self.upload(letter, "good")
        self._post(letter, "split")

    @rule(letter=letters)
    def reopen(self, letter: str) -> None:
        self._post(letter, "reopen")

    @rule(
        letter=letters,
        index=st.integers(0, 5),
        action=st.sampled_from(["reassign", "reassign", "unassign", "discard"]),
        contact=st.sampled_from(CONTACT_IDS),
    )
    def correct(self, letter: str, index: int, action: str, contact: str) -> None:
        parts = [p for d in self._letter(letter)["documents"] for p in d.get("parts", [])]
        if not parts:
            return
        part = parts[index % len(parts)]
        body = {"contact_id": contact} if action == "reassign" else None
        self._call("POST", f"/v1/letters/{letter}/parts/{part['part_id']}/{action}", json=body)

    @rule(letter=letters, contact=st.sampled_from(CONTACT_IDS))
    def review_everything(self, letter: str, contact: str) -> None:
        """Staff go through the review: every undecided part is assigned (the first one) or discarded."""
        parts = [p for d in self._letter(letter)["documents"] for p in d.get("parts", [])]
        for number, part in enumerate(parts):
            assignment = part.get("assignment") or {}
            status = assignment.get("status")
            if status == "discarded" or (status == "assigned" and assignment.get("contact_id")):
                continue
            if number == 0:
                self._call(
                    "POST", f"/v1/letters/{letter}/parts/{part['part_id']}/reassign", json={"contact_id": contact}
                )
            else:
                self._call("POST", f"/v1/letters/{letter}/parts/{part['part_id']}/discard")

    @rule(letter=letters)
    def confirm(self, letter: str) -> None:
        self._post(letter, "review/confirm")

    @rule(letter=letters, contact=st.sampled_from(CONTACT_IDS))
    def review_and_confirm(self, letter: str, contact: str) -> None:
        self.review_everything(letter, contact)
        self._post(letter, "review/confirm")

    @rule(letter=letters, notify=st.booleans())
    def release(self, letter: str, notify: bool) -> None:
        self._post(letter, "release", {"notify_by_email": notify})

    @rule(letter=letters, contact=st.sampled_from(CONTACT_IDS), notify=st.booleans())
    def review_confirm_release(self, letter: str, contact: str, notify: bool) -> None:
        """The whole review at once; confirmed only after the corrections' echoes are in (see issue #15 item 2)."""
        self.review_everything(letter, contact)
        self._quiet(letter)
        self._post(letter, "review/confirm")
        self._post(letter, "release", {"notify_by_email": notify})

    def _quiet(self, letter: str, seconds: float = 1.5, limit: float = 8.0) -> None:
        """Wait until the letter's version stops changing (the assignment service's echoes arrived)."""
        deadline = time.monotonic() + limit
        version = self._letter(letter)["version"]
        while time.monotonic() < deadline:
            time.sleep(seconds)
            now = self._letter(letter)["version"]
            if now == version:
                return
            version = now

    @rule(letter=letters)
    def revoke(self, letter: str) -> None:
        items = [i["item_id"] for i in self._letter(letter).get("items", []) if i.get("revoked_at") is None]
        if items:
            self._post(letter, "revocations", {"item_ids": items[:1], "reason": "falsche Abrechnung"})

    @rule(letter=letters)
    def order_print(self, letter: str) -> None:
        self._post(letter, "print-order", {"provider": "hybridpost"})

    @rule(letter=letters, dice=st.integers(0, 5))
    def delete(self, letter: str, dice: int) -> None:
        if dice == 0:  # rarely: a deleted letter is the end of its story
            self._call("DELETE", f"/v1/letters/{letter}", params={"reason": "Test"})

    @rule(service=st.sampled_from(["letters", "splitter", "assignment", "portal-publisher", "print-dispatch"]))
    def restart(self, service: str) -> None:
        if Env.restarts >= 6:  # keep the run's time bounded; six kill -9 restarts per run
            return
        Env.restarts += 1
        Env.system.stop(service, kill=True)
        Env.system.start(service)
        Env.system.wait_healthy(service, timeout=120)
        self.log.append(f"restart {service}")

    # -- invariants ------------------------------------------------------------------------------------------

    @invariant()
    def every_letter_settles_and_portal_and_paper_match(self) -> None:
        Env.steps += 1
        for letter_id in self.ids:
            letter = self._settled(letter_id)
            Env.statuses[letter["status"]] += 1
            if letter["status"] in {"released", "print_ordered", "deleted"}:
                self._portal_matches(letter)
            if letter["status"] == "print_ordered":
                self._paper_never_twice()

    def _settled(self, letter_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + SETTLE_SECONDS
        letter = self._letter(letter_id)
        while letter["status"] in WAITING and time.monotonic() < deadline:
            time.sleep(0.3)
            letter = self._letter(letter_id)
        assert letter["status"] not in WAITING, (
            f"letter {letter_id} stuck in {letter['status']} for {SETTLE_SECONDS}s; last steps: {self.log[-12:]}"
        )
        return letter

    def _portal_matches(self, letter: dict[str, Any]) -> None:
        items = {i["item_id"] for i in letter.get("items", [])}
        revoked = _revoked_ids(letter)
        active = items - revoked if letter["status"] != "deleted" else set()
        deadline = time.monotonic() + SETTLE_SECONDS
        with _client(Env.system, "portal-publisher") as portal:
            while True:
                r = portal.get(f"/internal/letters/{letter['letter_id']}/deliveries")
                published = (
                    {d["item_id"] for d in r.json() if d["revoked_at"] is None} if r.status_code == 200 else None
                )
                if published == active:
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"portal shows {published}, letter {letter['letter_id']} has active {active}; {self.log[-12:]}"
                    )
                time.sleep(0.5)

    def _paper_never_twice(self) -> None:
        provider = httpx.get(f"{Env.system.provider_url}/_control/letters", timeout=10).json()
        references = Counter(letter["reference"] for letter in provider["letters"])
        twice = [ref for ref, n in references.items() if n > 1]
        assert not twice, f"mailpieces printed twice: {twice}"

    def teardown(self) -> None:
        self.http.close()


def _is_id(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _revoked_ids(letter: dict[str, Any]) -> set[str]:
    return {i["item_id"] for i in letter.get("items", []) if i.get("revoked_at") is not None}


def test_staff_flow_state_machine(env: type[Env]) -> None:
    started = time.monotonic()
    while Env.steps < MIN_STEPS:
        run_state_machine_as_test(
            StaffFlow,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                phases=[Phase.generate],
                database=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    print(
        f"state machine: {Env.steps} checks, {Env.restarts} restarts, {time.monotonic() - started:.0f} s, "
        f"statuses seen: {dict(Env.statuses)}; answers: {dict(sorted(Env.answers.items()))}"
    )
    assert Env.steps >= MIN_STEPS
