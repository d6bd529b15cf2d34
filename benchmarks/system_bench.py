"""Whole-system benchmark: a generated account and cross-property serial letters of 1k and 10k pages.

Starts its own stack (tansu, SeaweedFS, aiosmtpd) and every service as a process on free ports, then times what a
property manager's annual statement goes through, for each size:

    import        master data (>= 5,000 contacts + contracts) applied in ALL consumers
    split+assign  upload -> split -> every part assigned (ready for review)
    bulk review   "alle nicht zuordenbaren verwerfen" + "alle sicheren Vorschläge übernehmen" (each one command)
    correction    one single correction at this size (median), then the rest of the review
    release       confirm + release -> every document published in the portal
    e-mails       release -> every immediate e-mail in the SMTP server's Maildir
    print         print order -> every mailpiece submitted to the (fake) provider

and per service the peak RSS and CPU seconds, the letters event store's size and the largest message on any topic.

Usage:  .venv/bin/python benchmarks/system_bench.py [--pages 1000 10000] [--workdir var/bench]
(the generated PDFs are kept in the work directory and reused). Prints a table; takes ~15 min for both sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from smartpost_shared.devstack import Stack, free_port
from smartpost_shared.localrun import SERVICES, LocalSystem, free_ports_for
from smartpost_shared.sample_letters import SampleRecipient, write_serial_letter

ACCOUNT = "bench"
ACTOR = "staff:benchmark"
# The benchmark prepares and releases letters itself: it claims exactly those staff roles.
STAFF_ROLES = ("prepare", "release")
FIRST = [
    "Anna",
    "Maria",
    "Ursula",
    "Petra",
    "Sabine",
    "Hans",
    "Peter",
    "Klaus",
    "Jürgen",
    "Thomas",
    "Michael",
    "Stefan",
    "Frank",
    "Uwe",
    "Karl",
    "Jörg",
]
LAST = [
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Schäfer",
    "Koch",
    "Bauer",
    "Richter",
    "Klein",
    "Wolf",
    "Schröder",
    "Neumann",
    "Schwarz",
    "Zimmermann",
    "Braun",
    "Krüger",
    "Hofmann",
    "Hartmann",
    "Lange",
    "Werner",
    "Krause",
    "Lehmann",
    "König",
]
STREETS = [
    "Linden",
    "Garten",
    "Haupt",
    "Bahnhof",
    "Schul",
    "Kirch",
    "Berg",
    "Wald",
    "Wiesen",
    "Mühlen",
    "Rosen",
    "Birken",
    "Eichen",
    "Park",
    "Markt",
]
CITIES = [("10115", "Berlin"), ("20095", "Hamburg"), ("80331", "München"), ("50667", "Köln"), ("04109", "Leipzig")]


# --------------------------------------------------------------------------------------------- generated account


class SplitFailedError(Exception):
    """The splitter refused the benchmark's PDF: stop instead of waiting for the poll timeout."""


@dataclass
class Account:
    masterdata: dict[str, Any]
    owner_letters: list[SampleRecipient]  # one per owner contract, in property order (as the ERP prints them)
    registered_with_email: set[str]
    post_preference: set[str]


