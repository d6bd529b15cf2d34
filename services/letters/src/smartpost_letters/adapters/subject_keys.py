"""Crypto-shredding of personal data in the letters event store (GDPR Art. 17 on an append-only history).

Events are never changed, so personal data in them is stored encrypted and the erasure deletes the key. What is
personal: the text the splitter read from a letter's pages and the matching evidence about its recipient. The
unit of encryption is the *part* (one individual letter = one recipient): every part has its own AES-256-GCM key
in ``letters_subject_keys`` (in the letters database, next to the read model), linked to the contact the part is
currently assigned to. Erasing a contact deletes the keys of all parts assigned to them; old events and snapshots
then decode with the placeholder ``[gelöscht]`` and the letter still loads.

Sealed (in every stored event and snapshot, wherever a part appears: ``SplitRecorded``, ``AssignmentsRecorded``,
``AssignmentsDeferred``, ``BulkReviewed``/``BulkReviewUndone``, snapshots of the letter):

- a part's ``address_lines`` and ``identifiers`` (read from its first page);
- the ``evidence`` of its assignment and the ``evidence`` of every candidate of it;
- the ``message`` of an assignment warning about a part (the part's key) or about a contact only (a key per letter
  and contact, ``w:<letter>:<contact>``, linked to the contact).

Not sealed (documented in the README): ids (contact, part, property, unit), scores, titles, file names, staff
names in ``actor``, and events written before this module existed.

:class:`ShreddingMapper` does it below the domain: the aggregate sees clear values (or placeholders), the stored
JSON has the fields emptied and one ``"_sealed": {"k": part id, "n": nonce, "c": ciphertext}`` per part.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import get_topic
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

from smartpost_letters.domain.erasure import ERASED
from smartpost_shared.logging import get_logger

if TYPE_CHECKING:
    from collections.abc import Iterable

    from eventsourcing.domain import DomainEventProtocol
    from sqlalchemy.engine import Connection, Engine

log = get_logger(__name__)

keys_metadata = MetaData()

subject_keys = Table(
    "letters_subject_keys",
    keys_metadata,
    Column("key_id", String(128), primary_key=True),  # the part id
    Column("account_id", String(64), nullable=False),
    Column("letter_id", String(36), nullable=False),
    Column("contact_id", String(128), nullable=True),  # the contact the part is assigned to now (None: nobody)
    Column("secret", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_letters_subject_keys_contact", "account_id", "contact_id"),
)

PERSONAL_LISTS = ("address_lines", "identifiers")
ASSIGNMENT_KEYS = ("assignment", "before", "after")
SEALED = "_sealed"
POSITIVE_TTL_SECONDS = 30.0  # another replica's erasure is seen within this time (cached letters: see the event)
CHUNK = 500


class SubjectKeyStore:
    """Per-part keys: created on first use, linked to the assigned contact, deleted on erasure."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._cache: dict[str, tuple[bytes | None, float]] = {}
        self._guard = threading.Lock()
        self._tables_ready = False

    def create_tables(self) -> None:
        keys_metadata.create_all(self.engine)
        self._tables_ready = True

    def _ready(self) -> None:
        """Create the table on first use when the database was not reachable at start-up (or a replica raced)."""
        if not self._tables_ready:
            try:
                self.create_tables()
            except DBAPIError:
                keys_metadata.create_all(self.engine)  # a concurrent CREATE by another replica: once more
                self._tables_ready = True

    # -- cache
    def _cached(self, key_id: str) -> tuple[bool, bytes | None]:
        with self._guard:
            entry = self._cache.get(key_id)
        if entry is None:
            return False, None
        secret, at = entry
        if secret is not None and time.monotonic() - at > POSITIVE_TTL_SECONDS:
            return False, None
        return True, secret

    def _remember(self, found: dict[str, bytes | None]) -> None:
        now = time.monotonic()
        with self._guard:
            for key_id, secret in found.items():
                self._cache[key_id] = (secret, now)
            if len(self._cache) > 200_000:
                self._cache.clear()

    def fetch(self, key_ids: Iterable[str]) -> dict[str, bytes | None]:
        """The secrets of these keys; None for a key that does not exist (shredded)."""
        self._ready()
        result: dict[str, bytes | None] = {}
        missing: list[str] = []
        for key_id in dict.fromkeys(key_ids):
            hit, secret = self._cached(key_id)
            if hit:
                result[key_id] = secret
            else:
                missing.append(key_id)
        if missing:
            found: dict[str, bytes | None] = dict.fromkeys(missing)
            with self.engine.connect() as conn:
                for start in range(0, len(missing), CHUNK):
                    chunk = missing[start : start + CHUNK]
                    rows = conn.execute(
                        select(subject_keys.c.key_id, subject_keys.c.secret).where(subject_keys.c.key_id.in_(chunk))
                    )
                    for row in rows:
                        found[row.key_id] = bytes(row.secret)
            self._remember(found)
            result.update(found)
        return result

    def ensure(
        self, account_id: str, letter_id: str, key_ids: Iterable[str], links: dict[str, str | None]
    ) -> dict[str, bytes]:
        """Keys for these parts (created when new) and the current contact of the parts in ``links``."""
        # Every part that is linked gets a key too: the erasure finds a contact's parts through this table.
        wanted = list(dict.fromkeys([*key_ids, *links]))
        try:
            return self._ensure(account_id, letter_id, wanted, links)
        except IntegrityError:  # another replica created one of the keys at the same moment
            with self._guard:
                for key_id in wanted:
                    self._cache.pop(key_id, None)
            return self._ensure(account_id, letter_id, wanted, links)

    def _ensure(
        self, account_id: str, letter_id: str, wanted: list[str], links: dict[str, str | None]
    ) -> dict[str, bytes]:
        known = {k: v for k, v in self.fetch(wanted).items() if v is not None}
        new = [k for k in wanted if k not in known]
        with self.engine.begin() as conn:
            if new:
                rows: list[dict[str, Any]] = []
                for key_id in new:
                    secret = AESGCM.generate_key(bit_length=256)
                    known[key_id] = secret
                    rows.append(
                        {
                            "key_id": key_id,
                            "account_id": account_id,
                            "letter_id": letter_id,
                            "contact_id": links.get(key_id),
                            "secret": secret,
                            "created_at": datetime.now(UTC),
                        }
                    )
                conn.execute(insert(subject_keys), rows)
            relinks = [{"k": key_id, "c": contact} for key_id, contact in links.items() if key_id not in new]
            if relinks:
                conn.execute(
                    update(subject_keys)
                    .where(and_(subject_keys.c.key_id == bindparam("k"), subject_keys.c.account_id == account_id))
                    .values(contact_id=bindparam("c")),
                    relinks,
                )
        self._remember(dict(known))
        return known

    def parts_of(self, account_id: str, contact_id: str) -> list[tuple[str, str]]:
        """(letter id, part id) of every part whose key is linked to this contact."""
        self._ready()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(subject_keys.c.letter_id, subject_keys.c.key_id).where(
                    and_(subject_keys.c.account_id == account_id, subject_keys.c.contact_id == contact_id)
                )
            )
            return [(r.letter_id, r.key_id) for r in rows]

    def shred(self, account_id: str, contact_id: str, conn: Connection | None = None) -> int:
        """Delete every key of this contact's parts: their sealed data is unreadable from now on.

        ``conn``: run in the caller's transaction (the consumer's, with its processed-event row and audit record).
        """
        self._ready()
        if conn is None:
            with self.engine.begin() as own:
                return self.shred(account_id, contact_id, own)
        of_contact = and_(subject_keys.c.account_id == account_id, subject_keys.c.contact_id == contact_id)
        ids = list(conn.execute(select(subject_keys.c.key_id).where(of_contact)).scalars())
        conn.execute(delete(subject_keys).where(of_contact))
        self._remember(dict.fromkeys(ids))
        return len(ids)


