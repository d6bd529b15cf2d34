"""Pure rules of the customer portal: who may see which published letter, when, and in which folder.

No I/O here. The application layer loads documents, principals and contracts and asks these functions; every
refusal has a reason so the API can answer without leaking whether someone else's document exists.

Access to a document requires ALL of:
- same account, and the document's contact is the principal's contact (a recipient sees only their own letters);
- a co-user additionally needs administrator rights (every SmartPost letter is a personal document; co-users with
  user rights see only public announcements, which this service does not hold) and the document must belong to
  the unit the co-user was invited for;
- the document is not revoked;
- the contact's contract for the document's unit (or, without a unit, for its property) covers today, widened by
  the account's access window (days before start / days after end). Letters addressed to a contact without property
  and unit (service providers) are not bound to a contract. No matching contract means no access (fail closed).
  A letter with a billing period (``period_start``/``period_end``, e.g. the annual statement 2024) is also readable
  by the holder of a contract that overlaps the period, until ``days_after_end`` after the later of the contract's
  end and the letter date: a former owner reads the statement for their months although they sold since.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from smartpost_shared.contracts.envelope import deterministic_event_id
from smartpost_shared.storage import account_key_problem


class PrincipalKind(StrEnum):
    CONTACT = "contact"  # the contact (tenant, owner, service provider) itself
    CO_USER = "co_user"  # someone the contact invited for one of their units


class CoUserRights(StrEnum):
    ADMIN = "admin"  # sees all documents of the unit, personal ones included
    USER = "user"  # sees only public announcements, no personal documents


class Refusal(StrEnum):
    NOT_FOUND = "not_found"  # not the principal's document (other contact, other account, guessed id, no rights)
    REVOKED = "revoked"
    OUTSIDE_WINDOW = "outside_window"


@dataclass(frozen=True)
class Principal:
    """An authenticated portal user acting for one contact of one account."""

    principal_id: str
    account_id: str
    contact_id: str
    kind: PrincipalKind
    rights: CoUserRights | None = None
    unit_id: str | None = None  # co-users only: the unit they were invited for


@dataclass(frozen=True)
class PortalDocument:
    """An individual letter in a recipient's portal inbox."""

    account_id: str
    document_id: str
    item_id: str
    letter_id: str
    contact_id: str
    property_id: str | None
    unit_id: str | None
    title: str
    folder: tuple[str, ...]
    letter_date: date
    storage_key: str
    page_count: int
    published_at: datetime
    revoked_at: datetime | None = None
    first_viewed_at: datetime | None = None
    # The billing period the letter covers (optional, both or neither): see ``covers_document``.
    period_start: date | None = None
    period_end: date | None = None
    # Every serial-letter document is addressed to one person; kept explicit so the co-user rule reads clearly.
    personal: bool = True


@dataclass(frozen=True)
class ContractPeriod:
    """The part of a master-data contract the access window needs."""

    contact_id: str
    property_id: str
    unit_id: str
    start: date
    end: date | None


@dataclass(frozen=True)
class AccessWindow:
    """How long before a contract starts and after it ends its contact may read the unit's letters."""

    days_before_start: int
    days_after_end: int

    def __post_init__(self) -> None:
        if self.days_before_start < 0 or self.days_after_end < 0:
            msg = "access window days must not be negative"
            raise ValueError(msg)

    def covers(self, contract: ContractPeriod, today: date) -> bool:
        opens = contract.start - timedelta(days=self.days_before_start)
        if today < opens:
            return False
        if contract.end is None:
            return True
        return today <= contract.end + timedelta(days=self.days_after_end)

    def covers_document(self, contract: ContractPeriod, document: PortalDocument, today: date) -> bool:
        """The contract's window, or for a letter with a billing period a contract that overlaps the period.

        A contract overlapping the period makes its holder a recipient of that letter (the assignment judged it the
        same way); they may read it until ``days_after_end`` after the later of the contract's end and the letter
        date, so a former owner who sold before the statement was written still gets the full window to read it.
        """
        if self.covers(contract, today):
            return True
        if document.period_start is None or document.period_end is None:
            return False
        overlaps = contract.start <= document.period_end and (
            contract.end is None or contract.end >= document.period_start
        )
        if not overlaps:
            return False
        if contract.end is None:
            return True
        return today <= max(contract.end, document.letter_date) + timedelta(days=self.days_after_end)


def relevant_contracts(document: PortalDocument, contracts: list[ContractPeriod]) -> list[ContractPeriod]:
    """Contracts of the document's contact that tie it to the document's unit (or property if there is no unit)."""
    own = [c for c in contracts if c.contact_id == document.contact_id]
    if document.unit_id is not None:
        return [c for c in own if c.unit_id == document.unit_id]
    if document.property_id is not None:
        return [c for c in own if c.property_id == document.property_id]
    return own


