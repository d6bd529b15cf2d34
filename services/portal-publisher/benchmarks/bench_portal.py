"""Portal publisher numbers: publishing a large release, listing an inbox, issuing and following download links.

    .venv/bin/python services/portal-publisher/benchmarks/bench_portal.py [--items 2000] [--postgres ADMIN_URL]

In-process (SQLite file by default; with --postgres a fresh, afterwards dropped database on that server; in-memory
object store), no broker: it measures this service's own work, not Kafka or S3.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi.testclient import TestClient
from pydantic import SecretStr

from smartpost_portal_publisher.app import create_app
from smartpost_portal_publisher.application import Publisher
from smartpost_portal_publisher.settings import Settings
from smartpost_shared.contracts.common import ContractRole, DocumentType
from smartpost_shared.contracts.envelope import make_envelope
from smartpost_shared.contracts.letters import LetterReleased, ReleasedItem
from smartpost_shared.contracts.masterdata import ContactUpserted, ContractUpserted, PropertyUpserted, UnitUpserted
from smartpost_shared.masterdata import apply_masterdata
from smartpost_shared.messaging import SqlIdempotency
from smartpost_shared.storage import MemoryStore, part_key
from smartpost_shared.testing import identity
from smartpost_shared.testing.identity import caller_headers

if TYPE_CHECKING:
    from collections.abc import Callable

PDF = b"%PDF-1.4\n" + b"0" * 100_000 + b"\n%%EOF\n"


def main() -> None:
    identity.install()  # the in-process portal trusts this benchmark's caller key
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=2000, help="individual letters in one release")
    parser.add_argument("--contacts", type=int, default=200)
    parser.add_argument("--postgres", default=None, help="admin URL, e.g. postgresql://app:app@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    if args.postgres:
        import psycopg  # noqa: PLC0415 - only for this mode

        name = f"portal_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            run(args, args.postgres.rsplit("/", 1)[0] + f"/{name}")
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        run(args, f"sqlite:///{Path(tempfile.mkdtemp(prefix='portal-bench-')) / 'bench.sqlite3'}")


def run(args: argparse.Namespace, url: str) -> None:
    store = MemoryStore()
    settings = Settings(
        database_url=url,
        download_link_secret=SecretStr("bench-download-link-secret"),
        log_level="WARNING",
        local_development=True,  # no object-store secret: the benchmark uses the in-memory store
    )
    app = create_app(settings, store=store)
    engine = app.state.engine
    app.state.create_tables()  # what the service's start-up does (the benchmark runs no lifespan)
    account = f"bench-{uuid.uuid4().hex[:8]}"
    md = SqlIdempotency(engine, "bench:md")
    today = date.today()  # noqa: DTZ011 - contract dates are local calendar dates
    events = [PropertyUpserted(property_id="p1", reference="P1", name="Musterstraße 1")]
    for i in range(args.contacts):
        events += [
            UnitUpserted(unit_id=f"u{i}", property_id="p1", number=f"WE {i}"),
            ContactUpserted(contact_id=f"c{i}", last_name=f"Kontakt {i}"),
            ContractUpserted(
                contract_id=f"k{i}",
                contact_id=f"c{i}",
                unit_id=f"u{i}",
                property_id="p1",
                role=ContractRole.TENANT,
                start=today - timedelta(days=100),
            ),
        ]
    for payload in events:
        md.run_once(lambda e, c: apply_masterdata(c, e), make_envelope(payload, account_id=account, producer="bench"))

    letter_id = "letter-bench"
    items = []
    for i in range(args.items):
        key = part_key(account, letter_id, "doc", i)
        store.put(key, PDF)
        contact = i % args.contacts
        items.append(
            ReleasedItem(
                item_id=f"item-{i}",
                document_id="doc",
                part_id=f"part-{i}",
                contact_id=f"c{contact}",
                property_id="p1",
                unit_id=f"u{contact}",
                storage_key=key,
                page_count=2,
            )
        )
    release = make_envelope(
        LetterReleased(
            letter_id=letter_id,
            title="Jahresabrechnung",
            document_type=DocumentType(id="dt", path=["Abrechnungen"]),
            letter_date=today,
            notify_by_email=True,
            released_by="bench",
            items=items,
        ),
        account_id=account,
        producer="bench",
    )
    letters = SqlIdempotency(engine, "bench:letters")
    started = time.perf_counter()
    letters.run_once(Publisher().on_letter_released, release)
    publish_s = time.perf_counter() - started
    started = time.perf_counter()
    letters.run_once(Publisher().on_letter_released, make_envelope(release.payload, account_id=account, producer="b"))
    redeliver_s = time.perf_counter() - started
    print(
        f"publish release of {args.items} items ({url.split(':', 1)[0]}): {publish_s:.2f} s "
        f"({args.items / publish_s:.0f} items/s, incl. outbox rows)"
    )
    print(f"re-delivery with a new event id (all items skipped): {redeliver_s:.2f} s")

    client = TestClient(app)
    staff = caller_headers(account, audience="portal-publisher", roles=("prepare",))
    code = client.post("/internal/invitations", json={"contact_id": "c0"}, headers=staff).json()["code"]
    token = client.post(
        "/portal/invitations/redeem", json={"code": code, "login": "c0", "password": "benchmark-pass"}
    ).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    per_contact = len(client.get("/portal/documents", headers=auth).json())

    def timed(fn: Callable[[], object], n: int = 50) -> float:
        samples = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
        return statistics.median(samples) * 1000

    list_ms = timed(lambda: client.get("/portal/documents", headers=auth).raise_for_status())
    doc = client.get("/portal/documents", headers=auth).json()[0]["document_id"]
    link_ms = timed(lambda: client.post(f"/portal/documents/{doc}/download-link", headers=auth).raise_for_status())
    url_ = client.post(f"/portal/documents/{doc}/download-link", headers=auth).json()["url"]
    download_ms = timed(lambda: client.get(url_).raise_for_status())
    deliveries_ms = timed(lambda: client.get(f"/internal/letters/{letter_id}/deliveries", headers=staff), n=5)
    print(f"inbox listing ({per_contact} documents, via HTTP in-process): median {list_ms:.1f} ms")
    print(
        f"download link: median {link_ms:.1f} ms; signed download of 100 KB (memory store): median {download_ms:.1f} ms"
    )
    print(f"staff delivery report of {args.items} items: median {deliveries_ms:.0f} ms")
    engine.dispose()


if __name__ == "__main__":
    main()
