"""Turns a mail (kind, recipient, documents, sender) into a multipart text + HTML e-mail. No attachments, ever.

Templates live in ``templates/<language>/<kind>.{txt,html}.j2`` (German default, English available); the HTML
variant is autoescaped, so a document title cannot inject markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import TYPE_CHECKING

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from smartpost_notifier.domain import (
    DocumentLine,
    MailKind,
    Recipient,
    Sender,
    greeting,
    group_for_mail,
    message_id,
)

if TYPE_CHECKING:
    from datetime import date, datetime

LANGUAGES = ("de", "en")

_SUBJECTS = {
    ("de", MailKind.IMMEDIATE, 1): "{account}: Neues Dokument in Ihrem Kundenportal",
    ("de", MailKind.IMMEDIATE, 2): "{account}: Neue Dokumente in Ihrem Kundenportal",
    ("de", MailKind.DIGEST, 1): "{account}: Ihre tägliche Übersicht vom {day_de}",
    ("de", MailKind.DIGEST, 2): "{account}: Ihre tägliche Übersicht vom {day_de}",
    ("en", MailKind.IMMEDIATE, 1): "{account}: New document in your customer portal",
    ("en", MailKind.IMMEDIATE, 2): "{account}: New documents in your customer portal",
    ("en", MailKind.DIGEST, 1): "{account}: Your daily summary for {day_iso}",
    ("en", MailKind.DIGEST, 2): "{account}: Your daily summary for {day_iso}",
}

_environment = Environment(
    loader=PackageLoader("smartpost_notifier", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False, default=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


class RenderError(ValueError):
    """The mail cannot be rendered (unknown language, no documents)."""


@dataclass(frozen=True)
class MailContent:
    mail_id: str
    account_id: str
    kind: MailKind
    recipient: Recipient
    sender: Sender
    documents: list[DocumentLine]
    digest_day: date | None = None


@dataclass(frozen=True)
class RenderedMail:
    message: EmailMessage
    envelope_from: str
    envelope_to: str
    message_id: str

    def as_bytes(self) -> bytes:
        return self.message.as_bytes(policy=SMTP)


def subject(content: MailContent) -> str:
    language = content.sender.language
    plural = 1 if len(content.documents) == 1 else 2
    template = _SUBJECTS[(language, content.kind, plural)]
    day = content.digest_day
    return template.format(
        account=content.sender.account_name,
        day_de=day.strftime("%d.%m.%Y") if day else "",
        day_iso=day.isoformat() if day else "",
    )


def render(content: MailContent, *, message_id_domain: str, now: datetime) -> RenderedMail:
    language = content.sender.language
    if language not in LANGUAGES:
        raise RenderError(f"no templates for language {language!r}")
    if not content.documents:
        raise RenderError("a notification needs at least one document")
    if content.kind is MailKind.DIGEST and content.digest_day is None:
        raise RenderError("a digest needs its day")
    if not content.recipient.email:
        raise RenderError("the recipient has no e-mail address")
    mail_subject = subject(content)
    documents = sorted(content.documents, key=lambda d: (d.title.casefold(), d.unit_label or "", d.document_id))
    context = {
        "subject": mail_subject,
        "greeting": greeting(content.recipient, language),
        "account_name": content.sender.account_name,
        "portal_url": content.sender.portal_base_url,
        "documents": documents,
        "groups": group_for_mail(content.documents),
        "document_count": len(content.documents),
        "day": content.digest_day,
    }
    name = content.kind.value
    text = _environment.get_template(f"{language}/{name}.txt.j2").render(context)
    html = _environment.get_template(f"{language}/{name}.html.j2").render(context)

    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = mail_subject
    msg["From"] = Address(display_name=content.sender.name, addr_spec=content.sender.address)
    msg["To"] = Address(display_name=_display_name(content.recipient), addr_spec=content.recipient.email)
    msg["Date"] = format_datetime(now)
    mid = message_id(content.mail_id, message_id_domain)
    msg["Message-ID"] = mid
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-SmartPost-Mail-Id"] = content.mail_id
    msg["X-SmartPost-Account"] = content.account_id
    msg["X-SmartPost-Kind"] = content.kind.value
    # Quoted-printable keeps the mail 7-bit clean for relays without 8BITMIME.
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    msg["Content-Language"] = language  # after set_content, which resets Content-* headers
    return RenderedMail(msg, content.sender.address, content.recipient.email, mid)


def _display_name(recipient: Recipient) -> str:
    person = " ".join(p for p in (recipient.first_name, recipient.last_name) if p)
    return person or recipient.company
