"""Postal endorsements in an address window: lines that name how a letter travels, not who receives it.

DIN 5008 puts them in the remark zone above the address ("Einschreiben Einwurf", "Persönlich/Vertraulich", a
tracking number "RR 1234 5678 9DE", "Entgelt bezahlt"); exports that ignore the zone print them inside the address.
Read as part of the address they became "further names" of the addressee, and a tracking number looked like a
postal-code line. Pure and standard-library only: the splitter's text workers import it.
"""

from __future__ import annotations

import re

# Every word of an endorsement line (case-insensitive, umlauts in both spellings). A line made of these words only,
# with "/", "-", "+", "," or "." between them, is an endorsement.
_ENDORSEMENT_WORDS = (
    r"einschreiben|einwurf|rückschein|rueckschein|eigenhändig|eigenhaendig|persönlich|persoenlich|vertraulich"
    r"|bitte|nicht|nachsenden|falls|wenn|unzustellbar|zurück|zurueck|an|absender|entgelt|bezahlt|premiumadress"
    r"|infopost|dialogpost|büchersendung|buechersendung|warensendung|prio|priority|express|eilbrief|eilt"
    r"|postvertriebsstück|postvertriebsstueck|dv-freimachung|freimachung|frankiert|gebühr|gebuehr|mit|und"
    r"|international|national|einschreiben-einwurf|einschreiben-rückschein"
)
_ENDORSEMENT_LINE = re.compile(
    rf"^(?:(?:{_ENDORSEMENT_WORDS})[ \t]{{0,3}}[/+,.:-]?[ \t]{{0,3}}){{1,8}}$",
    re.IGNORECASE,
)
# A required word, so that "Bitte nicht" alone or "An" alone is not taken for an endorsement.
_ENDORSEMENT_KEY = re.compile(
    r"einschreiben|rückschein|rueckschein|eigenhändig|eigenhaendig|persönlich|persoenlich|vertraulich|nachsenden"
    r"|unzustellbar|entgelt|premiumadress|infopost|dialogpost|büchersendung|buechersendung|warensendung|prio"
    r"|priority|express|eilbrief|postvertriebsstück|postvertriebsstueck|freimachung",
    re.IGNORECASE,
)
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
    return bool(_ENDORSEMENT_KEY.search(text)) and bool(_ENDORSEMENT_LINE.match(text))
