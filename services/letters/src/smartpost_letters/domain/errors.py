"""Domain errors: every illegal transition or broken invariant raises one of these with a readable message."""

from __future__ import annotations


class DomainError(Exception):
    """A command is not allowed in the letter's current state or breaks an invariant."""

    code = "domain_error"


class InvalidLetterError(DomainError):
    """The letter's basic parameters are inconsistent (e.g. a property on a cross-property letter)."""

    code = "invalid_letter"


class IllegalTransitionError(DomainError):
    """The command does not fit the letter's current state (e.g. ordering print twice)."""

    code = "illegal_transition"


class DocumentError(DomainError):
    """A source-document command is invalid (unknown document, attachment as first document ...)."""

    code = "invalid_document"


class SourceErasedError(DocumentError):
    """The document's uploaded file was deleted by a GDPR erasure: it cannot be split again."""

    code = "source_erased"


class PartError(DomainError):
    """A part-level command refers to an unknown part or is inconsistent with the letter's scope."""

    code = "invalid_part"


class ReleaseBlockedError(DomainError):
    """The letter cannot be released (unassigned parts, no assigned part, review not confirmed)."""

    code = "release_blocked"


class InboundMismatchError(DomainError):
    """An inbound event (split result, assignment) does not match the letter (unknown document or part)."""

    code = "inbound_mismatch"


class DocumentTypeError(DomainError):
    """A document-type tree command is invalid (depth above five, duplicate name, node has children ...)."""

    code = "invalid_document_type"
