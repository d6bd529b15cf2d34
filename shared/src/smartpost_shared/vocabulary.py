"""Enumerations that pure, pydantic-free code needs too (the splitter's text-extraction worker processes).

They are part of the wire contracts and re-exported by :mod:`smartpost_shared.contracts.common`; they live here so
that importing them does not load pydantic and every contract model (about 18 MB per process).
"""

from __future__ import annotations

from enum import StrEnum


class SplitStrategy(StrEnum):
    FIRST_PAGE = "first_page"
    ADDRESS_BLOCK = "address_block"
    IDENTIFIER = "identifier"
    KEYWORD = "keyword"
    BLANK_SEPARATOR = "blank_separator"
    FIXED_PAGES = "fixed_pages"


# Why a document could not be split (``DocumentSplitFailed.reason_code``). No docstring: it would enter the schema.
class SplitFailureReason(StrEnum):
    NOT_A_PDF = "not_a_pdf"
    EMPTY_FILE = "empty_file"
    CORRUPT = "corrupt"
    ENCRYPTED = "encrypted"
    NO_PAGES = "no_pages"
    NEEDS_OCR = "needs_ocr"
    NO_LETTER_FOUND = "no_letter_found"
    INVALID_RULE = "invalid_rule"
    SOURCE_MISSING = "source_missing"
