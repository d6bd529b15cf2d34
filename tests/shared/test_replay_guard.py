"""The replay guard's rule: an event older than the maximum age is stale (smartpost_shared.replay)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from smartpost_shared.replay import STALE_LABEL, record_stale, staleness

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_older_than_the_maximum_age_is_stale_with_a_german_reason():
    stale = staleness(NOW - timedelta(hours=50), NOW, 48)
    assert stale is not None
    assert stale.reason == (
        f"{STALE_LABEL}: Ereignis vom 28.11.2026 10:00 UTC ist 50 Std. alt (Grenze 48 Std.), "
        "wurde nicht automatisch ausgeführt"
    )


def test_within_the_maximum_age_at_the_limit_and_from_the_future_it_is_not_stale():
    assert staleness(NOW - timedelta(hours=47, minutes=59), NOW, 48) is None
    assert staleness(NOW - timedelta(hours=48), NOW, 48) is None
    assert staleness(NOW + timedelta(hours=3), NOW, 48) is None  # clock skew of the producer


def test_zero_switches_the_guard_off_and_naive_times_count_as_utc():
    assert staleness(NOW - timedelta(days=400), NOW, 0) is None
    assert staleness((NOW - timedelta(hours=73)).replace(tzinfo=None), NOW, 72) is not None


def test_recording_counts_the_metric():
    stale = staleness(NOW - timedelta(days=3), NOW, 48)
    assert stale is not None
    labels = {"service": "svc-test", "event_type": "DocumentPublished"}
    before = REGISTRY.get_sample_value("smartpost_stale_events_total", labels) or 0.0
    record_stale("svc-test", "DocumentPublished", stale, document_id="d1")
    assert REGISTRY.get_sample_value("smartpost_stale_events_total", labels) == before + 1
