"""The demo walkthrough counts only its own account's mails.

Tests share one SMTP server and one broker: a system started later reads the topics from the beginning and mails
the same demo addresses for an earlier test's account. Counting every mail to an address made the two-replica kill
test report "3 e-mails for one recipient" (the earlier mail, the later system's resend of it, its own mail).
"""

from __future__ import annotations

import mailbox
from email.message import EmailMessage
from typing import TYPE_CHECKING, cast

from smartpost_shared.demo import Walkthrough, account_mails

if TYPE_CHECKING:
    from pathlib import Path

    from smartpost_shared.devstack import Stack

ADDRESSES = {"hans.mueller@example.org", "leyla.oeztuerk@example.org"}


def _deliver(maildir: Path, account: str, to: str, mail_id: str) -> None:
    msg = EmailMessage()
    msg["To"] = to
    msg["Subject"] = "Neues Dokument"
    msg["X-SmartPost-Account"] = account
    msg["X-SmartPost-Mail-Id"] = mail_id
    msg.set_content("Guten Tag")
    mailbox.Maildir(maildir, create=True).add(msg)


def test_mails_of_another_account_to_the_same_addresses_do_not_count(tmp_path: Path) -> None:
    maildir = tmp_path / "maildir"
    walk = Walkthrough({}, maildir, cast("Stack", object()), account="acc-mine")
    _deliver(maildir, "demo", "hans.mueller@example.org", "earlier-run")  # before the release: never counted
    walk.mails_before = set(mailbox.Maildir(maildir, create=False).keys())
    # Another system resends the earlier run's mails (other account) after this run's release.
    for address in ADDRESSES:
        _deliver(maildir, "demo", address, f"resend-{address}")
    assert walk.new_mails_to(ADDRESSES) is None
    assert account_mails(maildir, "acc-mine") == []

    _deliver(maildir, "acc-mine", "Hans Müller <hans.mueller@example.org>", "mine-1")
    assert walk.new_mails_to(ADDRESSES) is None  # one address still waits for this account's mail
    _deliver(maildir, "acc-mine", "leyla.oeztuerk@example.org", "mine-2")
    found = walk.new_mails_to(ADDRESSES)
    assert found is not None
    assert len(found) == 2
    assert sorted(str(m["X-SmartPost-Mail-Id"]) for m in account_mails(maildir, "acc-mine")) == ["mine-1", "mine-2"]
    assert len(account_mails(maildir, "demo")) == 3
