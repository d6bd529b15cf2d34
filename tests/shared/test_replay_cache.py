"""The seen-once memory behind webhook and caller-token replay refusal (smartpost_shared.seen_once)."""

from __future__ import annotations

from smartpost_shared.seen_once import ReplayCache


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
