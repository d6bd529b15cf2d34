"""Secrets never appear in the start-up output of the local stack (the S3 secret key used to be printed)."""

from __future__ import annotations

import json
import sys

from smartpost_shared import devstack
from smartpost_shared.devstack import S3_SECRET_KEY, Stack, masked


def test_masked_hides_secret_looking_values_only():
    env = {
        "SMARTPOST_S3_SECRET_KEY": "s3cr3t",
        "SMARTPOST_SMTP_PASSWORD": "pw",
        "SMARTPOST_INTERNAL_API_TOKEN": "tok",
        "SMARTPOST_S3_ENDPOINT": "127.0.0.1:8333",
    }
    assert masked(env) == {
        "SMARTPOST_S3_SECRET_KEY": "***",
        "SMARTPOST_SMTP_PASSWORD": "***",
        "SMARTPOST_INTERNAL_API_TOKEN": "***",
        "SMARTPOST_S3_ENDPOINT": "127.0.0.1:8333",
    }


def test_devstack_up_does_not_print_the_s3_secret_key(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(Stack, "up", lambda self: None)
    monkeypatch.setattr(sys, "argv", ["devstack", "up", "--root", str(tmp_path)])
    devstack.main()
    out = capsys.readouterr().out
    assert S3_SECRET_KEY not in out
    assert json.loads(out)["SMARTPOST_S3_SECRET_KEY"] == "***"


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