def subject_keys_for(env: dict[str, str] | None) -> SubjectKeyStore | None:
    """The key store in the event store's own database (SQLite file or PostgreSQL); None for in-memory stores.

    Every process that opens the event store (API, consumers, tools, tests) then reads with the same keys.
    """
    from smartpost_letters.adapters.event_store import FACTORY_TOPIC as DEFERRED_POSTGRES_FACTORY  # noqa: PLC0415
    from smartpost_shared.db import make_engine  # noqa: PLC0415 - only for a persistent event store

    env = env or {}
    module = env.get("PERSISTENCE_MODULE", "")
    if module == "eventsourcing.sqlite" and env.get("SQLITE_DBNAME", ":memory:") not in ("", ":memory:"):
        if "mode=memory" in env["SQLITE_DBNAME"]:
            return None
        url = f"sqlite:///{env['SQLITE_DBNAME']}"
    elif module in ("eventsourcing.postgres", DEFERRED_POSTGRES_FACTORY):
        url = (
            f"postgresql://{quote(env['POSTGRES_USER'])}:{quote(env.get('POSTGRES_PASSWORD', ''))}"
            f"@{env['POSTGRES_HOST']}:{env.get('POSTGRES_PORT', '5432')}/{env['POSTGRES_DBNAME']}"
        )
    else:
        return None
    store = SubjectKeyStore(make_engine(url))
    try:
        store.create_tables()
    except DBAPIError:  # database down or another replica creating it: created on first use
        log.warning("letters.subject_keys_table_deferred", exc_info=True)
    return store


