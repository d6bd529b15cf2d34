"""Address rules (Deutsche Post via providers, DIN 5008) and the comparison of a printed address with master data."""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

MAX_ADDRESS_LINES = 6
_PUNCT = re.compile(r"[^\w]+", re.UNICODE)
# "D-12345", "DE-12345", "DE 12345" are not allowed domestically but name the same place.
_COUNTRY_PREFIX = re.compile(r"^(d|de)[-\s]+(?=\d{5}\b)", re.IGNORECASE)
_SALUTATIONS = {"herrn": "herr"}


class AddressError(ValueError):
    """The master-data address cannot be printed in a window (reason in the message)."""


def validate_postal_lines(lines: list[str], *, country: str, country_line: str | None) -> list[str]:
    """Check the address lines that will be printed; returns them cleaned (stripped, no blank lines).

    Rules: at least a name line and a postcode/city line, at most six lines, no blank lines (removed), and for
    foreign addresses the country name in capitals as the last line.
    """
    cleaned = [" ".join(line.split()) for line in lines]
    cleaned = [line for line in cleaned if line]
    if len(cleaned) < 2:
        raise AddressError("postal address incomplete (needs a name and a postcode/city line)")
    if len(cleaned) > MAX_ADDRESS_LINES:
        raise AddressError(f"postal address has {len(cleaned)} lines, at most {MAX_ADDRESS_LINES} fit the window")
    if country.upper() == "DE":
        if not re.search(r"\b\d{5}\b", cleaned[-1]):
            raise AddressError(f"German address without a five-digit postcode in the last line: {cleaned[-1]!r}")
    else:
        expected = (country_line or country).upper()
        if cleaned[-1] != expected:
            raise AddressError(f"foreign address must end with the country in capitals ({expected!r})")
    return cleaned


def normalize_line(line: str) -> str:
    text = unicodedata.normalize("NFKC", line).casefold().strip()
    text = _COUNTRY_PREFIX.sub("", text)
    text = text.replace("ß", "ss").replace("str.", "strasse").replace("straße", "strasse")
    words = [_SALUTATIONS.get(w, w) for w in _PUNCT.sub(" ", text).split()]
    return " ".join(words)


class AddressMatch(StrEnum):
    MATCH = "match"
    DIFFERENT = "different"
    EMPTY = "empty"


def compare_address(expected_lines: list[str], found_text: str) -> AddressMatch:
    """Check that the text found in the address zone carries every expected line (order kept, extras allowed).

    Extra lines are tolerated (a "c/o" or a notes line the letter printed); a missing or changed line is not.
    """
    found_lines = [normalize_line(line) for line in found_text.splitlines()]
    found_lines = [line for line in found_lines if line]
    if not found_lines:
        return AddressMatch.EMPTY
    position = 0
    for expected in (normalize_line(line) for line in expected_lines):
        while position < len(found_lines) and found_lines[position] != expected:
            position += 1
        if position == len(found_lines):
            return AddressMatch.DIFFERENT
        position += 1
    return AddressMatch.MATCH


def mentions_address(expected_lines: list[str], page_text: str) -> bool:
    """Whether the page names the recipient's street and postcode/city anywhere (an address outside the window)."""
    haystack = normalize_line(page_text.replace("\n", " "))
    key_lines = [normalize_line(line) for line in expected_lines[-2:]]
    return all(line and line in haystack for line in key_lines)