def within_window(document: PortalDocument, contracts: list[ContractPeriod], window: AccessWindow, today: date) -> bool:
    if document.unit_id is None and document.property_id is None:
        return True  # a letter to the contact as such (e.g. a service provider): no contract binds it
    return any(window.covers_document(c, document, today) for c in relevant_contracts(document, contracts))


def sees_owner_documents(principal: Principal, document: PortalDocument) -> bool:
    """Whether the principal may see this document at all (ignoring revocation and the contract window)."""
    if principal.account_id != document.account_id or principal.contact_id != document.contact_id:
        return False
    if principal.kind is PrincipalKind.CONTACT:
        return True
    if document.personal and principal.rights is not CoUserRights.ADMIN:
        return False
    return document.unit_id is not None and document.unit_id == principal.unit_id


def access_refusal(
    principal: Principal,
    document: PortalDocument,
    contracts: list[ContractPeriod],
    window: AccessWindow,
    today: date,
) -> Refusal | None:
    """Why ``principal`` may not read ``document`` today, or None if it may."""
    if not sees_owner_documents(principal, document):
        return Refusal.NOT_FOUND
    if document.revoked_at is not None:
        return Refusal.REVOKED
    if not within_window(document, contracts, window, today):
        return Refusal.OUTSIDE_WINDOW
    return None


def may_invite_co_user(principal: Principal) -> bool:
    """Only the contact itself hands out co-user access; co-users cannot invite further people."""
    return principal.kind is PrincipalKind.CONTACT


def unit_accessible(
    contact_id: str, unit_id: str, contracts: list[ContractPeriod], window: AccessWindow, today: date
) -> bool:
    return any(c.contact_id == contact_id and c.unit_id == unit_id and window.covers(c, today) for c in contracts)


# --- identities and keys -------------------------------------------------------------------------------------


def document_id_for(account_id: str, item_id: str) -> str:
    """The portal document of a released item: deterministic, so a re-delivered release maps to the same row."""
    return str(deterministic_event_id("portal-document", account_id, item_id))


class StorageKeyError(ValueError):
    """A released item points outside its account's storage area."""


def check_storage_key(account_id: str, storage_key: str) -> None:
    """Refuse keys outside ``accounts/<account_id>/`` (a cross-tenant key would be a data breach)."""
    problem = account_key_problem(account_id, storage_key)
    if problem is not None:
        raise StorageKeyError(problem)


# --- folders -----------------------------------------------------------------------------------------------------

FOLDER_SEPARATOR = "/"


def parse_folder(text: str | None) -> tuple[str, ...]:
    """``"Abrechnung/Heizkosten"`` -> ``("Abrechnung", "Heizkosten")``; empty means the root."""
    if not text:
        return ()
    return tuple(p.strip() for p in text.split(FOLDER_SEPARATOR) if p.strip())


def in_folder(document_folder: tuple[str, ...], folder: tuple[str, ...], *, recursive: bool = True) -> bool:
    if recursive:
        return document_folder[: len(folder)] == folder
    return document_folder == folder


@dataclass
class FolderNode:
    name: str
    path: tuple[str, ...]
    documents: int = 0  # documents directly in this folder
    total: int = 0  # including sub-folders
    children: dict[str, FolderNode] | None = None


def folder_tree(folders: list[tuple[str, ...]]) -> FolderNode:
    """The folder tree (document types, max. five levels) of the given documents' folders, with counts."""
    root = FolderNode(name="", path=(), children={})
    for folder in folders:
        node = root
        node.total += 1
        for depth, name in enumerate(folder):
            assert node.children is not None
            child = node.children.get(name)
            if child is None:
                child = FolderNode(name=name, path=folder[: depth + 1], children={})
                node.children[name] = child
            node = child
            node.total += 1
        node.documents += 1
    return root


# --- invitation codes --------------------------------------------------------------------------------------------

# Crockford base32 without I, L, O, U: easy to read aloud and to type from a printed letter.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_GROUPS = 4
CODE_GROUP_LENGTH = 4  # 16 symbols x 5 bits = 80 bits: not guessable online
_CODE_CONFUSABLE = str.maketrans({"O": "0", "I": "1", "L": "1"})
_CODE_CLEAN = re.compile(r"[\s\-_.]")


def format_code(symbols: str) -> str:
    return "-".join(symbols[i : i + CODE_GROUP_LENGTH] for i in range(0, len(symbols), CODE_GROUP_LENGTH))


def normalize_code(text: str) -> str | None:
    """The canonical form of a typed invitation code, or None if it cannot be one."""
    cleaned = _CODE_CLEAN.sub("", text).upper().translate(_CODE_CONFUSABLE)
    if len(cleaned) != CODE_GROUPS * CODE_GROUP_LENGTH or any(ch not in CODE_ALPHABET for ch in cleaned):
        return None
    return cleaned
