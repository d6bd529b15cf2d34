"""A dead letter may be hostile: its body is shown, never trusted to parse (no servers needed)."""

from __future__ import annotations

from smartpost_shared.redrive import DeadLetter, _envelope

NESTED = b'{"event_type":"ContactUpserted","payload":' + b"[" * 5000 + b"]" * 5000 + b"}"


def test_deeply_nested_body_is_listed_and_shown_as_text_not_a_crash() -> None:
    # Before: json.loads raised RecursionError (not a ValueError) and the admin listing of every dead letter failed.
    assert _envelope(NESTED) is None
    letter = DeadLetter("masterdata.events.dlq", 0, 1, b"acc", NESTED, {"dlq_reason": "x"}, 0)
    detail = letter.detail()
    assert isinstance(detail["body"], str)
    assert detail["body"].startswith('{"event_type"')
    assert letter.event_id is None
