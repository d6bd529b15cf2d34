"""Sending the password-reset mail over SMTP.

It is the only mail the portal sends itself (document mails are the notifier's). Blocking; the web layer runs it in
a worker thread. A failure is logged and reported to the caller.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Protocol

from smartpost_shared.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class OutgoingMail:
    to_address: str
    to_name: str
    sender_name: str
    subject: str
    text: str


class MailSender(Protocol):
    def send(self, mail: OutgoingMail) -> None: ...


class MailNotSentError(Exception):
    """The relay was unreachable or refused the mail."""


class SmtpSender:
    def __init__(
        self,
        host: str,
        port: int,
        sender_address: str,
        *,
        user: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.sender_address = sender_address
        self.user = user
        self.password = password
        self.starttls = starttls
        self.timeout = timeout

    def send(self, mail: OutgoingMail) -> None:
        message = EmailMessage()
        message["From"] = formataddr((mail.sender_name, self.sender_address))
        message["To"] = formataddr((mail.to_name, mail.to_address)) if mail.to_name else mail.to_address
        message["Subject"] = mail.subject
        message["Message-ID"] = make_msgid(domain="smartpost.portal")
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(mail.text)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.user and self.password:
                    smtp.login(self.user, self.password)
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("portal.mail_not_sent", error=str(exc), host=self.host, port=self.port)
            raise MailNotSentError(str(exc)) from exc
        log.info("portal.mail_sent", subject=mail.subject)