# ------------------------------------------------------------------------------------------ sealing the JSON


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _secret_fields(node: dict[str, Any]) -> dict[str, Any]:  # noqa: C901 - one branch per kind of field
    """Take the personal values out of a part-like dict (they are replaced by empty values)."""
    taken: dict[str, Any] = {}
    for name in PERSONAL_LISTS:
        if node.get(name):
            taken[name] = node[name]
            node[name] = []
    if node.get("evidence"):
        taken["evidence"] = node["evidence"]
        node["evidence"] = []
    candidates = node.get("candidates")
    if isinstance(candidates, list):
        evidence = [c.get("evidence", []) if isinstance(c, dict) else [] for c in candidates]
        if any(evidence):
            taken["candidates"] = evidence
            for c in candidates:
                if isinstance(c, dict):
                    c["evidence"] = []
    for sub in ASSIGNMENT_KEYS:
        inner = node.get(sub)
        if isinstance(inner, dict):
            inner_taken = _secret_fields(inner)
            if inner_taken:
                taken[sub] = inner_taken
    return taken


def _restore(node: dict[str, Any], taken: dict[str, Any]) -> None:
    if "message" in taken:
        node["message"] = taken["message"]
    for name in (*PERSONAL_LISTS, "evidence"):
        if name in taken:
            node[name] = taken[name]
    if "candidates" in taken and isinstance(node.get("candidates"), list):
        for c, evidence in zip(node["candidates"], taken["candidates"], strict=False):
            if isinstance(c, dict):
                c["evidence"] = evidence
    for sub in ASSIGNMENT_KEYS:
        if sub in taken and isinstance(node.get(sub), dict):
            _restore(node[sub], taken[sub])


def _placeholders(node: dict[str, Any]) -> None:
    """Where the key is gone: the shape stays, the values say they were erased."""
    if _is_warning(node):
        node["message"] = ERASED
        return
    if "address_lines" in node:
        node["address_lines"] = [ERASED]
    if "identifiers" in node:
        node["identifiers"] = []
    if "evidence" in node:
        node["evidence"] = [ERASED]
    for c in node.get("candidates") or []:
        if isinstance(c, dict) and "evidence" in c:
            c["evidence"] = [ERASED]
    for sub in ASSIGNMENT_KEYS:
        if isinstance(node.get(sub), dict):
            _placeholders(node[sub])


def _is_part_like(node: dict[str, Any]) -> bool:
    # Parts, part assignments, bulk changes, deferred assignments; not warnings (code + message).
    return isinstance(node.get("part_id"), str) and "message" not in node


def _is_warning(node: dict[str, Any]) -> bool:
    return isinstance(node.get("code"), str) and isinstance(node.get("message"), str)


def _warning_key(node: dict[str, Any], letter_id: str) -> str | None:
    """The key that seals a warning's message (None: it names neither part nor contact and stays clear).

    A warning about a part uses the part's key; one about a contact only uses the contact's key in this letter
    (``w:<letter>:<contact>``, linked to the contact).
    """
    part, contact = node.get("part_id"), node.get("contact_id")
    if isinstance(part, str) and part:
        return part
    if isinstance(contact, str) and contact:
        return f"w:{letter_id}:{contact}"
    return None


def _current_contact(node: dict[str, Any]) -> tuple[bool, str | None]:
    """Whether this part-like dict says who the part belongs to now, and who (None: nobody)."""

    def of(assignment: Any) -> str | None:
        if isinstance(assignment, dict) and assignment.get("status") == "assigned":
            contact = assignment.get("contact_id")
            return contact if isinstance(contact, str) else None
        return None

    if "after" in node:  # BulkChange
        return True, of(node["after"])
    if "assignment" in node:  # Part
        return (node["assignment"] is not None), of(node["assignment"])
    if "status" in node and "contact_id" in node:  # PartAssignment (also pending, as dicts)
        return True, of(node)
    if "action" in node and "contact_id" in node:  # PartCorrected
        contact = node.get("contact_id")
        return True, contact if node.get("action") == "reassign" and isinstance(contact, str) else None
    return False, None