def generate_account(properties: int = 240, units_per_property: int = 17, seed: int = 1) -> Account:
    """An account like the issue's: 240 properties, ~4,000 units, >5,000 contacts (owners, co-owners, tenants)."""
    rng = random.Random(seed)
    props, units, contacts, contracts = [], [], [], []
    letters: list[SampleRecipient] = []
    registered: set[str] = set()
    post: set[str] = set()
    multi: list[dict[str, Any]] = []

    def contact(kind: str) -> dict[str, Any]:
        n = len(contacts) + 1
        salutation = rng.choice(["Herrn", "Frau"])
        pc, city = rng.choice(CITIES)
        c = {
            "contact_id": f"C-{n:06d}",
            "reference_id": f"K-{n:06d}",
            "salutation": salutation,
            "first_name": rng.choice(FIRST),
            "last_name": rng.choice(LAST),
            "address": {
                "street": f"{rng.choice(STREETS)}straße {rng.randint(1, 180)}",
                "postal_code": pc,
                "city": city,
            },
            "email": f"{kind}{n}@example.org" if rng.random() < 0.9 else None,
            "channel_preference": "post" if rng.random() < 0.25 else "online",
            "portal_registered": rng.random() < 0.6,
        }
        contacts.append(c)
        if c["portal_registered"] and c["email"]:
            registered.add(c["contact_id"])
        if c["channel_preference"] == "post":
            post.add(c["contact_id"])
        return c

    for p in range(1, properties + 1):
        street = f"{rng.choice(STREETS)}allee {p}"
        pc, city = rng.choice(CITIES)
        prop = {
            "property_id": f"P-{p:04d}",
            "reference": f"WEG-{p:04d}",
            "name": f"WEG {street}",
            "street": street,
            "postal_code": pc,
            "city": city,
        }
        props.append(prop)
        for u in range(1, units_per_property + 1):
            unit = {"unit_id": f"U-{p:04d}-{u:02d}", "property_id": prop["property_id"], "number": f"WE {u:02d}"}
            unit["position"] = rng.choice(["EG links", "EG rechts", "1. OG", "2. OG", "DG"])
            units.append(unit)
            owner = rng.choice(multi) if multi and rng.random() < 0.08 else contact("owner")
            if owner not in multi and rng.random() < 0.2:
                multi.append(owner)
            contracts.append(
                {
                    "contract_id": f"V-{len(contracts) + 1:06d}",
                    "contact_id": owner["contact_id"],
                    "unit_id": unit["unit_id"],
                    "role": "owner",
                    "start": f"{rng.randint(1995, 2023)}-01-01",
                }
            )
            name = f"{owner['salutation']} {owner['first_name']} {owner['last_name']}"
            letters.append(
                SampleRecipient(
                    contact_id=owner["contact_id"],
                    reference_id=owner["reference_id"],
                    address_lines=[
                        name,
                        owner["address"]["street"],
                        f"{owner['address']['postal_code']} {owner['address']['city']}",
                    ],
                    property_ref=f"{prop['reference']} {street}",
                    unit_ref=f"{unit['number']} ({unit['position']})",
                )
            )
            if rng.random() < 0.35:
                tenant = contact("tenant")
                contracts.append(
                    {
                        "contract_id": f"V-{len(contracts) + 1:06d}",
                        "contact_id": tenant["contact_id"],
                        "unit_id": unit["unit_id"],
                        "role": "tenant",
                        "start": f"{rng.randint(2010, 2024)}-01-01",
                    }
                )
    masterdata = {"properties": props, "units": units, "contacts": contacts, "contracts": contracts}
    return Account(masterdata, letters, registered, post)


def letters_for_pages(account: Account, pages: int, seed: int) -> list[SampleRecipient]:
    """Owner letters (2.5 pages each on average) for ~``pages`` pages; 1 % are for people not in master data."""
    count = max(1, round(pages / 2.5))
    chosen = list(account.owner_letters[:count])
    rng = random.Random(seed)
    for i in range(0, len(chosen), 100):
        chosen[i] = SampleRecipient(
            contact_id="UNKNOWN",
            reference_id=f"K-9{i:05d}",
            address_lines=[f"Herrn Karl Unbekannt{rng.randint(1, 999)}", "Nirgendweg 1", "99999 Irgendwo"],
            property_ref="WEG-9999 Nirgendweg 1",
            unit_ref="WE 99 (DG)",
        )
    return chosen


# --------------------------------------------------------------------------------------------- process sampling


@dataclass
class ProcessStats:
    peak_rss: dict[str, int] = field(default_factory=dict)
    peak_pss: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    # At each service's peak: RSS per process of its group (service process first, then workers and children),
    # so that a peak can be attributed (the service itself, a sandbox worker, a check in a child process).
    peak_parts: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    peak_when: dict[str, str] = field(default_factory=dict)  # the stage in which the peak was seen


