"""Command line importer: validate a master-data export and publish it on ``masterdata.events``.

    python -m smartpost_assignment.importer examples/masterdata.csv --account demo
    python -m smartpost_assignment.importer export.json --account demo --dry-run
    python -m smartpost_assignment.importer all-accounts.csv            # the file names accounts (account_id)

Every row is validated first; if any row is invalid, every error is printed and nothing is published (exit code
1). A file that names accounts in an ``account_id`` column imports each of them (``--account`` picks one). The
counts per account and record type are printed. Event ids derive from the content, so publishing the same file
twice changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
from pathlib import Path
from typing import TextIO

from smartpost_assignment.adapters.masterdata_queries import known_ids
from smartpost_assignment.application import import_envelopes
from smartpost_assignment.domain.importing import (
    ACCOUNT_FIELD,
    ImportFormatError,
    ImportResult,
    KnownIds,
    accounts_in,
    parse_masterdata,
)
from smartpost_shared.db import make_engine
from smartpost_shared.messaging import EventPublisher, make_broker
from smartpost_shared.settings import KafkaSettings

EXIT_INVALID = 1
EXIT_UNREADABLE = 2
KIND_NAMES = {"property": "Liegenschaften", "unit": "Einheiten", "contact": "Kontakte", "contract": "Verträge"}


async def publish(envelopes: list, kafka: KafkaSettings) -> None:  # type: ignore[type-arg]
    broker = make_broker(kafka, service="importer")
    await broker.start()
    try:
        publisher = EventPublisher(broker)
        for envelope in envelopes:
            await publisher.publish(envelope)
    finally:
        await broker.stop()


def _counts(result: ImportResult) -> str:
    return ", ".join(f"{result.counts.get(kind, 0)} {name}" for kind, name in KIND_NAMES.items())


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:  # noqa: C901, PLR0911, PLR0912 - one branch per outcome
    out = out or sys.stdout
    parser = argparse.ArgumentParser(
        prog="python -m smartpost_assignment.importer", description=__doc__.splitlines()[0]
    )
    parser.add_argument("file", type=Path, help="CSV (record_type column) or JSON export")
    parser.add_argument(
        "--account", default=None, help=f"account the master data belongs to (optional if the file has {ACCOUNT_FIELD})"
    )
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
    except OSError as exc:
        out.write(f"Datei nicht lesbar: {args.file} ({exc.strerror})\n")
        return EXIT_UNREADABLE
    try:
        named = accounts_in(raw, args.file.name)
    except ImportFormatError as exc:
        out.write(f"Datei nicht lesbar: {exc}\n")
        return EXIT_UNREADABLE
    if args.account:
        accounts = [args.account]
    elif named:
        accounts = named
    else:
        out.write(f"Bitte --account angeben: die Datei nennt kein Konto (Spalte '{ACCOUNT_FIELD}').\n")
        return EXIT_UNREADABLE
    results: dict[str, ImportResult] = {}
    for account in accounts:
        known = KnownIds()
        if args.database_url:
            with make_engine(args.database_url).connect() as conn:
                props, units, contacts = known_ids(conn, account)
            known = KnownIds(props, units, contacts)
        try:
            results[account] = parse_masterdata(raw, filename=args.file.name, known=known, account=account)
        except ImportFormatError as exc:
            out.write(f"Datei nicht lesbar: {exc}\n")
            return EXIT_UNREADABLE
    invalid = {a: r for a, r in results.items() if not r.ok}
    for account, result in invalid.items():
        out.write(f"Konto {account}: {len(result.errors)} fehlerhafte Zeile(n):\n")
        for error in result.errors:
            what = " ".join(x for x in (error.record_type, error.record_id) if x)
            out.write(f"  {error.row}: {what}: {error.message}\n" if what else f"  {error.row}: {error.message}\n")
    if invalid:
        out.write("Nichts importiert: bitte die Zeilen korrigieren und die Datei erneut einlesen.\n")
        return EXIT_INVALID
    for account, result in results.items():
        out.write(f"Konto {account}: {_counts(result)} geprüft.\n")
    if args.dry_run:
        out.write("Probelauf: nichts veröffentlicht.\n")
        return 0
    kafka = KafkaSettings()
    if args.bootstrap_servers:
        kafka = KafkaSettings(bootstrap_servers=args.bootstrap_servers)
    for account, result in results.items():
        import_id = hashlib.sha256(account.encode() + b"\0" + raw).hexdigest()[:32]
        envelopes = import_envelopes(result.events, account_id=account, import_id=import_id)
        asyncio.run(publish(envelopes, kafka))
        out.write(f"Konto {account}: {len(envelopes)} Ereignisse veröffentlicht (Import {import_id}).\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
