"""The topic registry: what flows where. Read this first.

Every topic carries envelopes (see ``contracts.envelope``) of the listed event types. The message key decides
ordering: all events of one letter (or of one account's master data) land in one partition, in order.
Messages that cannot be parsed or keep failing go to the topic's dead-letter topic with the reason in headers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    name: str
    key: str
    producer: str
    consumers: tuple[str, ...]
    event_types: tuple[str, ...]
    partitions: int = 4

    @property
    def dead_letter(self) -> str:
        return f"{self.name}.dlq"


MASTERDATA = Topic(
    name="masterdata.events",
    key="account_id",
    producer="erp-integration",
    # letters consumes only ContactErasureRequested (crypto-shredding of the contact's data in letter events).
    consumers=("assignment", "portal-publisher", "notifier", "print-dispatch", "letters"),
    event_types=(
        "PropertyUpserted",
        "UnitUpserted",
        "ContactUpserted",
        "ContactArchived",
        "ContractUpserted",
        "ContactErasureRequested",
    ),
)
LETTERS = Topic(
    name="letters.events",
    key="letter_id",
    producer="letters",
    consumers=("splitter", "assignment", "portal-publisher", "notifier", "print-dispatch"),
    event_types=(
        "LetterCreated",
        "SplitRequested",
        "AssignmentCorrected",
        "LetterReleased",
        "PrintOrdered",
        "LetterItemsRevoked",
    ),
)
SPLITTER = Topic(
    name="splitter.events",
    key="letter_id",
    producer="splitter",
    consumers=("letters", "assignment"),
    event_types=("DocumentSplit", "DocumentSplitFailed"),
)
ASSIGNMENT = Topic(
    name="assignment.events",
    key="letter_id",
    producer="assignment",
    consumers=("letters",),
    event_types=("PagesAssigned",),
)
PORTAL = Topic(
    name="portal.events",
    key="contact_id",
    producer="portal-publisher",
    consumers=("notifier", "print-dispatch", "letters"),
    event_types=("DocumentPublished", "DocumentRevoked", "DocumentViewed"),
)
NOTIFIER = Topic(
    name="notifier.events",
    key="contact_id",
    producer="notifier",
    consumers=(),
    event_types=("NotificationSent",),
)
PRINT = Topic(
    name="print.events",
    key="letter_id",
    producer="print-dispatch",
    consumers=("letters",),
    event_types=("PrintJobStatusChanged",),
)

ALL_TOPICS: tuple[Topic, ...] = (MASTERDATA, LETTERS, SPLITTER, ASSIGNMENT, PORTAL, NOTIFIER, PRINT)
SERVICES: tuple[str, ...] = (
    "letters",
    "splitter",
    "assignment",
    "portal-publisher",
    "notifier",
    "print-dispatch",
    "gateway",
)


def topic_for_event(event_type: str) -> Topic:
    for topic in ALL_TOPICS:
        if event_type in topic.event_types:
            return topic
    msg = f"no topic carries {event_type}"
    raise KeyError(msg)


def all_topic_names(*, with_dead_letters: bool = True) -> list[str]:
    names = [t.name for t in ALL_TOPICS]
    if with_dead_letters:
        names += [t.dead_letter for t in ALL_TOPICS]
    return names