# The stage the run is in, for the sampler: "import", then "after <the stage last finished>" (StageLog sets it).
CURRENT_STAGE = ["import"]


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):  # noqa: PTH208 - plain names are what /proc has
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:  # field 5 (pgrp) after pid and comm
            pids.append(int(entry))
    return pids


def _pss(pid: int) -> int:
    """Proportional set size: the process's private pages plus its share of pages it shares with others.

    The sum over a service's processes counts a library that the service process and its workers all map once, as
    the container's memory accounting does; the RSS sum counts it once per process.
    """
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) * 1024 for line in rollup.splitlines() if line.startswith("Pss:")), 0)


def _rss_and_cpu(pid: int) -> tuple[int, float]:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0, 0.0
    rss = next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(stat[11]) + int(stat[12]) + int(stat[13]) + int(stat[14])) / ticks  # utime stime cutime cstime
    return rss, cpu


class Sampler(threading.Thread):
    """Samples every service's process group (workers included) twice a second: peak RSS and CPU seconds."""

    def __init__(self, system: LocalSystem, infrastructure: dict[str, subprocess.Popen[bytes]] | None = None) -> None:
        super().__init__(daemon=True)
        self.system = system
        # The stack's own servers (tansu, SeaweedFS, SMTP) share the two cores with the services: their CPU is
        # part of what a stage costs, though not a service's (shown as "infra:<name>").
        self.infrastructure = infrastructure if infrastructure is not None else {}  # filled when the stack is up
        self.stats = ProcessStats()
        self.stopped = threading.Event()
        self.cpu_seen: dict[int, float] = {}

    def run(self) -> None:
        owner: dict[int, str] = {}
        while not self.stopped.wait(0.5):
            watched = {**self.system.processes, **{f"infra:{n}": p for n, p in self.infrastructure.items()}}
            for name, proc in list(watched.items()):
                total_rss = total_pss = 0
                parts: list[tuple[str, int]] = []
                for pid in _group_pids(proc.pid):
                    owner[pid] = name
                    rss, cpu = _rss_and_cpu(pid)
                    total_rss += rss
                    total_pss += _pss(pid)
                    parts.append(("service" if pid == proc.pid else f"child {pid}", rss))
                    self.cpu_seen[pid] = max(self.cpu_seen.get(pid, 0.0), cpu)
                self.stats.peak_pss[name] = max(self.stats.peak_pss.get(name, 0), total_pss)
                if total_rss > self.stats.peak_rss.get(name, 0):
                    self.stats.peak_rss[name] = total_rss
                    self.stats.peak_parts[name] = sorted(parts, key=lambda p: p[0] != "service")
                    self.stats.peak_when[name] = CURRENT_STAGE[0]
            for name in watched:
                self.stats.cpu[name] = sum(c for pid, c in self.cpu_seen.items() if owner.get(pid) == name)


# --------------------------------------------------------------------------------------------- the run


