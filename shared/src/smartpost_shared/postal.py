"""Postal endorsements in an address window: lines that name how a letter travels, not who receives it.

DIN 5008 puts them in the remark zone above the address ("Einschreiben Einwurf", "Persönlich/Vertraulich", a
tracking number "RR 1234 5678 9DE", "Entgelt bezahlt"); exports that ignore the zone print them inside the address.
Read as part of the address they became "further names" of the addressee, and a tracking number looked like a
postal-code line. Pure and standard-library only: the splitter's text workers import it.
"""

from __future__ import annotations

import re

# Every word of an endorsement line (case-insensitive, umlauts in both spellings). A line made of these words only,
# separated by spaces, "/", "-", "+", "," ".", ":", is an endorsement if it holds at least one of the key words.
_ENDORSEMENT_WORDS = frozenset(
    {
        "einschreiben", "einwurf", "rückschein", "rueckschein", "eigenhändig", "eigenhaendig", "persönlich",
        "persoenlich", "vertraulich", "bitte", "nicht", "nachsenden", "falls", "wenn", "unzustellbar", "zurück",
        "zurueck", "an", "absender", "entgelt", "bezahlt", "premiumadress", "infopost", "dialogpost",
        "büchersendung", "buechersendung", "warensendung", "prio", "priority", "express", "eilbrief", "eilt",
        "postvertriebsstück", "postvertriebsstueck", "dv", "freimachung", "frankiert", "gebühr", "gebuehr", "mit",
        "und", "international", "national",
    }
)  # fmt: skip
# A line needs one of these, so that "Bitte nicht" alone, "An" or "National" alone is not taken for an endorsement.
_ENDORSEMENT_KEYS = frozenset(
    {
        "einschreiben", "rückschein", "rueckschein", "eigenhändig", "eigenhaendig", "persönlich", "persoenlich",
        "vertraulich", "nachsenden", "unzustellbar", "entgelt", "premiumadress", "infopost", "dialogpost",
        "büchersendung", "buechersendung", "warensendung", "postvertriebsstück", "postvertriebsstueck",
        "freimachung", "eilbrief",
    }
)  # fmt: skip
_SEPARATORS = re.compile(r"[\s/+,.:-]+")
# UPU S10 item identifier (registered mail): two letters, 8 digits + check digit, country ("RR 1234 5678 9DE"),
# optionally led by "Sendungsnummer" / "Sendungs-Nr.".
_TRACKING_LINE = re.compile(
    r"^(?:Sendungs(?:nummer|-?Nr\.?)[ \t]{0,3}:?[ \t]{0,3})?[A-Z]{2}(?:[ \t]?\d){9}[ \t]?[A-Z]{2}$", re.IGNORECASE
)


def is_postal_endorsement(line: str) -> bool:
    """Whether an address-window line is a postal endorsement or a tracking number (not part of the address)."""
    text = line.strip()
    if not text or len(text) > 80:
        return False
    if _TRACKING_LINE.match(text):
        return True
    words = [w for w in _SEPARATORS.split(text.casefold()) if w]
    return bool(words) and all(w in _ENDORSEMENT_WORDS for w in words) and any(w in _ENDORSEMENT_KEYS for w in words)
