"""Retention per document type (Aufbewahrungsfristen): which period applies and when a document is due for removal.

Pure rules, no I/O. German defaults for property management, chosen by the document type's names (the most specific
level of the path that matches wins; a type may override its period, inherited by its sub-types):

=====================================================  ======  ===================================================
document type contains                                 years   basis
=====================================================  ======  ===================================================
Abrechnung (Jahres-, Hausgeld-, Betriebs-, Heizkosten-),  10    § 147 Abs. 1 AO / § 257 Abs. 1 HGB (Buchungsbelege,
Wirtschaftsplan, Rechnung, Beleg, Jahresabschluss               Abrechnungen)
Protokoll, Beschluss                                     10    Nachweis der Beschlüsse (§ 24 Abs. 7 WEG: Beschluss-
                                                                Sammlung selbst bleibt beim Verwalter)
Vertrag, Kündigung, Mieterhöhung                         10    Nachweis über die regelmäßige Verjährung hinaus
Einladung, Eigentümerversammlung, Rundschreiben,          3    regelmäßige Verjährung (§ 195 BGB)
Information, Aushang
everything else                                           6    § 257 Abs. 4 HGB (Handels- und Geschäftsbriefe)
=====================================================  ======  ===================================================

The period starts at the end of the calendar year in which the letter is dated (§ 257 Abs. 5 HGB, § 147 Abs. 4 AO)
and ends ``years`` later on 31 December; from the next day on the document is due for removal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

MIN_YEARS = 1
MAX_YEARS = 30
DEFAULT_YEARS = 6

# (keyword, years), most specific first; matched case-insensitively as a substring of one level's name.
DEFAULT_RULES: tuple[tuple[str, int], ...] = (
    ("einladung", 3),
    ("eigentümerversammlung", 3),
    ("rundschreiben", 3),
    ("aushang", 3),
    ("information", 3),
    ("abrechnung", 10),
    ("wirtschaftsplan", 10),
    ("jahresabschluss", 10),
    ("rechnung", 10),
    ("beleg", 10),
    ("protokoll", 10),
    ("beschluss", 10),
    ("vertrag", 10),
    ("verträge", 10),
    ("kündigung", 10),
    ("mieterhöhung", 10),
)


@dataclass(frozen=True)
class Retention:
    years: int
    source: str  # "override: <type>", "default: <keyword>" or "default"


def check_years(years: int) -> int:
    if not MIN_YEARS <= years <= MAX_YEARS:
        raise ValueError(f"a retention period is between {MIN_YEARS} and {MAX_YEARS} years, not {years}")
    return years


def retention_for(path: list[str], overrides: dict[str, int] | None = None, *, type_id: str | None = None) -> Retention:
    """The period for a document type given by its path of names (root first).

    ``overrides`` maps the type's id or a level's name (case-insensitive) to years; the id wins, then the deepest
    level with an override, then the deepest level whose name matches a default keyword, else :data:`DEFAULT_YEARS`.
    """
    folded = {k.casefold(): v for k, v in (overrides or {}).items()}
    if type_id is not None and type_id.casefold() in folded:
        return Retention(folded[type_id.casefold()], f"override: {type_id}")
    for name in reversed(path):
        if name.casefold() in folded:
            return Retention(folded[name.casefold()], f"override: {name}")
    for name in reversed(path):
        lowered = name.casefold()
        for keyword, years in DEFAULT_RULES:
            if keyword in lowered:
                return Retention(years, f"default: {keyword}")
    return Retention(DEFAULT_YEARS, "default")


def retention_ends(letter_date: date, years: int) -> date:
    """The last day the document must be kept: 31 December of the letter's year plus ``years``."""
    return date(letter_date.year + years, 12, 31)


def is_due(letter_date: date, years: int, today: date) -> bool:
    """True from the day after the period ended."""
    return today > retention_ends(letter_date, years)


def oldest_undue_letter_date(today: date) -> date:
    """Letters dated on or after this day cannot be due under any period (a cheap pre-filter for queries)."""
    return date(today.year - MIN_YEARS, 1, 1)