class Bench:
    def __init__(self, system: LocalSystem, stack: Stack, account: Account, sampler: Sampler | None = None) -> None:
        self.system = system
        self.stack = stack
        self.account = account
        self.sampler = sampler
        self.profiler: Profiler | None = None
        # Every request proves its caller with signed claims for the service it goes to (smartpost_shared.identity).
        self.http = httpx.Client(timeout=120, event_hooks={"request": [self._prove_caller]})

    def cpu_now(self) -> dict[str, float]:
        """CPU seconds per service so far (after one more sample, so that the stage's end is counted)."""
        if self.sampler is None:
            return {}
        time.sleep(0.6)
        return dict(self.sampler.stats.cpu)

    def cpu_of_stage(self, t: dict[str, Any], stage: str, before: dict[str, float]) -> None:
        """CPU seconds per service spent during ``stage`` (those above 0.5 s), as one line of the table."""
        after = self.cpu_now()
        spent = {name: after[name] - before.get(name, 0.0) for name in sorted(after)}
        t[f"{stage}: CPU s"] = ", ".join(f"{n} {v:.1f}" for n, v in spent.items() if v >= 0.5)

    def _prove_caller(self, request: httpx.Request) -> None:
        port = request.url.port
        service = next((name for name, p in self.system.ports.items() if p == port), None)
        if service is not None:
            # The master-data import needs the importer's role (smartpost_shared.roles), claimed only for it.
            roles = (*STAFF_ROLES, "import") if request.url.path == "/imports" else STAFF_ROLES
            request.headers.update(self.stack.caller_headers(ACCOUNT, ACTOR, audience=service, roles=roles))

    def url(self, service: str, path: str) -> str:
        return self.system.url(service) + ("/v1" if service == "letters" else "") + path

    def ok(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            msg = f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text[:400]}"
            raise RuntimeError(msg)
        return response.json() if response.content else None

    @staticmethod
    def poll(what: str, probe: Any, timeout: float = 1800, every: float = 0.5) -> Any:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = probe()
            except (RuntimeError, httpx.HTTPError) as exc:  # a busy service answers again later; keep polling
                last = f"error: {exc}"
                time.sleep(every)
                continue
            if last and not (isinstance(last, str) and last.startswith("error: ")):
                return last
            time.sleep(every)
        msg = f"timed out waiting for {what} (last: {str(last)[:200]})"
        raise TimeoutError(msg)

    # -- master data ---------------------------------------------------------------------------------------------
    def ledger_counts(self) -> dict[str, int]:
        """Master-data events applied per consumer, read from each service's own ledger (SQLite)."""
        found: dict[str, int] = {}
        for service, consumer in (
            ("assignment", "assignment"),
            ("portal-publisher", "portal-publisher:masterdata"),
            ("notifier", "notifier"),
            ("print-dispatch", "print-dispatch:masterdata"),
        ):
            files = list((self.system.data_dir / service).glob("*.sqlite3"))
            total = 0
            for db in files:
                try:
                    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
                        total += conn.execute(
                            "SELECT count(*) FROM processed_events WHERE consumer = ?", (consumer,)
                        ).fetchone()[0]
                except sqlite3.Error:
                    continue
            found[service] = total
        return found

    def import_masterdata(self) -> tuple[float, int, dict[str, Any]]:
        body = json.dumps(self.account.masterdata).encode()
        before = self.ledger_counts()
        if self.profiler:
            self.profiler.start("import")
        started = time.monotonic()
        accepted = self.ok(
            self.http.post(
                self.url("assignment", "/imports"), files={"file": ("account.json", body, "application/json")}
            )
        )
        total = sum(accepted["counts"].values())
        status = self.poll(
            "import applied in every consumer",
            lambda: all(self.ledger_counts()[s] - before[s] >= total for s in before),
            every=1.0,
        )
        del status
        if self.profiler:
            self.profiler.stop()
        progress = self.ok(self.http.get(self.url("assignment", f"/imports/{accepted['import_id']}")))
        return time.monotonic() - started, total, progress

    # -- one serial letter ---------------------------------------------------------------------------------------
    def document_type(self) -> str:
        tree = self.ok(self.http.get(self.url("letters", "/document-types")))
        for node in tree["nodes"]:
            if node["name"] == "Jahresabrechnung":
                return str(node["id"])
        created = self.ok(self.http.post(self.url("letters", "/document-types"), json={"name": "Jahresabrechnung"}))
        return str(created["created_id"])

    def run_letter(self, pdf: Path, expected_parts: int) -> dict[str, Any]:  # noqa: C901, PLR0912 - one scenario
        t: dict[str, Any] = StageLog()
        CURRENT_STAGE[0] = f"split of {pdf.name}"
        letter = self.ok(
            self.http.post(
                self.url("letters", "/letters?parts=none"),
                json={
                    "title": f"Jahresabrechnung 2025 ({pdf.stem})",
                    "document_type_id": self.document_type(),
                    "recipient_groups": ["owners"],
                    "scope": "cross_property",
                },
            )
        )
        lid = letter["letter_id"]
        if self.profiler:
            self.profiler.start(f"review-{expected_parts}")
        cpu_upload = self.cpu_now()
        started = time.monotonic()
        letter = self.ok(
            self.http.post(
                self.url("letters", f"/letters/{lid}/documents?parts=none"),
                files={"file": (pdf.name, pdf.read_bytes(), "application/pdf")},
                data={
                    "role": "split",
                    "rule": json.dumps({"strategy": "first_page", "first_page_text": "Seite 1 von"}),
                },
            )
        )
        uploaded = time.monotonic()
        self.ok(self.http.post(self.url("letters", f"/letters/{lid}/split?parts=none")))
        t["upload request (checked, stored)"] = uploaded - started

        def state() -> dict[str, Any]:
            return dict(self.ok(self.http.get(self.url("letters", f"/letters/{lid}?parts=none"))))

        def split_done() -> dict[str, Any] | None:
            current = state()
            failed = [d["failure"] for d in current["documents"] if d.get("failure")]
            if failed:
                # Not a RuntimeError: poll() keeps polling through those (a busy service answers again later).
                raise SplitFailedError(str(failed[0]))
            return current if current["status"] not in {"draft", "splitting"} else None

        current = self.poll("split", split_done)
        t["split"] = time.monotonic() - started
        current = self.poll("assignment", lambda: (s := state())["status"] == "in_review" and s)
        t["upload -> ready for review"] = time.monotonic() - started
        if self.profiler:
            self.profiler.stop()
        self.cpu_of_stage(t, "upload -> ready for review", cpu_upload)
        t["parts"] = current["counts"]["parts"]
        if t["parts"] != expected_parts:
            print(f"  warning: {t['parts']} parts, expected {expected_parts}", file=sys.stderr)
        page = self.ok(self.http.get(self.url("letters", f"/letters/{lid}/parts?limit=1")))
        t["auto-assigned"] = page["filter_counts"]["assigned"]
        t["to review"] = page["filter_counts"]["review"]

        # Bulk review: one command each.
        for name, path in (("discard-unmatched", "review/discard-unmatched"), ("accept-safe", "review/accept-safe")):
            s = time.monotonic()
            r = self.http.post(self.url("letters", f"/letters/{lid}/{path}?parts=none"))
            t[f"bulk {name}"] = time.monotonic() - s
            t[f"bulk {name} status"] = r.status_code
        # The rest by hand: the best candidate if there is one, discard otherwise; time each single correction.
        singles: list[float] = []
        handled: set[str] = set()  # a part still listed after staff took its best candidate is discarded
        while True:
            page = self.ok(self.http.get(self.url("letters", f"/letters/{lid}/parts?filter=review&limit=100")))
            if not page["parts"]:
                break
            for part in page["parts"]:
                # A cross-property letter is only released with a placement (property and unit): staff take the
                # best candidate that has one and discard the part otherwise.
                candidates = [
                    c
                    for c in (part["assignment"] or {}).get("candidates") or []
                    if c.get("property_id") and c.get("unit_id")
                ]
                s = time.monotonic()
                if candidates and part["part_id"] not in handled:
                    best = candidates[0]
                    self.ok(
                        self.http.post(
                            self.url("letters", f"/letters/{lid}/parts/{part['part_id']}/reassign?parts=none"),
                            json={k: best.get(k) for k in ("contact_id", "property_id", "unit_id")},
                        )
                    )
                else:
                    self.ok(
                        self.http.post(
                            self.url("letters", f"/letters/{lid}/parts/{part['part_id']}/discard?parts=none")
                        )
                    )
                handled.add(part["part_id"])
                singles.append(time.monotonic() - s)
        # Staff also change automatic assignments: unassign and reassign a few (two single corrections each).
        sample = self.ok(self.http.get(self.url("letters", f"/letters/{lid}/parts?filter=assigned&limit=5&offset=7")))
        for part in sample["parts"]:
            a = part["assignment"]
            for path, payload in (
                ("unassign", None),
                ("reassign", {"contact_id": a["contact_id"], "property_id": a["property_id"], "unit_id": a["unit_id"]}),
            ):
                s = time.monotonic()
                self.ok(
                    self.http.post(
                        self.url("letters", f"/letters/{lid}/parts/{part['part_id']}/{path}?parts=none"), json=payload
                    )
                )
                singles.append(time.monotonic() - s)
        t["single corrections"] = len(singles)
        t["single correction median"] = statistics.median(singles) if singles else 0.0
        t["single correction max"] = max(singles) if singles else 0.0

        stats_url = self.system.url("notifier") + "/internal/mails/stats"

        def immediate() -> dict[str, int]:
            return dict(self.ok(self.http.get(stats_url))["mails"].get("immediate", {}))

        mails_before = immediate()
        if self.profiler:
            self.profiler.start(f"release-{expected_parts}")
        cpu_before = self.cpu_now()
        s = time.monotonic()
        # As the gateway asks: without parts and released items in the answers (their numbers are in counts).
        self.ok(self.http.post(self.url("letters", f"/letters/{lid}/review/confirm?parts=none&items=none")))
        released = self.ok(
            self.http.post(
                self.url("letters", f"/letters/{lid}/release?parts=none&items=none"), json={"notify_by_email": True}
            )
        )
        t["confirm + release command"] = time.monotonic() - s
        items = released["counts"]["released_items"]
        t["released items"] = items
        deliveries_url = self.system.url("portal-publisher") + f"/internal/letters/{lid}/deliveries"
        self.poll("all published", lambda: len(self.ok(self.http.get(deliveries_url))) >= items, every=1.0)
        t["release -> all published"] = time.monotonic() - s
        full = self.ok(self.http.get(self.url("letters", f"/letters/{lid}?parts=none")))
        recipients = {i["contact_id"] for i in full["items"]}

        open_states = ("pending", "sending", "handed_over")

        def mails_done() -> dict[str, int] | None:
            # One immediate mail per recipient of the release: sent, or skipped (not registered, no address). A mail
            # still being sent (claimed by the sender) is not done: counting it ended the stage early.
            now = immediate()
            decided = sum(v for k, v in now.items() if k not in open_states)
            decided -= sum(v for k, v in mails_before.items() if k not in open_states)
            busy = any(now.get(k) for k in open_states)
            return now if decided >= len(recipients) and not busy else None

        after = self.poll("immediate e-mails", mails_done, every=1.0)
        t["release -> all e-mails"] = time.monotonic() - s
        t["e-mails sent"] = after.get("sent", 0) - mails_before.get("sent", 0)
        self.cpu_of_stage(t, "release -> all e-mails", cpu_before)
        if self.profiler:
            self.profiler.stop()
            self.profiler.start(f"print-{expected_parts}")

        cpu_before = self.cpu_now()
        options = {"recipient_filter": "post_preference", "provider": "hybridpost", "one_envelope_per_contact": True}
        s = time.monotonic()
        self.ok(self.http.post(self.url("letters", f"/letters/{lid}/print-order?parts=none"), json=options))
        expected_pieces = len(recipients & self.account.post_preference)

        seen: list[tuple[float, int]] = []

        def submitted() -> bool:
            r = self.http.get(self.system.url("print-dispatch") + f"/letters/{lid}/mailpieces")
            pieces = r.json().get("mailpieces", []) if r.status_code == 200 else []
            done = [p for p in pieces if p.get("status") not in {"created", "validating"}]
            seen.append((time.monotonic(), len(pieces)))
            steady = [n for at, n in seen if at > time.monotonic() - 15]
            # print-dispatch decides who gets paper; expected_pieces is our estimate (post preference)
            settled = len(pieces) >= expected_pieces or (len(seen) > 30 and len(set(steady)) == 1)
            return bool(pieces) and settled and len(done) == len(pieces)

        self.poll("print order submitted", submitted, every=1.0)
        t["print order -> all submitted"] = time.monotonic() - s
        t["mailpieces"] = seen[-1][1] if seen else 0
        self.cpu_of_stage(t, "print order -> all submitted", cpu_before)
        if self.profiler:
            self.profiler.stop()
        t["letter_id"] = lid
        return t