def _walk(node: Any, visit: Any) -> None:
    if isinstance(node, dict):
        if _is_part_like(node) or _is_warning(node):
            visit(node)
        for value in node.values():
            if isinstance(value, (dict, list)):
                _walk(value, visit)
    elif isinstance(node, list):
        for value in node:
            if isinstance(value, (dict, list)):
                _walk(value, visit)


def seal_state(data: dict[str, Any], account_id: str, letter_id: str, keys: SubjectKeyStore) -> bool:
    """Seal every part's personal values in an event's JSON state (in place); True if anything changed."""
    found: list[tuple[dict[str, Any], dict[str, Any], str]] = []
    links: dict[str, str | None] = {}

    def visit(node: dict[str, Any]) -> None:
        if _is_warning(node):
            key_id = _warning_key(node, letter_id)
            if key_id is None or SEALED in node or not node["message"]:
                return
            if key_id.startswith("w:"):
                links[key_id] = node["contact_id"]
            found.append((node, {"message": node["message"]}, key_id))
            node["message"] = ""
            return
        says, contact = _current_contact(node)
        if says:
            links[node["part_id"]] = contact
        if SEALED in node:
            return
        taken = _secret_fields(node)
        if taken:
            found.append((node, taken, node["part_id"]))

    _walk(data, visit)
    if not found and not links:
        return False
    secrets = keys.ensure(account_id, letter_id, [key_id for _, _, key_id in found], links)
    for node, taken, key_id in found:
        nonce = os.urandom(12)
        plain = json.dumps(taken, ensure_ascii=False, separators=(",", ":")).encode()
        cipher = AESGCM(secrets[key_id]).encrypt(nonce, plain, key_id.encode())
        node[SEALED] = {"k": key_id, "n": _b64(nonce), "c": _b64(cipher)}
    return bool(found)


def unseal_state(data: dict[str, Any], keys: SubjectKeyStore) -> None:
    """Put the personal values back where the key still exists, placeholders where it was shredded."""
    nodes: list[dict[str, Any]] = []

    def visit(node: dict[str, Any]) -> None:
        if isinstance(node.get(SEALED), dict):
            nodes.append(node)

    _walk(data, visit)
    if not nodes:
        return
    secrets = keys.fetch(n[SEALED]["k"] for n in nodes)
    for node in nodes:
        sealed = node.pop(SEALED)
        secret = secrets.get(sealed["k"])
        if secret is None:
            _placeholders(node)
            continue
        plain = AESGCM(secret).decrypt(
            base64.b64decode(sealed["n"]), base64.b64decode(sealed["c"]), str(sealed["k"]).encode()
        )
        _restore(node, json.loads(plain))


class ShreddingMapper(Mapper[uuid.UUID]):
    """The library's mapper with per-part sealing between the JSON transcoder and compression/encryption."""

    def __init__(self, base: Mapper[uuid.UUID], keys: SubjectKeyStore) -> None:
        super().__init__(base.transcoder, base.compressor, base.cipher)
        self.keys = keys

    def to_stored_event(self, domain_event: DomainEventProtocol[uuid.UUID]) -> StoredEvent:
        topic = get_topic(domain_event.__class__)
        event_state = dict(vars(domain_event))
        originator_id = event_state.pop("originator_id")
        originator_version = event_state.pop("originator_version")
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            event_state["class_version"] = class_version
        stored_state = self.transcoder.encode(event_state)
        account = event_state.get("account_id")
        if account is None and isinstance(event_state.get("state"), dict):  # a snapshot
            account = event_state["state"].get("account_id")
        if isinstance(account, str) and (b'"part_id"' in stored_state):
            data = json.loads(stored_state)
            if seal_state(data, account, str(originator_id), self.keys):
                stored_state = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        if self.compressor:
            stored_state = self.compressor.compress(stored_state)
        if self.cipher:
            stored_state = self.cipher.encrypt(stored_state)
        return StoredEvent(
            originator_id=originator_id, originator_version=originator_version, topic=topic, state=stored_state
        )

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[uuid.UUID]:
        state = stored_event.state
        if self.cipher:
            state = self.cipher.decrypt(state)
        if self.compressor:
            state = self.compressor.decompress(state)
        if b'"_sealed"' in state:
            data = json.loads(state)
            unseal_state(data, self.keys)
            state = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        plain = StoredEvent(
            originator_id=stored_event.originator_id,
            originator_version=stored_event.originator_version,
            topic=stored_event.topic,
            state=state,
        )
        return Mapper(self.transcoder).to_domain_event(plain)
