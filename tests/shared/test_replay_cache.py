"""The seen-once memory behind webhook and caller-token replay refusal (smartpost_shared.seen_once)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from smartpost_shared.db import create_platform_tables, make_engine, seen_proofs
from smartpost_shared.seen_once import ReplayCache, ReplayStoreUnavailableError, SharedReplayCache

if TYPE_CHECKING:
    from pathlib import Path


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_accepted_once_until_it_expires_and_then_forgotten() -> None:
    clock = Clock()
    cache = ReplayCache(clock=clock)
    assert cache.first_use("a", 1060)
    assert not cache.first_use("a", 1060)
    clock.now = 1061
    assert cache.first_use("b", 1200)
    assert len(cache) == 1, "the expired key is dropped"


def test_a_full_cache_refuses_new_keys_instead_of_forgetting_valid_ones() -> None:
    clock = Clock()
    cache = ReplayCache(max_entries=2, clock=clock)
    assert cache.first_use("a", 1100)
    assert cache.first_use("b", 1100)
    assert not cache.first_use("c", 1100)
    assert not cache.first_use("a", 1100)
    clock.now = 1101
    assert cache.first_use("c", 1200)


# --- shared by replicas: the service's database -------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/replays.sqlite3"
    return str(request.getfixturevalue("postgres_url"))


def test_a_proof_used_on_one_replica_is_refused_by_another(db_url: str) -> None:
    one, two = make_engine(db_url), make_engine(db_url)  # two processes' engines on the same database
    create_platform_tables(one)
    try:
        replica_a, replica_b = SharedReplayCache(one), SharedReplayCache(two)
        assert replica_a.first_use("issuer\0jti-1", 2_000_000_000)
        assert not replica_b.first_use("issuer\0jti-1", 2_000_000_000), "replayed to the other replica"
        assert not replica_a.first_use("issuer\0jti-1", 2_000_000_000), "replayed to the same replica"
        assert replica_b.first_use("issuer\0jti-2", 2_000_000_000)
        # A new process (restart) has an empty memory; the database still knows the proof.
        assert not SharedReplayCache(two).first_use("issuer\0jti-2", 2_000_000_000)
        with one.connect() as conn:
            stored = conn.execute(select(seen_proofs.c.proof)).scalars().all()
        assert len(stored) == 2
        assert all(len(p) == 64 and "jti" not in p for p in stored), "only a hash of the proof is kept"
    finally:
        one.dispose()
        two.dispose()


def test_expired_proofs_are_purged_and_the_table_stays_small(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/r.sqlite3")  # the cache creates its table itself
    clock = Clock()
    cache = SharedReplayCache(engine, clock=clock)
    for i in range(50):
        assert cache.first_use(f"k{i}", clock.now + 60)
    clock.now += 3600  # every proof above has expired, and the purge is due
    assert cache.first_use("fresh", clock.now + 60)
    with engine.connect() as conn:
        assert conn.execute(select(seen_proofs.c.proof)).scalars().all() == [hashlib.sha256(b"fresh").hexdigest()]
    engine.dispose()


def test_without_its_database_the_shared_cache_refuses_rather_than_guesses() -> None:
    engine = make_engine("postgresql://app@127.0.0.1:1/nothing")  # nothing listens there: connection refused
    cache = SharedReplayCache(engine)
    with pytest.raises(ReplayStoreUnavailableError):
        cache.first_use("k", 2_000_000_000)
    engine.dispose()


def test_a_proof_refused_while_the_database_was_away_is_accepted_once_it_is_back(tmp_path: Path) -> None:
    # Found by a review: the process memory recorded the proof before the database was asked, so the retry after
    # the 503 was refused as a replay (a provider's webhook would have been lost).
    good = make_engine(f"sqlite:///{tmp_path}/r.sqlite3")
    cache = SharedReplayCache(make_engine("postgresql://app@127.0.0.1:1/nothing"))
    with pytest.raises(ReplayStoreUnavailableError):
        cache.first_use("webhook-1", 2_000_000_000)
    cache.engine, cache._table_ready = good, False  # the database is back
    assert cache.first_use("webhook-1", 2_000_000_000)
    assert not cache.first_use("webhook-1", 2_000_000_000)
    good.dispose()


def test_a_forgotten_proof_is_accepted_again_on_every_replica(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/r.sqlite3"
    one, two = SharedReplayCache(make_engine(url)), SharedReplayCache(make_engine(url))
    assert one.first_use("k", 2_000_000_000)
    assert not two.first_use("k", 2_000_000_000)
    one.forget("k")  # the request it proved failed before it changed anything
    assert two.first_use("k", 2_000_000_000)
    assert not one.first_use("k", 2_000_000_000)


def test_a_replica_that_loses_the_race_to_create_the_table_still_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two replicas creating seen_proofs at once on PostgreSQL: one gets a catalog error (an IntegrityError, which
    # must not be taken for a replay) and then finds the table created by the other.
    from sqlalchemy.exc import IntegrityError

    engine = make_engine(f"sqlite:///{tmp_path}/r.sqlite3")
    create_platform_tables(engine)

    def lost_race(*_: object, **__: object) -> None:
        raise IntegrityError(
            "CREATE TABLE seen_proofs", {}, Exception("duplicate key value (pg_type_typname_nsp_index)")
        )

    monkeypatch.setattr(type(seen_proofs), "create", lost_race)
    assert SharedReplayCache(engine).first_use("first", 2_000_000_000)
    engine.dispose()
