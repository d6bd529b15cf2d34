"""The retention rule (smartpost_shared.retention): which period a document type gets and when a document is due."""

from __future__ import annotations

from datetime import date

import pytest

from smartpost_shared.retention import (
    DEFAULT_YEARS,
    check_years,
    is_due,
    oldest_undue_letter_date,
    retention_ends,
    retention_for,
)


@pytest.mark.parametrize(
    ("path", "years"),
    [
        (["Abrechnungen", "Jahresabrechnung"], 10),
        (["Heizkostenabrechnung"], 10),
        (["WEG", "Wirtschaftsplan 2026"], 10),
        (["Versammlungen", "Einladung Eigentümerversammlung"], 3),
        (["Eigentümerversammlung", "Protokoll"], 10),  # the deepest level decides: minutes are kept 10 years
        (["Eigentümerversammlung"], 3),
        (["Mietverträge"], 10),
        (["Sonstiges", "Allgemeines"], DEFAULT_YEARS),
    ],
)
def test_german_defaults_by_document_type(path, years):
    assert retention_for(path).years == years


def test_overrides_by_id_then_deepest_name():
    path = ["Abrechnungen", "Heizkosten"]
    assert retention_for(path, {"abrechnungen": 12}).years == 12  # inherited from the parent type
    assert retention_for(path, {"Abrechnungen": 12, "Heizkosten": 8}).years == 8
    assert retention_for(path, {"dt-1": 4, "Heizkosten": 8}, type_id="dt-1").years == 4
    assert retention_for(path, {"Heizkosten": 8}).source == "override: Heizkosten"


def test_the_period_starts_at_the_end_of_the_letters_year():
    assert retention_ends(date(2020, 3, 1), 3) == date(2023, 12, 31)
    assert retention_ends(date(2020, 12, 31), 3) == date(2023, 12, 31)
    assert not is_due(date(2020, 3, 1), 3, date(2023, 12, 31))
    assert is_due(date(2020, 3, 1), 3, date(2024, 1, 1))
    assert not is_due(date(2020, 3, 1), 10, date(2024, 1, 1))
    assert is_due(date(2020, 3, 1), 10, date(2031, 1, 1))


def test_the_prefilter_never_hides_a_due_document():
    today = date(2030, 6, 1)
    for year in range(2000, 2031):
        letter_date = date(year, 12, 31)
        if is_due(letter_date, 1, today):
            assert letter_date < oldest_undue_letter_date(today)


@pytest.mark.parametrize("years", [0, 31, -1])
def test_periods_are_bounded(years):
    with pytest.raises(ValueError, match="between"):
        check_years(years)
