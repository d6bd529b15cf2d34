from __future__ import annotations

import time

from smartpost_gateway.auth import authenticate, csrf_ok, hash_password, read_session, sign_session, verify_password
from smartpost_gateway.settings import Role, StaffUserConfig

SECRET = "test-secret"


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


def test_session_cookie_round_trip_and_tampering() -> None:
    session = authenticate(users(), "anna@hv-muster.de", "geheim")
    assert session is not None
    cookie = sign_session(session, SECRET)
    read = read_session(cookie, SECRET, max_age_seconds=3600, users=users())
    assert read is not None
    assert read.account_id == "demo"
    assert read.can(Role.RELEASE)
    assert csrf_ok(read, session.csrf_token)
    assert not csrf_ok(read, "other")
    assert not csrf_ok(read, None)
    body, signature = cookie.rsplit(".", 1)
    forged = body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + signature
    assert read_session(forged, SECRET, max_age_seconds=3600, users=users()) is None
    assert read_session(cookie, "another-secret", max_age_seconds=3600, users=users()) is None
    assert read_session(None, SECRET, max_age_seconds=3600, users=users()) is None


def test_expired_session_and_removed_user_are_rejected() -> None:
    session = authenticate(users(), "anna@hv-muster.de", "geheim")
    assert session is not None
    old = type(session)(**{**session.__dict__, "issued_at": int(time.time()) - 7200})
    assert read_session(sign_session(old, SECRET), SECRET, max_age_seconds=3600, users=users()) is None
    assert read_session(sign_session(session, SECRET), SECRET, max_age_seconds=3600, users={}) is None


def test_roles_come_from_the_current_configuration() -> None:
    session = authenticate(users(), "anna@hv-muster.de", "geheim")
    assert session is not None
    cookie = sign_session(session, SECRET)
    reduced = users()
    reduced["anna@hv-muster.de"] = reduced["anna@hv-muster.de"].model_copy(update={"roles": [Role.PREPARE]})
    read = read_session(cookie, SECRET, max_age_seconds=3600, users=reduced)
    assert read is not None
    assert not read.can(Role.RELEASE)
