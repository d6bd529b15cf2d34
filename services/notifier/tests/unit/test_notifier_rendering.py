from __future__ import annotations

from datetime import UTC, date, datetime
from email import message_from_bytes
from email.policy import default

import pytest

from smartpost_notifier.adapters.smtp import dot_stuffed
from smartpost_notifier.domain import DocumentLine, MailKind, Recipient, Sender
from smartpost_notifier.rendering import MailContent, RenderError, render

NOW = datetime(2026, 1, 6, 6, 0, tzinfo=UTC)


def content(kind=MailKind.IMMEDIATE, language="de", docs=None, day=None) -> MailContent:
    docs = docs or [
        DocumentLine(
            document_id="doc-1",
            title="Nebenkostenabrechnung 2025",
            folder=("Abrechnung", "Nebenkosten"),
            letter_date=date(2026, 1, 2),
            published_at=NOW,
            property_name="Lindenstraße 5",
            unit_label="Einheit 3 (1. OG links)",
            url="https://portal.example/documents/doc-1",
        )
    ]
    return MailContent(
        mail_id="0b1c2d3e-0000-4000-8000-000000000001",
        account_id="acc-1",
        kind=kind,
        recipient=Recipient("c1", "erika@example.org", True, False, "Frau", "Erika", "Mustermann"),
        sender=Sender("Hausverwaltung Muster", "post@muster.example", "HV Muster", language, "https://portal.example"),
        documents=docs,
        digest_day=day,
    )


def parsed(raw: bytes):
    return message_from_bytes(raw, policy=default)


def test_immediate_mail_is_german_multipart_text_and_html_without_attachment():
    mail = render(content(), message_id_domain="notifier.example", now=NOW)
    msg = parsed(mail.as_bytes())
    assert msg["Message-ID"] == "<0b1c2d3e-0000-4000-8000-000000000001@notifier.example>"
    assert msg["Subject"] == "Hausverwaltung Muster: Neues Dokument in Ihrem Kundenportal"
    assert msg["To"].addresses[0].addr_spec == "erika@example.org"
    assert msg["From"].addresses[0].display_name == "HV Muster"
    assert msg["X-SmartPost-Account"] == "acc-1"
    assert msg.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert list(msg.iter_attachments()) == []
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert text.startswith("Sehr geehrte Frau Mustermann,")
    assert "Nebenkostenabrechnung 2025 (Abrechnung / Nebenkosten), Lindenstraße 5, Einheit 3 (1. OG links)" in text
    assert "https://portal.example/documents/doc-1" in text
    assert 'href="https://portal.example/documents/doc-1"' in html
    assert "Datum 02.01.2026" in html
    # lines are CRLF-terminated and 7-bit safe for any relay
    assert all(b < 128 for b in mail.as_bytes())


def test_english_digest_lists_documents_by_property():
    docs = [
        DocumentLine("d1", "Annual statement", ("Statements",), date(2026, 1, 2), NOW, "Main St 1", "Unit 1"),
        DocumentLine("d2", "Invitation", ("Meetings",), date(2026, 1, 3), NOW, None, None),
    ]
    mail = render(
        content(kind=MailKind.DIGEST, language="en", docs=docs, day=date(2026, 1, 5)),
        message_id_domain="n.example",
        now=NOW,
    )
    msg = parsed(mail.as_bytes())
    assert msg["Subject"] == "Hausverwaltung Muster: Your daily summary for 2026-01-05"
    text = msg.get_body(("plain",)).get_content()
    assert text.startswith("Dear Ms Mustermann,")
    assert "2 new documents were made available" in text
    assert text.index("Main St 1") < text.index("General")
    assert msg["Content-Language"] == "en"


def test_html_escapes_document_titles():
    docs = [DocumentLine("d1", "<script>alert(1)</script>", ("A&B",), date(2026, 1, 2), NOW)]
    mail = render(content(docs=docs), message_id_domain="n.example", now=NOW)
    html = parsed(mail.as_bytes()).get_body(("html",)).get_content()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "A&amp;B" in html


def test_render_rejects_what_cannot_be_a_notification():
    with pytest.raises(RenderError):
        render(content(language="fr"), message_id_domain="n", now=NOW)
    with pytest.raises(RenderError):
        render(content(kind=MailKind.DIGEST), message_id_domain="n", now=NOW)


def test_dot_stuffing_and_line_endings():
    assert dot_stuffed(b"a\n.b\n..c\r\nd") == b"a\r\n..b\r\n...c\r\nd\r\n"
    assert dot_stuffed(b".\r\n") == b"..\r\n"
