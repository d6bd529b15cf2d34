"""The upload check reads an uploaded PDF only in a child process with limits (issue #17, item 1): a crafted file
that aborts, loops or eats memory fails with a German reason, and the letters service is untouched."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pikepdf

from smartpost_letters.adapters import pdf_check
from smartpost_letters.adapters.pdf_check import check_upload

if TYPE_CHECKING:
    import pytest


def minimal_pdf(prefix: bytes = b"") -> bytes:
    pdf = pikepdf.new()
    pdf.add_blank_page()
    path = f"/tmp/minimal-{os.getpid()}.pdf"
    pdf.save(path)
    try:
        with open(path, "rb") as handle:  # noqa: PTH123
            return prefix + handle.read()
    finally:
        os.unlink(path)  # noqa: PTH108


def test_a_good_pdf_passes_and_junk_before_the_header_is_accepted_as_qpdf_does() -> None:
    assert check_upload(minimal_pdf(), "a.pdf", max_bytes=10_000_000) == []
    assert check_upload(minimal_pdf(b"junk from the ERP\r\n"), "b.pdf", max_bytes=10_000_000) == []


def test_a_reader_that_dies_is_reported_in_german_and_the_service_lives_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # Stand-in for a pdfium/qpdf abort: the child process dies without an answer.
    monkeypatch.setattr(pdf_check, "_read_child", _die)
    [problem] = check_upload(minimal_pdf(), "kaputt.pdf", max_bytes=10_000_000)
    assert problem.code == "corrupt"
    assert "Absturz" in problem.message
    assert "/tmp" not in problem.message


def test_a_reader_that_hangs_is_stopped_at_the_time_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf_check, "_read_child", _hang)
    monkeypatch.setattr(pdf_check, "SANDBOX_SECONDS", 1.0)
    [problem] = check_upload(minimal_pdf(), "endlos.pdf", max_bytes=10_000_000)
    assert problem.code == "corrupt"
    assert "erlaubten Zeit" in problem.message


def _die(path: str, send: object) -> None:
    os._exit(134)


def _hang(path: str, send: object) -> None:
    import time

    time.sleep(60)
