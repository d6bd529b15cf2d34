from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from smartpost_portal_publisher.domain import (
    AccessWindow,
    ContractPeriod,
    CoUserRights,
    PortalDocument,
    Principal,
    PrincipalKind,
    Refusal,
    StorageKeyError,
    access_refusal,
    check_storage_key,
    document_id_for,
    folder_tree,
    format_code,
    in_folder,
    normalize_code,
    parse_folder,
    unit_accessible,
)
from smartpost_portal_publisher.security import (
    DownloadGrant,
    LinkProblem,
    check_grant,
    hash_password,
    sign_grant,
    verify_password,
)

TODAY = date(2026, 6, 15)
WINDOW = AccessWindow(days_before_start=10, days_after_end=30)

DOC = PortalDocument(
    account_id="a1",
    document_id="d1",
    item_id="i1",
    letter_id="l1",
    contact_id="c1",
    property_id="p1",
    unit_id="u1",
    title="Abrechnung",
    folder=("Abrechnungen", "Heizkosten"),
    letter_date=TODAY,
    storage_key="accounts/a1/letters/l1/parts/x/00000.pdf",
    page_count=2,
    published_at=datetime(2026, 6, 15, tzinfo=UTC),
)
CONTRACT = ContractPeriod(contact_id="c1", property_id="p1", unit_id="u1", start=date(2020, 1, 1), end=None)
CONTACT = Principal("pr1", "a1", "c1", PrincipalKind.CONTACT)


def refusal(principal=CONTACT, document=DOC, contracts=(CONTRACT,), window=WINDOW, today=TODAY):
    return access_refusal(principal, document, list(contracts), window, today)


def test_recipient_sees_own_document():
    assert refusal() is None


def test_other_contact_and_other_account_are_not_found():
    assert refusal(principal=replace(CONTACT, contact_id="c2")) is Refusal.NOT_FOUND
    assert refusal(principal=replace(CONTACT, account_id="a2")) is Refusal.NOT_FOUND


def test_revoked_document_is_refused():
    assert refusal(document=replace(DOC, revoked_at=datetime(2026, 6, 16, tzinfo=UTC))) is Refusal.REVOKED


def test_foreign_document_reports_not_found_even_when_revoked():
    # Revocation must not reveal that someone else's document exists.
    revoked = replace(DOC, revoked_at=datetime(2026, 6, 16, tzinfo=UTC))
    assert refusal(principal=replace(CONTACT, contact_id="c2"), document=revoked) is Refusal.NOT_FOUND


@pytest.mark.parametrize(
    ("start", "end", "today", "allowed"),
    [
        (date(2026, 6, 25), None, TODAY, True),  # starts in 10 days: window opens exactly today
        (date(2026, 6, 26), None, TODAY, False),  # 11 days ahead: not yet
        (date(2020, 1, 1), date(2026, 5, 16), TODAY, True),  # ended 30 days ago: last day of access
        (date(2020, 1, 1), date(2026, 5, 15), TODAY, False),  # ended 31 days ago: access ended immediately
        (date(2020, 1, 1), date(2026, 12, 31), TODAY, True),
    ],
)
def test_contract_window(start, end, today, allowed):
    contract = replace(CONTRACT, start=start, end=end)
    assert (refusal(contracts=[contract], today=today) is None) is allowed
    if not allowed:
        assert refusal(contracts=[contract], today=today) is Refusal.OUTSIDE_WINDOW


PERIOD_DOC = replace(DOC, period_start=date(2025, 1, 1), period_end=date(2025, 12, 31), letter_date=date(2026, 6, 1))


