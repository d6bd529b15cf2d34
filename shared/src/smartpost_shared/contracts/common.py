"""Value types shared by several contracts."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from smartpost_shared.contracts.base import Contract
from smartpost_shared.vocabulary import SplitStrategy as SplitStrategy  # noqa: PLC0414 - explicit re-export (the enum is pydantic-free)

Id = Annotated[str, Field(min_length=1, max_length=128)]


class ContractRole(StrEnum):
    OWNER = "owner"
    TENANT = "tenant"


class ChannelPreference(StrEnum):
    POST = "post"
    ONLINE = "online"


class LetterScope(StrEnum):
    PROPERTY = "property"
    CROSS_PROPERTY = "cross_property"


class PostalAddress(Contract):
    """A postal address as master data holds it; ``country`` is ISO 3166-1 alpha-2."""

    street: str = ""
    postal_code: str = ""
    city: str = ""
    country: str = Field(default="DE", min_length=2, max_length=2)
    extra_lines: list[str] = Field(default_factory=list)


class DocumentType(Contract):
    """A document type of the account's folder tree (max. five levels, shown to customers as folders)."""

    id: Id
    path: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1, max_length=5)


class SplitRule(Contract):
    """How to cut one source document into letters. Only the parameters of ``strategy`` are used."""

    strategy: SplitStrategy
    first_page_text: str | None = None
    identifier_pattern: str | None = None
    keyword: str | None = None
    drop_separator: bool = True
    pages_per_letter: int | None = Field(default=None, ge=1, le=1000)
    address_form: str = Field(default="B", pattern="^[AB]$")
    # first_page strategy by layout fingerprint: a sample first page the user picked (1-based) and how similar
    # (0..1, share of the sample's text lines found on a page) a page must be to count as a first page.
    sample_page: int | None = Field(default=None, ge=1)
    similarity_threshold: float | None = Field(default=None, gt=0, le=1)
