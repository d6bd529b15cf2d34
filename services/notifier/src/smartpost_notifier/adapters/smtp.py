"""SMTP client that marks the point of no return of every mail.

The relay takes responsibility for a mail when it receives the final ``.`` of the DATA command. This client
sends everything up to that dot, then calls ``on_handed_over`` (the caller records it in its database), and only
then writes the dot. A crash before the callback leaves the relay with an unfinished transaction that it throws
away (safe to send again); a crash after it means the relay has, or gets within microseconds, the mail (counted
as sent, never sent twice).
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from typing import TYPE_CHECKING, Protocol

from smartpost_shared.logging import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable

    from smartpost_notifier.rendering import RenderedMail

log = get_logger(__name__)

_LEADING_DOT = re.compile(rb"(?m)^\.")
_REPLY_OK = 250
_REPLY_RCPT_OK = (250, 251)
_REPLY_START_DATA = 354
_FIRST_PERMANENT = 500


class SmtpTransientError(Exception):
    """The relay is unreachable or answered 4xx: try again later. The mail was not handed over."""


class SmtpPermanentError(Exception):
    """The relay refused the mail with 5xx (bad address, policy): sending it again will not help."""


class SmtpUnconfirmedError(Exception):
    """The final dot was written but no reply came back: the relay probably has the mail."""


class Mailer(Protocol):
    def send(self, mail: RenderedMail, on_handed_over: Callable[[], None]) -> str: ...

    def close(self) -> None: ...


def _refusal(stage: str, code: int, reply: bytes) -> Exception:
    text = f"{stage} refused: {code} {reply.decode(errors='replace')}"
    return SmtpPermanentError(text) if code >= _FIRST_PERMANENT else SmtpTransientError(text)


def dot_stuffed(data: bytes) -> bytes:
    """The DATA payload without its terminating dot: CRLF line ends, leading dots doubled (RFC 5321 4.5.2)."""
    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    data = _LEADING_DOT.sub(b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


class SmtpMailer:
    """Blocking SMTP client (run it in a worker thread); keeps one connection open across a batch."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        user: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        implicit_tls: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.timeout = timeout
        self._smtp: smtplib.SMTP | None = None
        self._tls: ssl.SSLContext | None = None

    def _tls_context(self) -> ssl.SSLContext:
        # Made once: loading the system's CA certificates costs ~30 ms of CPU, it used to be paid on every connect
        # (every batch, every parallel connection), TLS or not.
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def _connect(self) -> smtplib.SMTP:
        smtp: smtplib.SMTP
        if self.implicit_tls:
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._tls_context())
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if smtp.sock is not None:
            # The final dot is a tiny write right after the body: without NODELAY, Nagle + delayed ACK cost ~40 ms.
            smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        smtp.ehlo()
        if self.starttls:
            smtp.starttls(context=self._tls_context())
            smtp.ehlo()
        if self.user:
            smtp.login(self.user, self.password or "")
        return smtp

    def _drop(self) -> None:
        """Close the socket without QUIT: an unfinished DATA transaction is discarded by the relay."""
        if self._smtp is not None:
            try:
                self._smtp.close()
            finally:
                self._smtp = None

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                pass
            finally:
                self._drop()

    def _prepare(self, mail: RenderedMail, payload: bytes) -> smtplib.SMTP:
        """MAIL, RCPT, DATA and the message body; everything but the final dot."""
        if self._smtp is None:
            self._smtp = self._connect()
        smtp = self._smtp
        code, reply = smtp.mail(mail.envelope_from)
        if code != _REPLY_OK:
            smtp.rset()
            raise _refusal("MAIL FROM", code, reply)
        code, reply = smtp.rcpt(mail.envelope_to)
        if code not in _REPLY_RCPT_OK:
            smtp.rset()
            raise _refusal("RCPT TO", code, reply)
        code, reply = smtp.docmd("DATA")
        if code != _REPLY_START_DATA:
            smtp.rset()
            raise _refusal("DATA", code, reply)
        smtp.send(payload)
        return smtp

    def send(self, mail: RenderedMail, on_handed_over: Callable[[], None]) -> str:
        """Send one mail; returns the relay's reply. ``on_handed_over`` runs right before the final dot."""
        payload = dot_stuffed(mail.as_bytes())
        reused = self._smtp is not None
        try:
            smtp = self._prepare(mail, payload)
        except (SmtpPermanentError, SmtpTransientError):
            raise
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            if not reused:
                raise SmtpTransientError(f"SMTP {self.host}:{self.port} unavailable: {exc}") from exc
            # A kept-alive connection may have been closed by the relay meanwhile: one fresh try.
            try:
                smtp = self._prepare(mail, payload)
            except (SmtpPermanentError, SmtpTransientError):
                raise
            except (OSError, smtplib.SMTPException) as exc2:
                self._drop()
                raise SmtpTransientError(f"SMTP {self.host}:{self.port} unavailable: {exc2}") from exc2
        try:
            on_handed_over()
        except BaseException:
            self._drop()  # the dot was never written: the relay discards the transaction
            raise
        try:
            smtp.send(b".\r\n")
            code, reply = smtp.getreply()
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            raise SmtpUnconfirmedError(f"no reply after end of data: {exc}") from exc
        if code != _REPLY_OK:
            raise _refusal("end of data", code, reply)
        return reply.decode(errors="replace")
