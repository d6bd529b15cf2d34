"""Command line importer: validate a master-data export and publish it on ``masterdata.events``.

    python -m smartpost_assignment.importer examples/masterdata.csv --account demo
    python -m smartpost_assignment.importer export.json --account demo --dry-run

Every row is validated first; if any row is invalid, the errors are printed and nothing is published
(exit code 1). Event ids derive from the content, so publishing the same file twice changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from smartpost_assignment.adapters.masterdata_queries import known_ids
from smartpost_assignment.application import import_envelopes
from smartpost_assignment.domain.importing import ImportFormatError, KnownIds, parse_masterdata
from smartpost_shared.db import make_engine
from smartpost_shared.messaging import EventPublisher, make_broker
from smartpost_shared.settings import KafkaSettings

EXIT_INVALID = 1
EXIT_UNREADABLE = 2


async def publish(envelopes: list, kafka: KafkaSettings) -> None:  # type: ignore[type-arg]
    broker = make_broker(kafka, service="importer")
    await broker.start()
    try:
        publisher = EventPublisher(broker)
        for envelope in envelopes:
            await publisher.publish(envelope)
    finally:
        await broker.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m smartpost_assignment.importer", description=__doc__.splitlines()[0]
    )
    parser.add_argument("file", type=Path, help="CSV (record_type column) or JSON export")
    parser.add_argument("--account", required=True, help="account id the master data belongs to")
    parser.add_argument("--bootstrap-servers", default=None, help="Kafka bootstrap servers (default: settings)")
    parser.add_argument(
        "--database-url",
        default=None,
        help="assignment database to resolve references to master data imported earlier (optional)",
    )
    parser.add_argument("--dry-run", action="store_true", help="validate only, publish nothing")
    args = parser.parse_args(argv)
    try:
        raw = args.file.read_bytes()
    except OSError:
        return EXIT_UNREADABLE
    known = KnownIds()
    if args.database_url:
        with make_engine(args.database_url).connect() as conn:
            props, units, contacts = known_ids(conn, args.account)
        known = KnownIds(props, units, contacts)
    try:
        result = parse_masterdata(raw, filename=args.file.name, known=known)
    except ImportFormatError:
        return EXIT_UNREADABLE
    if not result.ok:
        for _error in result.errors:
            pass
        return EXIT_INVALID
    ", ".join(f"{n} {kind}" for kind, n in result.counts.items())
    if args.dry_run:
        return 0
    kafka = KafkaSettings()
    if args.bootstrap_servers:
        kafka = KafkaSettings(bootstrap_servers=args.bootstrap_servers)
    import hashlib  # noqa: PLC0415

    import_id = hashlib.sha256(args.account.encode() + b"\0" + raw).hexdigest()[:32]
    envelopes = import_envelopes(result.events, account_id=args.account, import_id=import_id)
    asyncio.run(publish(envelopes, kafka))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