async def largest_messages(bootstrap: str) -> dict[str, int]:
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415

    from smartpost_shared.topics import ALL_TOPICS  # noqa: PLC0415

    found: dict[str, int] = {}
    for topic in ALL_TOPICS:
        consumer = AIOKafkaConsumer(
            topic.name,
            bootstrap_servers=bootstrap,
            group_id=f"bench-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            biggest = 0
            idle = 0
            while idle < 3:
                batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
                records = [r for rs in batch.values() for r in rs]
                idle = 0 if records else idle + 1
                biggest = max([biggest, *(len(r.value or b"") for r in records)])
            found[topic.name] = biggest
        finally:
            await consumer.stop()
    return found


class Profiler:
    """py-spy (if installed) on the services named in ``SMARTPOST_BENCH_PROFILE`` (comma-separated), one stage.

    Writes collapsed stacks per service to the work directory (``profile-<stage>-<service>.txt``): where the
    service's CPU goes in that stage. Off unless the variable is set.
    """

    def __init__(self, system: LocalSystem, workdir: Path) -> None:
        self.system = system
        self.workdir = workdir
        self.services = [s for s in os.environ.get("SMARTPOST_BENCH_PROFILE", "").split(",") if s]
        self.running: list[Any] = []

    def start(self, stage: str) -> None:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        for name in self.services:
            out = self.workdir / f"profile-{stage}-{name}.txt"
            cmd = [spy, "record", "--pid", str(self.system.processes[name].pid), "--subprocesses"]
            cmd += ["--format", "raw", "--rate", "50", "--output", str(out)]
            self.running.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def stop(self) -> None:
        for proc in self.running:
            proc.send_signal(signal.SIGINT)
        for proc in self.running:
            proc.wait(timeout=60)
        self.running = []


class StageLog(dict[str, Any]):
    """The stage times of one letter.

    Each is also written to stderr as soon as it is known: a run that fails later still shows how far it got.
    """

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        CURRENT_STAGE[0] = f"after {key!r}"
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        print(f"    {key}: {shown}", file=sys.stderr, flush=True)


def print_results(results: dict[int, dict[str, Any]]) -> None:
    """The stage table (one column per size, with the ratio when there are two)."""
    sizes = list(results)
    if not sizes:
        return
    print("\n## Results")
    header = "| stage | " + " | ".join(f"{p:,} pages" for p in sizes) + (" | ratio |" if len(sizes) == 2 else " |")
    print(header)
    print("|---" * (len(sizes) + 1 + (len(sizes) == 2)) + "|")
    for key in results[sizes[0]]:
        if key == "letter_id":
            continue
        values = [results[p][key] for p in sizes]
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in values]
        ratio = ""
        if len(sizes) == 2 and isinstance(values[0], float) and values[0] > 0:
            ratio = f" | {values[1] / values[0]:.1f}x"
        elif len(sizes) == 2:
            ratio = " | "
        print(f"| {key} | " + " | ".join(cells) + ratio + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--workdir", default="var/bench")
    parser.add_argument(
        "--properties", type=int, default=240, help="account size (240 = ~15,000 master-data events, 320 = ~20,000)"
    )
    parser.add_argument("--import-only", action="store_true", help="time the master-data import alone, no letters")
    args = parser.parse_args()
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    account = generate_account(properties=args.properties)
    if args.import_only:
        args.pages = []
    md = account.masterdata
    print(
        f"account: {len(md['properties'])} properties, {len(md['units'])} units, {len(md['contacts'])} contacts, "
        f"{len(md['contracts'])} contracts"
    )
    pdfs: dict[int, tuple[Path, int]] = {}
    for pages in args.pages:
        pdf = workdir / f"owners-{pages}.pdf"
        recipients = letters_for_pages(account, pages, seed=pages)
        if not pdf.exists():
            s = time.monotonic()
            write_serial_letter(pdf, recipients, seed=pages, pages_per_letter=(1, 4))
            print(f"generated {pdf.name} in {time.monotonic() - s:.0f} s")
        pdfs[pages] = (pdf, len(recipients))

    root = Path(tempfile.mkdtemp(prefix="smartpost-bench-"))
    stack = Stack(root, kafka_port=free_port(), s3_port=free_port(), smtp_port=free_port(), tansu_storage="memory")
    data = root / "data"
    system = LocalSystem(stack, data, ports=free_ports_for(list(SERVICES)), group_tag=f"bench-{root.name}")
    system.extra_env = {
        "SMARTPOST_NOTIFIER_IMMEDIATE_DELAY_SECONDS": "1",
        "SMARTPOST_PORTAL_PUBLISHER_DOWNLOAD_LINK_SECRET": "bench-secret-not-for-production",
        # SMARTPOST_BENCH_LOG_LEVEL=INFO keeps the services' logs (copied to the work directory): a timeline.
        "SMARTPOST_LOG_LEVEL": os.environ.get("SMARTPOST_BENCH_LOG_LEVEL", "WARNING"),
    }
    results: dict[int, dict[str, Any]] = {}
    sampler = Sampler(system, stack.processes)
    # A benchmark stopped with SIGTERM (timeout, kill) must still stop its stack: run the finally block.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        stack.up()
        system.start_all()
        sampler.start()
        bench = Bench(system, stack, account, sampler)
        bench.profiler = Profiler(system, workdir)
        seconds, events, progress = bench.import_masterdata()
        print(f"import: {events} events in all 4 consumers in {seconds:.1f} s ({progress['status']})")
        for pages, (pdf, expected) in pdfs.items():
            print(f"--- {pages} pages ({expected} letters)")
            results[pages] = bench.run_letter(pdf, expected)
            for key, value in results[pages].items():
                print(f"  {key}: {value:.2f}" if isinstance(value, float) else f"  {key}: {value}")
        biggest = asyncio.run(largest_messages(stack.bootstrap_servers))
        store = sum(p.stat().st_size for p in (data / "letters").glob("letters-events.sqlite3*"))
    finally:
        sampler.stopped.set()
        system.stop_all()
        stack.down()
        if os.environ.get("SMARTPOST_BENCH_LOG_LEVEL"):
            shutil.copytree(stack.root / "logs", workdir / "logs", dirs_exist_ok=True)

    print_results(results)
    print(f"\nmaster data import applied in all consumers: {seconds:.1f} s for {events} events")
    print("peak RSS [peak PSS] / CPU seconds per service (whole run, process group incl. workers):")
    for name in sorted(sampler.stats.peak_rss):
        parts = ", ".join(f"{who} {rss / 1e6:.0f}" for who, rss in sampler.stats.peak_parts.get(name, []))
        pss = sampler.stats.peak_pss.get(name, 0)
        print(
            f"  {name}: {sampler.stats.peak_rss[name] / 1e6:.0f} MB [{pss / 1e6:.0f} MB] "
            f"({parts}; {sampler.stats.peak_when.get(name)}), "
            f"{sampler.stats.cpu.get(name, 0):.0f} s CPU"
        )
    print(f"letters event store: {store / 1e6:.1f} MB")
    print("largest message per topic: " + ", ".join(f"{k} {v:,} B" for k, v in biggest.items()))
    shutil.rmtree(root, ignore_errors=True)
    print(f"at {datetime.now(UTC).isoformat(timespec='seconds')}")


if __name__ == "__main__":
    main()