@pytest.mark.parametrize(
    ("start", "end", "today", "allowed"),
    [
        # Sold on 30.06.2025, the statement 2025 written 01.06.2026: readable until 30 days after the letter date.
        (date(2020, 1, 1), date(2025, 6, 30), TODAY, True),
        (date(2020, 1, 1), date(2025, 6, 30), date(2026, 7, 1), True),
        (date(2020, 1, 1), date(2025, 6, 30), date(2026, 7, 2), False),
        # Sold before the period began: no share in the statement, the ordinary window only.
        (date(2020, 1, 1), date(2024, 12, 31), TODAY, False),
        # Bought after the period: the ordinary window (contract runs today).
        (date(2026, 1, 1), None, TODAY, True),
        # Bought inside the period, still owner: readable.
        (date(2025, 7, 1), None, TODAY, True),
    ],
)
def test_billing_period_lets_a_former_owner_read_the_statement_for_their_months(start, end, today, allowed):
    contract = replace(CONTRACT, start=start, end=end)
    assert (refusal(document=PERIOD_DOC, contracts=[contract], today=today) is None) is allowed
    # Without a period the same former owner is outside the window (the rule only widens for the period's letter).
    if end is not None and end < date(2026, 1, 1):
        assert refusal(document=DOC, contracts=[contract], today=today) is Refusal.OUTSIDE_WINDOW


def test_billing_period_does_not_open_other_units_or_other_contacts():
    contract = replace(CONTRACT, unit_id="u2", start=date(2020, 1, 1), end=date(2025, 6, 30))
    assert refusal(document=PERIOD_DOC, contracts=[contract]) is Refusal.OUTSIDE_WINDOW
    other = replace(CONTRACT, contact_id="c2", start=date(2020, 1, 1), end=date(2025, 6, 30))
    assert refusal(document=PERIOD_DOC, contracts=[other]) is Refusal.OUTSIDE_WINDOW


def test_zero_window_means_contract_dates_exactly():
    zero = AccessWindow(0, 0)
    contract = replace(CONTRACT, start=date(2026, 1, 1), end=TODAY)
    assert refusal(contracts=[contract], window=zero) is None
    assert refusal(contracts=[contract], window=zero, today=date(2026, 6, 16)) is Refusal.OUTSIDE_WINDOW


def test_negative_window_rejected():
    with pytest.raises(ValueError, match="negative"):
        AccessWindow(-1, 0)


def test_contract_for_another_unit_does_not_grant_access():
    # The previous tenant of u1 must not see letters once their contract there ended, even if they rent u2 now.
    other_unit = replace(CONTRACT, unit_id="u2")
    assert refusal(contracts=[other_unit]) is Refusal.OUTSIDE_WINDOW
    assert refusal(contracts=[]) is Refusal.OUTSIDE_WINDOW


def test_contract_of_someone_else_does_not_count():
    assert refusal(contracts=[replace(CONTRACT, contact_id="c9")]) is Refusal.OUTSIDE_WINDOW


def test_property_level_document_uses_any_contract_in_the_property():
    doc = replace(DOC, unit_id=None)
    assert refusal(document=doc, contracts=[replace(CONTRACT, unit_id="u7")]) is None
    assert refusal(document=doc, contracts=[replace(CONTRACT, property_id="p2")]) is Refusal.OUTSIDE_WINDOW


def test_contact_level_document_is_not_bound_to_contracts():
    doc = replace(DOC, unit_id=None, property_id=None)
    assert refusal(document=doc, contracts=[]) is None


def test_admin_co_user_sees_personal_documents_of_their_unit_only():
    admin = Principal("pr2", "a1", "c1", PrincipalKind.CO_USER, CoUserRights.ADMIN, "u1")
    assert refusal(principal=admin) is None
    assert refusal(principal=replace(admin, unit_id="u2")) is Refusal.NOT_FOUND
    assert refusal(principal=admin, document=replace(DOC, unit_id=None)) is Refusal.NOT_FOUND


def test_user_co_user_sees_no_personal_documents():
    user = Principal("pr3", "a1", "c1", PrincipalKind.CO_USER, CoUserRights.USER, "u1")
    assert refusal(principal=user) is Refusal.NOT_FOUND


