from __future__ import annotations

from smartpost_gateway.auth import authenticate, csrf_ok, hash_password, session_for, verify_password
from smartpost_gateway.settings import Role, StaffUserConfig


def users() -> dict[str, StaffUserConfig]:
    return {
        "anna@hv-muster.de": StaffUserConfig(
            password_hash=hash_password("geheim"), account_id="demo", roles=[Role.PREPARE, Role.RELEASE]
        )
    }


def test_password_hash_verifies_only_the_right_password() -> None:
    encoded = hash_password("Serienbrief!")
    assert encoded.startswith("scrypt$")
    assert verify_password("Serienbrief!", encoded)
    assert not verify_password("serienbrief!", encoded)
    assert not verify_password("Serienbrief!", "garbage")
    assert hash_password("x") != hash_password("x")  # salted


def test_login_is_case_insensitive_on_the_name_and_strict_on_the_password() -> None:
    assert authenticate(users(), "Anna@HV-Muster.de", "geheim") is not None
    assert authenticate(users(), "anna@hv-muster.de", "falsch") is None
    assert authenticate(users(), "unbekannt@hv-muster.de", "geheim") is None


def test_a_removed_user_has_no_session() -> None:
    session = authenticate(users(), "anna@hv-muster.de", "geheim")
    assert session is not None
    assert session_for(session.login, session.csrf_token, session.issued_at, users()) is not None
    assert session_for(session.login, session.csrf_token, session.issued_at, {}) is None


def test_roles_come_from_the_current_configuration() -> None:
    session = authenticate(users(), "anna@hv-muster.de", "geheim")
    assert session is not None
    reduced = users()
    reduced["anna@hv-muster.de"] = reduced["anna@hv-muster.de"].model_copy(update={"roles": [Role.PREPARE]})
    read = session_for(session.login, session.csrf_token, session.issued_at, reduced)
    assert read is not None
    assert not read.can(Role.RELEASE)
    assert csrf_ok(read, session.csrf_token)
    assert not csrf_ok(read, "other")
    assert not csrf_ok(read, None)
