"""Secrets never appear in logs: the access log redacts tokens, link signatures and codes in URLs (the printed
start-up environment is covered by test_secret_policy.py)."""

from __future__ import annotations


def test_access_log_lines_carry_no_tokens_or_signatures(caplog):
    import logging

    from smartpost_shared.logging import configure_logging

    configure_logging("test", json=True)
    access = logging.getLogger("uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        access.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            "/kundenportal/hv/passwort-neu?t=SECRET-RESET-TOKEN",
            "1.1",
            200,
        )
        access.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            "/portal/downloads/d1?a=hv&p=p1&e=1796054644&s=SIGNATURE",
            "1.1",
            200,
        )
    text = caplog.text
    assert "SECRET-RESET-TOKEN" not in text
    assert "SIGNATURE" not in text
    assert "passwort-neu?t=***" in text
    assert "a=hv&p=p1&e=1796054644&s=***" in text