def test_co_user_follows_the_contacts_contract_window():
    admin = Principal("pr2", "a1", "c1", PrincipalKind.CO_USER, CoUserRights.ADMIN, "u1")
    ended = replace(CONTRACT, end=date(2025, 1, 1))
    assert refusal(principal=admin, contracts=[ended]) is Refusal.OUTSIDE_WINDOW


def test_unit_accessible_for_co_user_invitations():
    assert unit_accessible("c1", "u1", [CONTRACT], WINDOW, TODAY)
    assert not unit_accessible("c1", "u2", [CONTRACT], WINDOW, TODAY)
    assert not unit_accessible("c2", "u1", [CONTRACT], WINDOW, TODAY)


def test_document_id_is_deterministic_per_account_and_item():
    assert document_id_for("a1", "i1") == document_id_for("a1", "i1")
    assert document_id_for("a1", "i1") != document_id_for("a2", "i1")
    assert document_id_for("a1", "i1") != document_id_for("a1", "i2")


@pytest.mark.parametrize(
    "key",
    [
        "accounts/a2/letters/l1/parts/x/00000.pdf",  # other tenant
        "accounts/a1/../a2/letters/l1/parts/x/00000.pdf",
        "accounts/a10/letters/l1/x.pdf",  # prefix of another account id must not match
        "letters/l1/x.pdf",
        "accounts/a1//x.pdf",
    ],
)
def test_storage_keys_outside_the_account_are_refused(key):
    with pytest.raises(StorageKeyError):
        check_storage_key("a1", key)


def test_storage_key_of_the_account_is_accepted():
    check_storage_key("a1", DOC.storage_key)


def test_folders():
    assert parse_folder("Abrechnungen / Heizkosten") == ("Abrechnungen", "Heizkosten")
    assert parse_folder(None) == ()
    assert in_folder(("A", "B"), ("A",))
    assert not in_folder(("A", "B"), ("A",), recursive=False)
    assert not in_folder(("AB",), ("A",))
    tree = folder_tree([("A", "B"), ("A",), ("C",)])
    assert tree.total == 3
    assert tree.children is not None
    assert tree.children["A"].total == 2
    assert tree.children["A"].documents == 1
    assert tree.children["A"].children is not None
    assert tree.children["A"].children["B"].path == ("A", "B")


def test_invitation_codes_normalize_typing_mistakes():
    code = "0123456789ABCDEF"
    assert normalize_code(format_code(code)) == code
    assert normalize_code("o123-4567 89ab-cdef") == code  # O typed for zero, lower case, spaces
    assert normalize_code("0123-4567") is None
    assert normalize_code("0123-4567-89AB-CDEU") is None  # U is not in the alphabet


def test_download_signature_rejects_tampering_and_expiry():
    secret = b"s" * 32
    grant = DownloadGrant("a1", "d1", "pr1", expires=1_000)
    sig = sign_grant(secret, grant)
    assert check_grant(secret, grant, sig, now=999) is None
    assert check_grant(secret, grant, sig, now=1_000) is LinkProblem.EXPIRED
    assert check_grant(secret, replace(grant, expires=5_000), sig, now=999) is LinkProblem.TAMPERED
    assert check_grant(secret, replace(grant, document_id="d2"), sig, now=999) is LinkProblem.TAMPERED
    assert check_grant(secret, replace(grant, principal_id="pr2"), sig, now=999) is LinkProblem.TAMPERED
    assert check_grant(secret, replace(grant, account_id="a2"), sig, now=999) is LinkProblem.TAMPERED
    assert check_grant(b"t" * 32, grant, sig, now=999) is LinkProblem.TAMPERED
    assert check_grant(secret, grant, sig[:-1] + ("A" if sig[-1] != "A" else "B"), now=999) is LinkProblem.TAMPERED


def test_password_hash_roundtrip():
    stored = hash_password("correct horse battery", b"0123456789abcdef")
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored)
    assert not verify_password("x", "not-a-hash")
