"""SmtpMailer against a real aiosmtpd server."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox

from smartpost_notifier.adapters.smtp import SmtpMailer, SmtpPermanentError, SmtpTransientError
from smartpost_notifier.domain import DocumentLine, MailKind, Recipient, Sender
from smartpost_notifier.rendering import MailContent, render
from smartpost_shared.devstack import free_port

from .notifier_testkit import ensure_maildir, mails_of

pytestmark = pytest.mark.real
NOW = datetime(2026, 1, 6, 6, 0, tzinfo=UTC)


def rendered(mail_id: str, email: str = "erika@example.org", title: str = "Abrechnung"):
    doc = DocumentLine("d1", title, ("Abrechnung",), date(2026, 1, 2), NOW, url="https://portal/x")
    content = MailContent(
        mail_id=mail_id,
        account_id="acc-smtp",
        kind=MailKind.IMMEDIATE,
        recipient=Recipient("c1", email, True, False, "Frau", "Erika", "Muster"),
        sender=Sender("HV", "post@hv.example", "HV", "de", "https://portal"),
        documents=[doc],
    )
    return render(content, message_id_domain="test.example", now=NOW)


class RefusingMailbox(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd hook name
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture
def smtp_server(tmp_path):
    maildir = ensure_maildir(tmp_path / "maildir")
    port = free_port()
    controller = Controller(RefusingMailbox(maildir), hostname="127.0.0.1", port=port)
    controller.start()
    yield port, maildir
    controller.stop()


def test_delivers_with_stable_message_id_and_dot_stuffing(smtp_server):
    port, maildir = smtp_server
    mailer = SmtpMailer("127.0.0.1", port, timeout=5)
    calls = []
    mailer.send(rendered("m-1", title=".hidden line test"), lambda: calls.append("handed"))
    mailer.send(rendered("m-2"), lambda: calls.append("handed"))  # same connection
    mailer.close()
    assert calls == ["handed", "handed"]
    got = mails_of(maildir, "acc-smtp")
    assert sorted(str(m["Message-ID"]) for m in got) == ["<m-1@test.example>", "<m-2@test.example>"]
    assert any(".hidden line test" in m.get_body(("plain",)).get_content() for m in got)


def test_failure_before_the_final_dot_delivers_nothing(smtp_server):
    port, maildir = smtp_server
    mailer = SmtpMailer("127.0.0.1", port, timeout=5)

    def crash() -> None:
        raise RuntimeError("database gone")

    with pytest.raises(RuntimeError):
        mailer.send(rendered("m-crash"), crash)
    mailer.send(rendered("m-after"), lambda: None)
    mailer.close()
    assert [str(m["Message-ID"]) for m in mails_of(maildir, "acc-smtp")] == ["<m-after@test.example>"]


def test_refused_recipient_is_permanent_and_a_dead_server_transient(smtp_server):
    port, _ = smtp_server
    mailer = SmtpMailer("127.0.0.1", port, timeout=5)
    with pytest.raises(SmtpPermanentError, match="550"):
        mailer.send(rendered("m-x", email="nobody@example.org"), lambda: None)
    mailer.close()
    dead = SmtpMailer("127.0.0.1", free_port(), timeout=2)
    with pytest.raises(SmtpTransientError):
        dead.send(rendered("m-y"), lambda: None)


def test_reconnects_when_the_server_dropped_a_kept_connection(smtp_server):
    port, maildir = smtp_server
    mailer = SmtpMailer("127.0.0.1", port, timeout=5)
    mailer.send(rendered("m-a"), lambda: None)
    assert mailer._smtp is not None
    mailer._smtp.sock.close()  # the relay's idle timeout closed it
    mailer._smtp.sock = None
    mailer.send(rendered("m-b"), lambda: None)
    mailer.close()
    assert len(mails_of(maildir, "acc-smtp")) == 2


def test_plain_connections_load_no_tls_context(smtp_server, monkeypatch):
    """Loading the CA certificates costs ~30 ms of CPU: never for a plain relay, once per mailer with TLS."""
    import smartpost_notifier.adapters.smtp as smtp_module  # the module whose ssl is patched

    made = []
    real = smtp_module.ssl.create_default_context
    monkeypatch.setattr(smtp_module.ssl, "create_default_context", lambda: made.append(1) or real())
    port, maildir = smtp_server
    mailer = SmtpMailer("127.0.0.1", port, timeout=5)
    for batch in range(3):  # a connection per batch, as the sender does
        mailer.send(rendered(f"m-plain-{batch}"), lambda: None)
        mailer.close()
    assert len(mails_of(maildir, "acc-smtp")) == 3
    assert made == []
    tls = SmtpMailer("127.0.0.1", port, timeout=5, starttls=True)
    assert tls._tls_context() is tls._tls_context()  # the cached context
    assert made == [1]
