"""Postal endorsements in the address window are not part of the address (smartpost_shared.postal)."""

from __future__ import annotations

import pytest

from smartpost_shared.postal import is_postal_endorsement


@pytest.mark.parametrize(
    "line",
    [
        "EINSCHREIBEN EINWURF",
        "Einschreiben / Rückschein",
        "Einschreiben Eigenhändig",
        "RR 1234 5678 9DE",
        "RT123456789DE",
        "Sendungsnummer: RR 1234 5678 9DE",
        "Persönlich/Vertraulich",
        "PERSOENLICH - VERTRAULICH",
        "Bitte nicht nachsenden",
        "Falls unzustellbar, zurück an Absender",
        "Entgelt bezahlt",
        "Premiumadress",
        "Dialogpost",
    ],
)
def test_endorsements_and_tracking_numbers_are_recognised(line: str) -> None:
    assert is_postal_endorsement(line)


@pytest.mark.parametrize(
    "line",
    [
        "Herrn",
        "Frau Anna Express",  # a name that contains an endorsement word is a name
        "Prio Mustermann GmbH",
        "Hans Müller",
        "Eheleute",
        "Postfach 10 20 30",
        "10115 Berlin",
        "D-10115 Berlin",
        "An",
        "Bitte",
        "Lindenstraße 12",
        "Vertraulich GmbH & Co. KG Niederlassung Nord",
        "",
    ],
)
def test_names_and_address_lines_are_not_endorsements(line: str) -> None:
    assert not is_postal_endorsement(line)
