"""Text normalisation for matching names, addresses and references as they appear in letter windows.

Everything is folded to lower-case ASCII with German transliteration (ä -> ae, ß -> ss), so "Müller", "MUELLER"
and "Mueller" compare equal. OCR-like variants ("Muller", "Mliller", "Schrnidt") are handled by
:func:`ocr_skeleton` plus a bounded edit distance, never by exact comparison.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_TRANSLIT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "ae", "Ö": "oe", "Ü": "ue", "ẞ": "ss"})

# Words in a window address that are not part of anybody's name.
SALUTATION_WORDS = frozenset(
    {
        "herrn", "herr", "hr", "frau", "fr", "eheleute", "ehel", "familie", "fam", "firma", "fa", "dr", "prof",
        "dipl", "ing", "med", "rer", "nat", "jur", "phil", "von", "vom", "van", "der", "den", "zu", "und", "u",
        "mr", "mrs", "ms", "sehr", "geehrte", "geehrter", "eigentuemer", "eigentuemerin", "mieter", "mieterin",
        "erben", "erbengemeinschaft", "nach", "an", "die", "das", "des", "geb", "sen", "jun", "divers", "mx",
    }
)  # fmt: skip

# Legal-form words of company names; "Müller Immobilien GmbH & Co. KG" and "Mueller Immobilien" compare equal.
COMPANY_FORM_WORDS = frozenset(
    {
        "gmbh", "mbh", "ag", "kg", "kgaa", "ohg", "gbr", "ug", "haftungsbeschraenkt", "ev", "eg", "se", "co",
        "ltd", "inc", "llc", "gesellschaft", "beschraenkter", "haftung", "partg", "partgmbb", "weg",
        "wohnungseigentuemergemeinschaft",
    }
)  # fmt: skip

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_STREET_SUFFIX = re.compile(r"(strasse|str\b|str\.)")


@lru_cache(maxsize=200_000)
def fold(text: str) -> str:
    """Lower-case ASCII: umlauts transliterated, accents dropped, punctuation turned into spaces."""
    text = text.translate(_TRANSLIT)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return " ".join(_NON_ALNUM.sub(" ", text).split())


def tokens(text: str) -> list[str]:
    return fold(text).split()


def name_tokens(text: str) -> list[str]:
    """Tokens of a person or company name without salutations, titles and joiners."""
    return [t for t in tokens(text) if t not in SALUTATION_WORDS and len(t) > 1]


def company_tokens(text: str) -> list[str]:
    """Tokens of a company name without legal forms ("GmbH & Co. KG") and salutations."""
    return [t for t in name_tokens(text) if t not in COMPANY_FORM_WORDS]


def compact_ref(text: str) -> str:
    """Reference numbers compared without separators, case and leading zeros: "K-004711" == "k 4711"."""
    parts = re.findall(r"[a-z]+|\d+", fold(text))
    return "".join(p.lstrip("0") or "0" if p.isdigit() else p for p in parts)


# "ME 12" (Miteigentumseinheit), "SE" (Sondereigentum), "NE" (Nutzeinheit) are unit kinds as much as "WE".
_UNIT_PREFIXES = (
    "wohnung", "whg", "we", "me", "se", "ne", "einheit", "einh", "nr", "nummer", "app", "apartment", "ge", "tg",
)  # fmt: skip


def unit_key(text: str) -> str:
    """A unit reference without its kind prefix: "WE 03", "Whg. 3" and "3" give the same key."""
    key = compact_ref(text)
    for prefix in _UNIT_PREFIXES:
        if key.startswith(prefix) and len(key) > len(prefix) and key[len(prefix)].isdigit():
            return key[len(prefix) :]
    return key


def street_key(text: str) -> str:
    """Street and house number folded: "Musterstraße 5a" == "Musterstr. 5 a" == "musterstr 5a"."""
    folded = fold(text.replace("str.", "str ").replace("Str.", "Str "))
    folded = _STREET_SUFFIX.sub("str", folded)
    return folded.replace(" ", "")


# Characters OCR confuses; both sides are mapped to the same skeleton letter.
_OCR_PAIRS = (
    ("ri", "n"),
    ("rn", "m"),
    ("ii", "u"),
    ("li", "u"),
    ("cl", "d"),
    ("vv", "w"),
    ("0", "o"),
    ("1", "l"),
    ("5", "s"),
)


@lru_cache(maxsize=200_000)
def ocr_skeleton(token: str) -> str:
    """A coarse form of a folded token that survives typical OCR and transliteration differences.

    "mueller", "muller", "mliller" -> "muler"; "schrnidt" -> "schmidt".
    """
    skeleton = token.replace("ae", "a").replace("oe", "o").replace("ue", "u")
    for src, dst in _OCR_PAIRS:
        skeleton = skeleton.replace(src, dst)
    # Doubled letters are often lost or added by OCR ("Muller"/"Mueller"/"Müler").
    return re.sub(r"(.)\1+", r"\1", skeleton)


def within_edit_distance(a: str, b: str, limit: int) -> bool:
    """Damerau-Levenshtein (optimal string alignment) distance of ``a`` and ``b`` is at most ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return False
    if a == b:
        return True
    previous2: list[int] | None = None
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        best = current[0]
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if previous2 is not None and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                value = min(value, previous2[j - 2] + 1)
            current[j] = value
            best = min(best, value)
        if best > limit:
            return False
        previous2, previous = previous, current
    return previous[-1] <= limit


@lru_cache(maxsize=500_000)
def fuzzy_token_equal(doc_token: str, master_token: str) -> bool:
    """Whether two different name tokens are probably the same word misread (never for very short tokens)."""
    if len(master_token) < 4 or len(doc_token) < 4:
        return False
    if ocr_skeleton(doc_token) == ocr_skeleton(master_token):
        return True
    limit = 1 if len(master_token) < 9 else 2
    return within_edit_distance(doc_token, master_token, limit)


def deletion_keys(token: str) -> set[str]:
    """The token and its one-character deletions (symmetric-delete index for edit-distance-1 lookups)."""
    keys = {token}
    if len(token) >= 4:
        keys.update(token[:i] + token[i + 1 :] for i in range(len(token)))
    return keys
