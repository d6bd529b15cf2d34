"""Matching split letters to contacts: candidates, scoring with evidence, and the never-guess decision.

Pure: takes an :class:`~smartpost_shared.masterdata.AccountSnapshot` (one account only) and the splitter's
evidence, returns :class:`~smartpost_shared.contracts.documents.PartAssignment` values. The rules and the point
values are documented in the service README ("Matching rules"); changing a number here means changing it there.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from smartpost_assignment.domain.normalize import (
    compact_ref,
    company_tokens,
    deletion_keys,
    fold,
    fuzzy_token_equal,
    name_tokens,
    ocr_skeleton,
    street_key,
    tokens,
    unit_key,
)
from smartpost_shared.contracts.common import ContractRole, LetterScope
from smartpost_shared.contracts.documents import (
    AssignmentMethod,
    AssignmentStatus,
    Candidate,
    PartAssignment,
    SplitPart,
)
from smartpost_shared.postal import is_postal_endorsement

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import date

    from smartpost_shared.masterdata import AccountSnapshot, Contact, Contract

# --- points (README "Matching rules") -------------------------------------------------------------------------
POINTS_IDENTIFIER = 6.0  # reference id / contact id printed on the page, exact
POINTS_CONTRACT_NUMBER = 3.0  # a contract number of the contact printed on the page
POINTS_NAME_FULL = 4.0  # every first- and last-name token (or every company token) found exactly
POINTS_NAME_FULL_FUZZY = 3.0  # the same, some tokens only as OCR/spelling variants
POINTS_LAST_NAME = 2.0  # last name exact, first name absent
POINTS_INITIAL = 0.5  # ... plus a matching first-name initial
POINTS_LAST_NAME_FUZZY = 1.0  # last name as a variant only
POINTS_CO_ONLY = 0.5  # the name appears only in a "c/o" line (the contact is the intermediary, not the addressee)
POINTS_COMPANY_PARTIAL = 1.0  # at least half of the company tokens
PENALTY_FOREIGN_NAME = -1.0  # the window names further persons this contact does not explain
POINTS_STREET = 2.0  # street and house number
POINTS_STREET_FUZZY = 1.5  # same house number, street as a variant
POINTS_POSTAL_CODE = 1.0
PENALTY_POSTAL_CODE = -1.0  # the window has a postal code and it is not the contact's
POINTS_PROPERTY_REF = 1.0
PENALTY_PROPERTY_REF = -2.0  # the page names a property of the account where the contact has no contract
POINTS_UNIT_REF = 1.0
POINTS_UNIT_POSITION = 0.5
PENALTY_FOREIGN_IDENTIFIER = -3.0  # the page carries another contact's reference id
PENALTY_NAME_ABSENT = -3.0  # the window names someone, but not this contact (found by a number only)

MIN_CANDIDATE_SCORE = 1.0  # below this a contact is not shown as a candidate at all
MAX_CANDIDATES = 5
PRESELECT = 25  # contacts scored in full per part when a name is very common (ties at the cut are kept)

GROUP_ROLES: dict[str, ContractRole] = {
    "owners": ContractRole.OWNER,
    "owner": ContractRole.OWNER,
    "eigentuemer": ContractRole.OWNER,
    "tenants": ContractRole.TENANT,
    "tenant": ContractRole.TENANT,
    "mieter": ContractRole.TENANT,
}


def roles_for_groups(groups: Iterable[str]) -> frozenset[str]:
    """Contract roles of a letter's recipient groups; an unknown (custom) group means every role."""
    roles: set[str] = set()
    for group in groups:
        role = GROUP_ROLES.get(fold(group).replace(" ", ""))
        if role is None:
            return frozenset(r.value for r in ContractRole)
        roles.add(role.value)
    return frozenset(roles)


@dataclass(frozen=True)
class LetterContext:
    """What the assignment of one serial letter depends on (from LetterCreated)."""

    account_id: str
    letter_id: str
    scope: LetterScope
    property_id: str | None
    roles: frozenset[str]
    include_archived: bool
    letter_date: date
    # Optional billing period ("Abrechnungszeitraum 2024"): a contract overlapping it makes its holder a valid
    # recipient (a former owner gets the statement for their months); without it the letter date decides.
    period_start: date | None = None
    period_end: date | None = None

    @property
    def has_period(self) -> bool:
        return self.period_start is not None and self.period_end is not None

    def contract_valid(self, contract: Contract) -> bool:
        """Whether a contract makes its holder a recipient of this letter (period overlap, else letter date)."""
        if self.period_start is not None and self.period_end is not None:
            return contract.start <= self.period_end and (contract.end is None or contract.end >= self.period_start)
        return contract.valid_on(self.letter_date)

    @property
    def validity_text(self) -> str:
        if self.period_start is not None and self.period_end is not None:
            return f"im Abrechnungszeitraum {self.period_start:%d.%m.%Y}–{self.period_end:%d.%m.%Y}"
        return "am Briefdatum"


@dataclass(frozen=True)
class MatchPolicy:
    auto_threshold: float = 7.0
    auto_margin: float = 3.0


# --- the page's evidence, parsed once ----------------------------------------------------------------------------

_POSTAL_LINE = re.compile(r"^(?:[A-Z]{1,2}\s?-\s?)?(\d{4,5})\s+\S")
_CO_LINE = re.compile(r"^\s*(c\s*/\s*o|z\.?\s*hd\.?|zu\s+h(ä|ae)nden|bei)\b", re.IGNORECASE)
_SENDER_MARKS = ("·", "•", "|")
# A window addressed to several people together; "&" is left out on purpose ("GmbH & Co. KG").
_JOINT_MARK = re.compile(r"\b(eheleute|ehepaar|und)\b|\bu\.\s", re.IGNORECASE)
# Heirs of someone, a guardian, an intermediary: the names in the window are not all addressees.
_NOT_JOINT_MARK = re.compile(
    r"erben|erbengemeinschaft|nachlass|verstorben|verst\.|gest\.|selig|†|✝|betreu|vormund|bevollm|"
    r"c\s*/\s*o|z\.?\s*hd|zu\s+h(ä|ae)nden",
    re.IGNORECASE,
)
# A household addressed by its family name: "Familie Koch", "Eheleute Koch", "Herrn und Frau (Felix) Koch".
_HOUSEHOLD_MARK = re.compile(
    r"\b(?:familie|fam\.|eheleute|ehepaar)(?=\s|$)|\b(?:herrn?|frau)\s+(?:und|u\.|&)\s+(?:frau|herrn?)\b", re.IGNORECASE
)
_STREET_HINT = re.compile(
    r"(str(\.|a(ss|ß)e)?|weg|platz|allee|gasse|ring|damm|ufer|chaussee|postfach)\b", re.IGNORECASE
)


@dataclass
class Window:
    """The window address and references of one part, folded for comparison."""

    name_tokens: set[str] = field(default_factory=set)
    initials: set[str] = field(default_factory=set)
    co_tokens: set[str] = field(default_factory=set)
    street_keys: list[str] = field(default_factory=list)
    postal_codes: set[str] = field(default_factory=set)
    identifiers: dict[str, str] = field(default_factory=dict)  # compact key -> as printed
    property_refs: dict[str, str] = field(default_factory=dict)
    # (street key, postal codes printed beside it, as printed): a property named by its address.
    property_streets: list[tuple[tuple[StreetCandidate, ...], frozenset[str], str]] = field(default_factory=list)
    unit_refs: dict[str, str] = field(default_factory=dict)
    unit_texts: set[str] = field(default_factory=set)
    joint_address: bool = False  # "Eheleute", "X und Y": several addressees in one window (not heirs, not c/o)
    # In a joint window, the name tokens of each addressed person ("Herrn A X und Frau B Y" -> {a, x}, {b, y};
    # "Eheleute Anna und Bernd X" -> {anna, x}, {bernd, x}): a full name must stand within one person.
    persons: list[frozenset[str]] = field(default_factory=list)
    # "Familie Koch", "Eheleute Koch", "Herrn und Frau Felix Koch": the household by its family name, at most one
    # first name printed (so ``persons`` is empty). A first name printed still tells which member is meant.
    household: bool = False
    # The last word of a long name line that ends mid-word: a fixed-width field of a legacy export may have cut it
    # ("DIPL.-ING. ANDREAS WISNIEWS" for Wisniewski). Such a word may match a name it begins.
    truncated: set[str] = field(default_factory=set)
    # Properties the page names -> the printed reference that names it (computed once per part, by the MatchIndex).
    named_properties: dict[str, str] | None = None
    # Cells of the first page's unlabelled lines (letterhead, subject, opening sentence), the window address and
    # sender lines taken out; and the properties of the account they name (computed once per part).
    context_cells: list[str] = field(default_factory=list)
    context_properties: dict[str, str] | None = None


_CELL_SPLIT = re.compile(r"\s*(?:[·•|–:;]|\s-\s)\s*")
_POSTAL_CODE = re.compile(r"\b\d{5}\b")
_SPACES = re.compile(r"\s+")


def context_cells(part: SplitPart, ignored: frozenset[str] = frozenset()) -> list[str]:
    """The cells of a part's unlabelled first-page lines that may name its property.

    Left out: the window address (an owner often lives in another of their properties), a line of cells with a
    postal code (the management company's letterhead or footer: "Hausverwaltung X · Parkallee 7 · 10115 Berlin"),
    and lines printed on most letters of the document (``ignored``, see Matcher.note_document).
    """
    address = [_SPACES.sub(" ", a).strip() for a in part.address_lines if a.strip()]
    cells: list[str] = []
    for raw in part.context_lines or ():
        line = _SPACES.sub(" ", raw).strip()
        if fold(line) in ignored:
            continue
        if any(mark in line for mark in _SENDER_MARKS) and _POSTAL_CODE.search(line):
            continue
        for own in address:
            line = line.replace(own, " · ")
        cells += [cell for cell in _CELL_SPLIT.split(line) if cell.strip()]
    return cells


def _is_street_line(line: str) -> bool:
    return bool(re.search(r"\d", line)) and (bool(_STREET_HINT.search(line)) or bool(re.search(r"\s\d+\s?\w?$", line)))


def parse_window(part: SplitPart) -> Window:  # noqa: C901, PLR0912 - one branch per kind of window line
    window = Window()
    lines = [ln.strip() for ln in part.address_lines if ln.strip()]
    # A sender line ("Hausverwaltung X · Weg 1 · 12345 Ort") above the address is not the recipient.
    lines = [ln for ln in lines if not any(mark in ln for mark in _SENDER_MARKS)]
    # "Einschreiben Einwurf", a tracking number: no names of anyone (older split events still carry them).
    lines = [ln for ln in lines if not is_postal_endorsement(ln)]
    postal_index = None
    for i, line in enumerate(lines):
        match = _POSTAL_LINE.match(line)
        if match:
            window.postal_codes.add(match.group(1))
            postal_index = i
    name_lines: list[str] = []
    for i, line in enumerate(lines):
        if postal_index is not None and i >= postal_index:
            continue
        if _is_street_line(line):
            window.street_keys.append(street_key(line))
            continue
        name_lines.append(line)
    window.joint_address = any(_JOINT_MARK.search(line) for line in name_lines) and not any(
        _NOT_JOINT_MARK.search(line) for line in lines
    )
    if window.joint_address:
        window.persons = _persons(" ".join(line for line in name_lines if not _CO_LINE.match(line)))
    window.household = (
        any(_HOUSEHOLD_MARK.search(line) for line in name_lines)
        and not window.persons
        and not any(_NOT_JOINT_MARK.search(line) for line in lines)
    )
    for line in name_lines:
        if _CO_LINE.match(line):
            window.co_tokens.update(name_tokens(_CO_LINE.sub("", line)))
            continue
        words = line.replace(".", " ").split()
        window.initials.update(fold(w) for w in words if len(fold(w)) == 1)
        # Legal forms ("GmbH", "& Co. KG") are not names: they neither match nor count as someone else's name.
        line_tokens = company_tokens(line)
        window.name_tokens.update(line_tokens)
        if (
            line_tokens
            and len(line) >= TRUNCATED_LINE_MIN
            and line[-1].isalpha()
            and len(line_tokens[-1]) >= 4
            and tokens(line)[-1] == line_tokens[-1]  # the cut word itself, not a name before a dropped "v"
        ):
            window.truncated.add(line_tokens[-1])
    for ident in part.identifiers:
        window.identifiers[compact_ref(ident)] = ident
    for ref in part.property_refs:
        for key in reference_keys(ref):
            window.property_refs.setdefault(key, ref)
        postal = frozenset(re.findall(r"\b\d{5}\b", ref))
        window.property_streets += [(keys, postal, ref) for keys in street_key_groups(ref)]
    for ref in part.unit_refs:
        for key in reference_keys(ref, unit=True):
            window.unit_refs.setdefault(key, ref)
        window.unit_texts.add(fold(ref))
        # "WE 03 (1. OG links)": the position in brackets is a unit text of its own.
        for inner in re.findall(r"\(([^)]+)\)", ref):
            window.unit_texts.add(fold(inner))
    return window


# Name lines at least this long may have been cut by a fixed-width field (legacy exports: 27-35 characters).
TRUNCATED_LINE_MIN = 20
MAX_PREFIX_TOKENS = 50  # names that a cut word may begin, looked up at most (a 4-letter word begins few names)

_PERSON_SPLIT = re.compile(r"\bund\b|\bu\.(?=\s)", re.IGNORECASE)


def _persons(text: str) -> list[frozenset[str]]:
    """The name tokens of each person a joint window addresses; a lone first name shares the last family name."""
    segments = [company_tokens(segment) for segment in _PERSON_SPLIT.split(text)]
    segments = [[t for t in segment if t != "ehepaar"] for segment in segments]
    segments = [segment for segment in segments if segment]
    if len(segments) < 2:  # one person is no joint address
        return []
    # "Anna und Bernd Klein-Hartmann": the family name is everything after the last person's first name.
    family = segments[-1][1:] or segments[-1]
    return [frozenset([*segment, *family]) if len(segment) == 1 else frozenset(segment) for segment in segments]


def _one_person_named(profile: Profile, window: Window) -> bool:
    """Whether first and last name stand together within one addressed person of a joint window."""
    if not window.persons:
        return True
    wanted = (*profile.first, *profile.last)
    return any(
        all(t in person or any(fuzzy_token_equal(p, t) for p in person) for t in wanted) for person in window.persons
    )


_REF_TOKEN = re.compile(r"[a-z]+|\d+")


def reference_keys(printed: str, *, unit: bool = False, max_tokens: int = 4) -> list[str]:
    """Keys under which a reference printed on a page can match master data.

    ERPs print more than the bare reference ("Objekt: WEG-0815 Lindenstraße 12", "Einheit: WE 03 (1. OG links)"),
    so besides the whole text every leading run of whole tokens is a key ("weg815", "3"). Tokens are never cut
    in the middle: "WE 31" never gives the key of "WE 3".
    """
    whole = unit_key(printed) if unit else compact_ref(printed)
    keys = [whole]
    tokens = _REF_TOKEN.findall(fold(printed))
    if unit and len(tokens) > 1 and tokens[0] in _UNIT_KIND_WORDS and tokens[1].isdigit():
        tokens = tokens[1:]
    prefix = ""
    for token in tokens[:max_tokens]:
        prefix += token.lstrip("0") or "0" if token.isdigit() else token
        # A key must carry a number: a bare word ("weg", "objekt") identifies nothing.
        if prefix not in keys and any(ch.isdigit() for ch in prefix):
            keys.append(prefix)
    return keys


_HOUSE_NUMBER = re.compile(r"[1-9]\d{0,3}[a-z]?")  # "0815" is a reference, not a house number
# "3/1", "3-5", "3 1/2", "3 und 5", "3 bis 5", "12 a-c": compound house numbers are not compared at all.
_COMPOUND_NUMBER = re.compile(
    r"\d+\s*[a-zA-Z]?\s*(?:\d+\s*)?(?:[-/–+&]|\b(?:und|bis)\b|\bu\.)\s*\d*[a-zA-Z]?\b", re.IGNORECASE
)
_COMPOUND_MARK = " zzcompound "
_COMMA_MARK = " zzcomma "
# Words that may stand before a street in a property reference without being part of the street's name.
_DESIGNATION_WORDS = frozenset(
    {
        "objekt",
        "liegenschaft",
        "verwaltungsobjekt",
        "weg",  # "WEG Lindenstraße 12": the owners' association, not a street word
        "wohnungseigentuemergemeinschaft",
        "eigentuemergemeinschaft",
        "wohnanlage",
        "anlage",
        "haus",
        "wohnhaus",
        "mehrfamilienhaus",
        "gebaeude",
        "nr",
        "zzcomma",
    }
)


# Words that lead a property's address in running text ("WEG Parkallee 7", "Wohnanlage Am Markt 5 a").
_CONTEXT_DESIGNATIONS = _DESIGNATION_WORDS - {"nr", "zzcomma"}

# Running text after a house number (only where the caller asks for it, see street_key_groups): a word in lower
# case ("übersenden", "erhalten", "für", "die", "whg.") or sentence punctuation ends the address. A capitalised word
# may name another building ("Gartenweg 3 Hinterhaus", "Parkallee 7 Haus B"), and so may these words in lower case.
_PROSE_MARK = " zzprose "
# A street never runs across a comma or the end of an address (but only a comma starts a clean prefix anew).
_BOUNDARY_MARKS = frozenset({"zzcomma", "zzprose"})
_NUMBER_TOKEN = re.compile(r"\b[1-9]\d{0,3}(?:\s?[a-zA-Z](?!\w))?(?!\w)")  # "12", "12a", "12 a"
_SENTENCE_END = re.compile(r"\s*[.;)!?](?!\d)")
_NEXT_WORD = re.compile(r"\s+([^\W\d_]+)")
_BUILDING_WORDS = ("haus", "gebaeude", "fluegel", "trakt", "bau", "aufgang", "eingang", "block", "stiege", "hof")


def _mark_prose(text: str) -> str:
    """Put a prose mark after every house number that running text or sentence punctuation follows."""

    def mark(match: re.Match[str]) -> str:
        if _SENTENCE_END.match(text, match.end()):
            return match.group() + _PROSE_MARK
        word = _NEXT_WORD.match(text, match.end())
        if word is None:
            return match.group()
        following = word.group(1)
        folded = fold(following)
        if len(following) < 2 or not following[0].islower() or folded.endswith(_BUILDING_WORDS):
            return match.group()
        return match.group() + _PROSE_MARK

    return _NUMBER_TOKEN.sub(mark, text)


@dataclass(frozen=True)
class StreetCandidate:
    """A street key a printed property reference may mean, and whether the words before it allow shortening."""

    key: str
    clean_prefix: bool  # only designations ("Objekt", "WEG", reference numbers) stand before this key
    designated: bool = False  # a designation ("WEG", "Liegenschaft", "Wohnanlage") stands right before this key
    prose_after: bool = False  # running text or sentence punctuation follows the number (only with prose=True)


def street_key_groups(printed: str, *, prose: bool = False) -> list[tuple[StreetCandidate, ...]]:
    """Per house number in a printed property reference, the street keys it may stand for, longest first.

    ERPs name a property by its address as often as by a number ("Objekt: Lindenstraße 12, 10115 Berlin",
    "WEG Am Alten Markt 5"). The street is the one to four words before a house number; a shorter key is only
    acceptable when the words left out are designations ("Objekt", "WEG", a reference number), never a part of
    a street name ("Am Gartenweg 3" is not "Gartenweg 3"). After the number only a comma or a postal code may
    follow ("Gartenweg 3 Hinterhaus" could be another property); with ``prose`` (running text: the opening
    sentence "in der Liegenschaft WEG Lindenstraße 12 übersenden wir …") also a word in lower case or sentence
    punctuation, marked ``prose_after`` so the caller can demand a designation right before the street. Compound
    numbers ("3/1", "3-5", "3 und 5") give nothing. Whatever is not certain gives no key: an unresolved property
    goes to review, never to a guess.
    """
    marked = _COMPOUND_NUMBER.sub(_COMPOUND_MARK, printed)
    if prose:
        marked = _mark_prose(marked)
    words = fold(marked.replace(",", _COMMA_MARK)).split()
    groups: list[tuple[StreetCandidate, ...]] = []
    for i, word in enumerate(words):
        if not _HOUSE_NUMBER.fullmatch(word) or i == 0 or words[i - 1].isdigit():
            continue
        after = i + 1
        suffix = ""
        if after < len(words) and re.fullmatch(r"[a-z]", words[after]):
            suffix, after = words[after], after + 1
        following = words[after] if after < len(words) else ""
        prose_after = following == "zzprose"
        if following and following != "zzcomma" and not prose_after and not re.fullmatch(r"\d{5}", following):
            continue
        first = i
        while first > 0 and words[first - 1] not in _BOUNDARY_MARKS and i - first < 4:
            first -= 1
        line_start = max((k + 1 for k in range(i) if words[k] == "zzcomma"), default=0)
        candidates = []
        for start in range(first, i):
            skipped = words[line_start:start]
            clean = all(w in _DESIGNATION_WORDS or any(ch.isdigit() for ch in w) for w in skipped)
            designated = bool(skipped) and skipped[-1] in _CONTEXT_DESIGNATIONS
            key = street_key(" ".join([*words[start:i], word + suffix]))
            candidates.append(StreetCandidate(key, clean, designated, prose_after))
        groups.append(tuple({c.key: c for c in candidates}.values()))
    return groups


def street_keys_in(printed: str) -> list[str]:
    """Every street key of a printed property reference (all groups, flattened)."""
    return [c.key for group in street_key_groups(printed) for c in group]


_UNIT_KIND_WORDS = frozenset(
    {"wohnung", "whg", "we", "me", "se", "ne", "einheit", "einh", "nr", "nummer", "app", "apartment", "ge", "tg"}
)


# --- master data, prepared once per letter ---------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    property_id: str
    unit_id: str
    contract: Contract


@dataclass
class Profile:
    """A contact as the matcher sees it: folded name/address tokens and its contracts in the letter's scope."""

    contact: Contact
    first: list[str]
    last: list[str]
    company: list[str]
    street: str
    postal_code: str
    ref_keys: set[str]
    name_key: str
    address_key: str
    in_period: list[Placement]
    out_of_period: list[Placement]
    contract_numbers: set[str] = field(default_factory=set)
    first_set: frozenset[str] = frozenset()
    last_set: frozenset[str] = frozenset()
    company_set: frozenset[str] = frozenset()

    @property
    def placements(self) -> list[Placement]:
        return self.in_period or self.out_of_period


@dataclass(frozen=True)
class _Features:
    first: list[str]
    last: list[str]
    company: list[str]
    street: str
    ref_keys: frozenset[str]
    name_key: str
    name_keys: frozenset[str]  # lookup keys of last-name/company tokens (deletions and OCR skeletons)


def _features(contact: Contact) -> _Features:
    first = name_tokens(contact.first_name)
    last = name_tokens(contact.last_name)
    company = company_tokens(contact.company)
    refs = {compact_ref(contact.contact_id)}
    if contact.reference_id:
        refs.add(compact_ref(contact.reference_id))
    name_key = " ".join(sorted(ocr_skeleton(t) for t in (*first, *last))) or " ".join(
        sorted(ocr_skeleton(t) for t in company)
    )
    keys: set[str] = set()
    for token in (*last, *company):
        keys |= deletion_keys(token)
        keys.add(ocr_skeleton(token))
    return _Features(
        first=first,
        last=last,
        company=company,
        street=street_key(contact.street) if contact.street else "",
        ref_keys=frozenset(refs),
        name_key=name_key,
        name_keys=frozenset(keys),
    )


def _name_key(contact: Contact) -> str:
    first, last = name_tokens(contact.first_name), name_tokens(contact.last_name)
    return " ".join(sorted(ocr_skeleton(t) for t in (*first, *last))) or " ".join(
        sorted(ocr_skeleton(t) for t in company_tokens(contact.company))
    )


_REF_WORD = re.compile(r"[a-z0-9]+")
BOILERPLATE_MIN_PARTS = 3  # a line on this many first pages (and on half of them) is letterhead
MIN_PROPERTY_NAME = 8  # a property name shorter than this ("Haus A") is too ambiguous to look up in text


class AccountIndex:
    """Account-wide lookups derived once from a snapshot and shared by every letter matched against it."""

    def __init__(self, snapshot: AccountSnapshot) -> None:
        self.snapshot = snapshot
        self._features: dict[str, _Features] = {}
        # Reference ids of every contact of the account (not only candidates): a page carrying the id of a
        # contact outside the candidate set must still count against the candidates.
        self.account_refs: dict[str, str] = {}
        for contact in snapshot.contacts.values():
            self.account_refs[compact_ref(contact.contact_id)] = contact.contact_id
            if contact.reference_id:
                self.account_refs[compact_ref(contact.reference_id)] = contact.contact_id
        self.unit_keys: dict[str, tuple[str, str]] = {
            u.unit_id: (unit_key(u.number), fold(u.position) if u.position else "") for u in snapshot.units.values()
        }
        self.property_ref_keys: dict[str, str] = {
            compact_ref(p.reference): p.property_id for p in snapshot.properties.values() if p.reference
        }
        # Street key -> properties at that address (several when two properties share a street name in two towns,
        # or a WEG and a rental house share a building: then the postal code must decide, or nothing does).
        self.property_streets: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for prop in snapshot.properties.values():
            # The street field; without one, the address in the name ("WEG Lindenstraße 12").
            keys = [street_key(prop.street)] if re.search(r"\d", prop.street) else street_keys_in(prop.name)
            for key in keys:
                self.property_streets[key].append((prop.property_id, prop.postal_code.strip()))
        self.contract_number_keys: dict[str, str] = {
            c.contract_id: compact_ref(c.contract_number) for c in snapshot.contracts if c.contract_number
        }
        # Duplicate search over the whole account: name key, address key and units of every contact.
        self.by_name_key: dict[str, set[str]] = defaultdict(set)
        self.address_keys: dict[str, str] = {}
        for contact in snapshot.contacts.values():
            key = _name_key(contact)
            if key:
                self.by_name_key[key].add(contact.contact_id)
            street = street_key(contact.street) if contact.street else ""
            self.address_keys[contact.contact_id] = f"{street}|{contact.postal_code.strip()}"
        units_of: dict[str, set[str]] = defaultdict(set)
        for contract in snapshot.contracts:
            units_of[contract.contact_id].add(contract.unit_id)
        self.units_of: dict[str, frozenset[str]] = {cid: frozenset(u) for cid, u in units_of.items()}
        # Property names as printed ("Wohnanlage Rosenhof"), folded, for the dictionary lookup in the page's
        # property references; a name shared by two properties names neither. A name with a number in it is an
        # address ("WEG Lindenstraße 12") and is left to the street rules (compound numbers, following words).
        names: dict[str, set[str]] = defaultdict(set)
        for prop in snapshot.properties.values():
            folded = " ".join(_REF_WORD.findall(fold(prop.name)))
            if len(folded) >= MIN_PROPERTY_NAME and not any(ch.isdigit() for ch in folded):
                names[folded].add(prop.property_id)
        self.property_names: dict[str, str] = {n: next(iter(p)) for n, p in names.items() if len(p) == 1}
        self.max_name_words = max((len(n.split()) for n in self.property_names), default=0)

    def features(self, contact: Contact) -> _Features:
        found = self._features.get(contact.contact_id)
        if found is None:
            found = self._features[contact.contact_id] = _features(contact)
        return found


class MatchIndex:
    """Candidates of one letter (scope, groups, date, archive flag) with lookup indexes for fast retrieval."""

    def __init__(  # noqa: C901, PLR0912 - one pass over contracts and candidates builds every index
        self, snapshot: AccountSnapshot, context: LetterContext, account_index: AccountIndex | None = None
    ) -> None:
        if snapshot.account_id != context.account_id:
            msg = "master data of another account"
            raise ValueError(msg)
        if account_index is not None and account_index.snapshot is not snapshot:
            msg = "account index of another snapshot"
            raise ValueError(msg)
        self.snapshot = snapshot
        self.context = context
        account = account_index or AccountIndex(snapshot)
        self.account_refs = account.account_refs
        self.unit_keys = account.unit_keys
        self.property_ref_keys = account.property_ref_keys
        self.contract_number_keys = account.contract_number_keys
        self.property_streets = account.property_streets
        self.account = account
        in_period: dict[str, list[Placement]] = defaultdict(list)
        out_of_period: dict[str, list[Placement]] = defaultdict(list)
        for contract in snapshot.contracts:
            if contract.role not in context.roles:
                continue
            if context.scope is LetterScope.PROPERTY and contract.property_id != context.property_id:
                continue
            placement = Placement(contract.property_id, contract.unit_id, contract)
            if context.contract_valid(contract):
                in_period[contract.contact_id].append(placement)
            else:
                out_of_period[contract.contact_id].append(placement)
        self.profiles: dict[str, Profile] = {}
        self.by_ref: dict[str, set[str]] = defaultdict(set)
        self.by_name: dict[str, set[str]] = defaultdict(set)
        self.by_name_key: dict[str, set[str]] = defaultdict(set)
        self.by_token: dict[str, set[str]] = defaultdict(set)
        for contact_id in sorted(set(in_period) | set(out_of_period)):
            contact = snapshot.contacts.get(contact_id)
            if contact is None or (contact.archived and not context.include_archived):
                continue
            f = account.features(contact)
            placements_now = in_period.get(contact_id, [])
            placements_other = out_of_period.get(contact_id, [])
            numbers = {
                account.contract_number_keys[p.contract.contract_id]
                for p in (placements_now or placements_other)
                if p.contract.contract_id in account.contract_number_keys
            }
            self.profiles[contact_id] = Profile(
                contact=contact,
                first=f.first,
                last=f.last,
                company=f.company,
                street=f.street,
                postal_code=contact.postal_code.strip(),
                ref_keys=set(f.ref_keys),
                name_key=f.name_key,
                address_key=f"{f.street}|{contact.postal_code.strip()}",
                in_period=placements_now,
                out_of_period=placements_other,
                contract_numbers=numbers,
                first_set=frozenset(f.first),
                last_set=frozenset(f.last),
                company_set=frozenset(f.company),
            )
            for key in f.ref_keys | numbers:
                self.by_ref[key].add(contact_id)
            for key in f.name_keys:
                self.by_name[key].add(contact_id)
            if f.name_key:
                self.by_name_key[f.name_key].add(contact_id)
            for token in (*f.last, *f.company):
                self.by_token[token].add(contact_id)
        self._sorted_tokens: list[str] | None = None

    def tokens_beginning(self, prefix: str) -> list[str]:
        """Last-name and company tokens of the candidates that begin with ``prefix`` and are longer."""
        if self._sorted_tokens is None:
            self._sorted_tokens = sorted(self.by_token)
        found: list[str] = []
        for token in self._sorted_tokens[bisect.bisect_right(self._sorted_tokens, prefix) :]:
            if not token.startswith(prefix) or len(found) >= MAX_PREFIX_TOKENS:
                break
            found.append(token)
        return found

    def profile_of(self, contact_id: str) -> Profile:
        """The candidate's profile, or one for a contact outside the letter's candidates.

        A duplicate found account-wide gets all its contracts, none of them counting as valid for this letter.
        """
        found = self.profiles.get(contact_id)
        if found is not None:
            return found
        contact = self.snapshot.contacts[contact_id]
        f = self.account.features(contact)
        placements = [
            Placement(c.property_id, c.unit_id, c) for c in self.snapshot.contracts if c.contact_id == contact_id
        ]
        return Profile(
            contact=contact, first=f.first, last=f.last, company=f.company, street=f.street,
            postal_code=contact.postal_code.strip(), ref_keys=set(f.ref_keys), name_key=f.name_key,
            address_key=self.account.address_keys[contact_id], in_period=[], out_of_period=placements,
            first_set=frozenset(f.first), last_set=frozenset(f.last), company_set=frozenset(f.company),
        )  # fmt: skip

    def properties_named(self, window: Window) -> dict[str, str]:
        """Properties whose name (as in master data) appears in one of the page's property references."""
        names = self.account.property_names
        if not names:
            return {}
        found: dict[str, str] = {}
        longest = self.account.max_name_words
        for printed in set(window.property_refs.values()):
            words = _REF_WORD.findall(fold(printed))
            for i in range(len(words)):
                for n in range(min(longest, len(words) - i), 0, -1):
                    hit = names.get(" ".join(words[i : i + n]))
                    if hit is not None:
                        found.setdefault(hit, printed)
                        break
        return found

    def properties_at(self, window: Window) -> dict[str, str]:
        """Properties the page names by address: a street key that fits exactly one property (postal code too)."""
        found: dict[str, str] = {}
        for candidates, postal, printed in window.property_streets:
            # The longest run of words that is a property street decides; a shorter one only if nothing but
            # designations were left out ("Am Gartenweg 3" may be a property not (yet) in master data).
            hit = next((c for c in candidates if c.key in self.property_streets), None)
            if hit is None or not hit.clean_prefix:
                continue
            at = self.property_streets[hit.key]
            if postal:
                at = [a for a in at if not a[1] or a[1] in postal]  # a known, different code excludes
            if len(at) == 1:
                found.setdefault(at[0][0], printed)
        return found

    def properties_in_context(self, window: Window) -> dict[str, str]:
        """Properties of the account named in the page's unlabelled lines (letterhead, subject, opening sentence).

        By their name, or by their address led by a designation ("WEG Parkallee 7", "Wohnanlage Am Markt 5 a,
        10115 Berlin") or printed with the property's postal code. In running text the designation must stand
        right before the street, and then the number may also be followed by a word in lower case, sentence
        punctuation or the end of the cell ("in der Liegenschaft WEG Lindenstraße 12 übersenden wir …"), never
        by a capitalised word ("Gartenweg 3 Hinterhaus"). A name or address that fits several properties names
        none of them.
        """
        if window.context_properties is not None:
            return window.context_properties
        found: dict[str, str] = {}
        names = self.account.property_names
        longest = self.account.max_name_words
        for cell in window.context_cells:
            words = _REF_WORD.findall(fold(cell))
            for i in range(len(words)):
                for n in range(min(longest, len(words) - i), 0, -1):
                    hit = names.get(" ".join(words[i : i + n]))
                    if hit is not None:
                        found.setdefault(hit, cell)
                        break
            led = bool(words) and words[0] in _CONTEXT_DESIGNATIONS
            for property_id in self._addresses_in_cell(cell, led=led):
                found.setdefault(property_id, cell)
        window.context_properties = found
        return found

    def _addresses_in_cell(self, cell: str, *, led: bool) -> list[str]:
        """The properties one context cell names by address (see properties_in_context)."""
        postal = frozenset(_POSTAL_CODE.findall(cell))
        found: list[str] = []
        for candidates in street_key_groups(cell, prose=True):
            street = next((c for c in candidates if c.key in self.property_streets), None)
            if street is None:
                continue
            # A cell led by designations ("WEG Parkallee 7, Whg. 3"), or a designation right before the street in
            # running text ("… in der Liegenschaft WEG Lindenstraße 12 übersenden wir …"); prose after the number
            # only in the second case.
            cell_led = street.clean_prefix and not street.prose_after
            if not (cell_led or street.designated):
                continue
            at = self.property_streets[street.key]
            if postal:
                at = [a for a in at if not a[1] or a[1] in postal]
            if len(at) == 1 and (street.designated or led or at[0][1] in postal):
                found.append(at[0][0])
        return found

    def retrieve(self, window: Window) -> set[str]:
        found: set[str] = set()
        for key in window.identifiers:
            found |= self.by_ref.get(key, set())
        for token in window.name_tokens | window.co_tokens:
            exact = self.by_token.get(token)
            if exact:
                # The word is somebody's name as printed; a name one letter longer may still be meant ("Kuhn"
                # printed for "Kühn" = "kuehn" without its "e"): one lookup of the word among the deletion keys.
                found |= exact
                found |= self.by_name.get(token, set())
                continue
            for key in deletion_keys(token) | {ocr_skeleton(token)}:
                found |= self.by_name.get(key, set())
        for token in window.truncated:
            if token not in self.by_token:  # a whole name as printed needs no completion
                for longer in self.tokens_beginning(token):
                    found |= self.by_token[longer]
        # No retrieval by address: a shared address alone never makes a candidate (see Matcher.rank).
        return found


# --- scoring -----------------------------------------------------------------------------------------------------


@dataclass
class Scored:
    profile: Profile
    score: float
    evidence: list[str]
    has_identifier: bool
    has_contract_number: bool
    name_points: float
    address_points: float
    conflicts: list[str]
    placement: Placement | None
    placement_property: str | None
    placement_problem: str | None
    foreign_names: frozenset[str] = frozenset()  # window names this contact does not explain (penalised)

    @property
    def contact_id(self) -> str:
        return self.profile.contact.contact_id

    @property
    def in_period(self) -> bool:
        return bool(self.profile.in_period)


def _match_tokens(
    wanted: Sequence[str], present: set[str], truncated: set[str] | frozenset[str] = frozenset()
) -> tuple[int, int, set[str]]:
    """(exact, fuzzy, used present tokens) for the wanted tokens; a cut word that begins a wanted one is fuzzy."""
    exact = fuzzy = 0
    used: set[str] = set()
    for token in wanted:
        if token in present:
            exact += 1
            used.add(token)
            continue
        variant = next((p for p in sorted(present) if fuzzy_token_equal(p, token)), None)
        if variant is None:
            variant = next((p for p in sorted(truncated) if len(token) > len(p) and token.startswith(p)), None)
        if variant is not None:
            fuzzy += 1
            used.add(variant)
    return exact, fuzzy, used


def _name_points(profile: Profile, window: Window) -> tuple[float, str, set[str]]:  # noqa: C901, PLR0912 - the point table
    best = (0.0, "", set[str]())
    contact = profile.contact
    if profile.last:
        exact, fuzzy, used = _match_tokens(profile.last, window.name_tokens, window.truncated)
        if exact + fuzzy == len(profile.last):
            f_exact, f_fuzzy, f_used = _match_tokens(profile.first, window.name_tokens)
            used |= f_used
            display = f"{contact.first_name} {contact.last_name}".strip()
            if profile.first and f_exact + f_fuzzy == len(profile.first) and not _one_person_named(profile, window):
                # "Herrn Björn Koch und Herrn Florian Keller" does not name Björn Keller: the first name belongs
                # to one addressee, the last name to another. Only the last name counts.
                used -= f_used
                best = (
                    POINTS_LAST_NAME,
                    f"nur Nachname {contact.last_name} (Vorname gehört zu einer anderen Person)",
                    used,
                )
            elif profile.first and f_exact + f_fuzzy == len(profile.first):
                if fuzzy or f_fuzzy:
                    best = (POINTS_NAME_FULL_FUZZY, f"Name {display} (Schreibvariante)", used)
                else:
                    best = (POINTS_NAME_FULL, f"Name {display} exakt", used)
            elif not profile.first:
                points = POINTS_NAME_FULL if not fuzzy else POINTS_NAME_FULL_FUZZY
                best = (points, f"Name {display}", used)
            elif fuzzy:
                best = (POINTS_LAST_NAME_FUZZY, f"nur Nachname {contact.last_name} (Schreibvariante)", used)
            else:
                points = POINTS_LAST_NAME
                text = f"nur Nachname {contact.last_name}"
                if any(t[0] in window.initials for t in profile.first):
                    points += POINTS_INITIAL
                    text += " und Initiale des Vornamens"
                best = (points, text, used)
        elif window.co_tokens:
            co_exact, co_fuzzy, _ = _match_tokens(profile.last, window.co_tokens)
            if co_exact + co_fuzzy == len(profile.last):
                best = (POINTS_CO_ONLY, f"{contact.last_name} nur in c/o-Zeile", set())
    if profile.company:
        exact, fuzzy, used = _match_tokens(profile.company, window.name_tokens, window.truncated)
        if exact + fuzzy == len(profile.company):
            points = POINTS_NAME_FULL if not fuzzy else POINTS_NAME_FULL_FUZZY
            candidate = (points, f"Firma {contact.company}" + (" (Schreibvariante)" if fuzzy else " exakt"), used)
        elif exact * 2 >= len(profile.company) and exact:
            candidate = (POINTS_COMPANY_PARTIAL, f"Teile der Firma {contact.company}", used)
        else:
            candidate = (0.0, "", set())
        if candidate[0] > best[0]:
            best = candidate
    return _cut_names_weaken(best, profile, window)


def _cut_names_weaken(
    best: tuple[float, str, set[str]], profile: Profile, window: Window
) -> tuple[float, str, set[str]]:
    """A name found only as the beginning of a word cut by a fixed-width field counts as a variant of the last name.

    "WISNIEWS" begins Wisniewski, but "Stein" begins Steinbach as well: the contact is shown to staff, never chosen
    on it alone (a cut word is no full name, however the rest of the window matches).
    """
    points, _, used = best
    own = (*profile.first, *profile.last, *profile.company)
    cut = sorted(t for t in used & window.truncated if any(o != t and o.startswith(t) for o in own))
    if not cut or points <= POINTS_LAST_NAME_FUZZY:
        return best
    return (POINTS_LAST_NAME_FUZZY, f"Name nur abgeschnitten auf der Seite („{cut[0]}…“)", used)


def _foreign_names(
    profile: Profile, window: Window, name_points: float, used: set[str], evidence: list[str]
) -> set[str]:
    """The window's name tokens that this contact does not explain and no joint address explains."""
    foreign = {
        t
        for t in window.name_tokens - used
        if not any(fuzzy_token_equal(t, own) for own in (*profile.first, *profile.last))
    }
    if not (name_points >= POINTS_LAST_NAME_FUZZY and profile.last) or not foreign:
        return set()
    if window.joint_address and name_points >= POINTS_NAME_FULL_FUZZY:
        # "Eheleute Anna und Bernd X", "Herrn A X und Frau B Y", "A X u. B Y": the contact is named in full and the
        # window addresses several people; the others need not be in master data.
        evidence.append("gemeinsam adressiert mit: " + ", ".join(sorted(foreign)))
        return set()
    return foreign


def _address_points(profile: Profile, window: Window) -> tuple[float, list[str]]:
    points = 0.0
    evidence: list[str] = []
    if profile.street and window.street_keys:
        if profile.street in window.street_keys:
            points += POINTS_STREET
            evidence.append(f"Straße {profile.contact.street} exakt")
        else:
            number = re.search(r"\d+[a-z]?$", profile.street)
            for key in window.street_keys:
                other = re.search(r"\d+[a-z]?$", key)
                if number and other and number.group() == other.group():
                    a, b = profile.street[: number.start()], key[: other.start()]
                    if len(a) >= 5 and fuzzy_token_equal(b, a):
                        points += POINTS_STREET_FUZZY
                        evidence.append(f"Straße {profile.contact.street} (Schreibvariante)")
                        break
    if profile.postal_code and window.postal_codes:
        if profile.postal_code in window.postal_codes:
            points += POINTS_POSTAL_CODE
            evidence.append(f"PLZ {profile.postal_code}")
        else:
            points += PENALTY_POSTAL_CODE
            evidence.append(f"PLZ abweichend (Stammdaten {profile.postal_code})")
    return points, evidence


class Matcher:
    """Scores one part's candidates and decides: auto-assign, needs review, or unmatched."""

    def __init__(self, index: MatchIndex, policy: MatchPolicy | None = None) -> None:
        self.index = index
        self.policy = policy or MatchPolicy()
        self._boilerplate: frozenset[str] = frozenset()

    # -- placement: which property/unit the contact gets this part for --
    def _placement(  # noqa: C901, PLR0912, PLR0915 - property reference, unit reference and contract number narrow in turn
        self, profile: Profile, window: Window
    ) -> tuple[Placement | None, str | None, str | None, float, list[str]]:
        snapshot = self.index.snapshot
        placements = profile.placements
        points = 0.0
        evidence: list[str] = []
        if window.named_properties is None:
            named = {
                self.index.property_ref_keys[k]: printed
                for k, printed in reversed(window.property_refs.items())
                if k in self.index.property_ref_keys
            }
            for more in (self.index.properties_at(window), self.index.properties_named(window)):
                for property_id, printed in more.items():
                    named.setdefault(property_id, printed)
            window.named_properties = named
        wanted_props = set(window.named_properties)
        by_number = [
            p
            for p in placements
            if self.index.contract_number_keys.get(p.contract.contract_id, "\0") in window.identifiers
        ]
        if by_number:
            placements = by_number  # the page names the contract itself
        own_props = {p.property_id for p in placements}
        if wanted_props:
            if wanted_props & own_props:
                points += POINTS_PROPERTY_REF
                hits = sorted(wanted_props & own_props)
                refs = ", ".join(snapshot.properties[p].reference for p in hits)
                printed = "; ".join(dict.fromkeys(window.named_properties[p] for p in hits))
                evidence.append(f"Liegenschaft {refs} auf der Seite („{printed}“)")
                placements = [p for p in placements if p.property_id in wanted_props]
            else:
                points += PENALTY_PROPERTY_REF
                printed = "; ".join(dict.fromkeys(window.named_properties.values()))
                evidence.append(f"Liegenschaft auf der Seite („{printed}“) passt nicht zu den Verträgen des Kontakts")
        elif len(own_props) > 1 and window.context_cells:
            # No labelled property: a name or address of exactly one of the contact's own properties in the
            # letterhead, subject or opening sentence decides between them (no points: it places, never picks).
            in_context = self.index.properties_in_context(window)
            hits = sorted(own_props & set(in_context))
            if len(hits) == 1:
                evidence.append(
                    f"Liegenschaft {snapshot.properties[hits[0]].reference} auf der Seite genannt "
                    f"(ohne Bezeichnung: „{in_context[hits[0]]}“)"
                )
                placements = [p for p in placements if p.property_id == hits[0]]
            elif hits:
                printed = "; ".join(dict.fromkeys(in_context[h] for h in hits))
                evidence.append(f"mehrere Liegenschaften des Kontakts auf der Seite genannt („{printed}“)")
        if window.unit_refs or window.unit_texts:
            by_unit: list[Placement] = []
            position_hit = False
            for placement in placements:
                unit = snapshot.units.get(placement.unit_id)
                if unit is None:
                    continue
                number_key, position_key = self.index.unit_keys[unit.unit_id]
                if number_key in window.unit_refs:
                    by_unit.append(placement)
                elif position_key and position_key in window.unit_texts:
                    by_unit.append(placement)
                    position_hit = True
            if by_unit:
                points += POINTS_UNIT_POSITION if position_hit else POINTS_UNIT_REF
                numbers = sorted({snapshot.units[p.unit_id].number for p in by_unit})
                evidence.append(f"Einheit {', '.join(numbers)} auf der Seite")
                placements = by_unit
        pairs = {(p.property_id, p.unit_id) for p in placements}
        if len(pairs) == 1:
            return placements[0], placements[0].property_id, None, points, evidence
        props = {p.property_id for p in placements}
        if len(props) == 1:
            return None, next(iter(props)), "Kontakt hat mehrere Einheiten; Einheit nicht eindeutig", points, evidence
        return (
            None,
            None,
            "Kontakt hat Verträge in mehreren Liegenschaften; Liegenschaft nicht eindeutig",
            points,
            evidence,
        )

    def score(self, profile: Profile, window: Window) -> Scored:  # noqa: C901 - the point table, rule by rule
        evidence: list[str] = []
        conflicts: list[str] = []
        score = 0.0
        has_identifier = False
        for key, printed in window.identifiers.items():
            if key in profile.ref_keys:
                has_identifier = True
                evidence.append(f"Referenz-ID {printed} exakt")
            elif key in self.index.account_refs:
                conflicts.append(f"Referenz-ID {printed} gehört zu einem anderen Kontakt")
        if has_identifier:
            score += POINTS_IDENTIFIER
        elif conflicts:
            score += PENALTY_FOREIGN_IDENTIFIER
        hits = [printed for key, printed in window.identifiers.items() if key in profile.contract_numbers]
        if hits:
            score += POINTS_CONTRACT_NUMBER
            evidence.append(f"Vertragsnummer {hits[0]}")
        name_points, name_text, used = _name_points(profile, window)
        foreign: set[str] = set()
        if name_points:
            score += name_points
            evidence.append(name_text)
            foreign = _foreign_names(profile, window, name_points, used, evidence)
            if foreign:
                score += PENALTY_FOREIGN_NAME
                evidence.append("weitere Namen im Adressfeld: " + ", ".join(sorted(foreign)))
                if name_points < POINTS_NAME_FULL_FUZZY:
                    # Same last name, other first name: a relative or a namesake, whatever the ids say.
                    conflicts.append("Vorname auf der Seite passt nicht zum Kontakt")
        if not name_points and window.name_tokens and (has_identifier or hits):
            score += PENALTY_NAME_ABSENT
            evidence.append("Name des Kontakts steht nicht im Adressfeld (nur über eine Nummer gefunden)")
        address_points, address_evidence = _address_points(profile, window)
        score += address_points
        evidence += address_evidence
        placement, property_id, problem, place_points, place_evidence = self._placement(profile, window)
        score += place_points
        evidence += place_evidence
        if not profile.in_period:
            ends = sorted(
                f"{p.contract.start:%d.%m.%Y}–{p.contract.end:%d.%m.%Y}"
                if p.contract.end
                else f"ab {p.contract.start:%d.%m.%Y}"
                for p in profile.out_of_period
            )
            evidence.append(f"kein {self.index.context.validity_text} gültiger Vertrag (" + "; ".join(ends) + ")")
        if profile.contact.archived:
            evidence.append("Kontakt ist archiviert")
        evidence += conflicts
        return Scored(
            profile=profile,
            score=round(score, 2),
            evidence=evidence,
            has_identifier=has_identifier,
            has_contract_number=bool(hits),
            name_points=name_points,
            address_points=address_points,
            conflicts=conflicts,
            placement=placement,
            placement_property=property_id,
            placement_problem=problem,
            foreign_names=frozenset(foreign),
        )

    def _prescore(self, profile: Profile, window: Window) -> float:
        """Cheap exact-only estimate, to fully score only the plausible contacts among many namesakes."""
        points = 0.0
        ids = window.identifiers.keys()
        if not profile.ref_keys.isdisjoint(ids) or not profile.contract_numbers.isdisjoint(ids):
            points += POINTS_IDENTIFIER
        tokens = window.name_tokens
        if profile.last_set and profile.last_set <= tokens:
            points += POINTS_NAME_FULL if profile.first_set <= tokens else POINTS_LAST_NAME
        if profile.company_set and profile.company_set <= tokens:
            points += POINTS_NAME_FULL
        if profile.street in window.street_keys:
            points += POINTS_STREET
        if profile.postal_code in window.postal_codes:
            points += POINTS_POSTAL_CODE
        return points

    def rank(self, window: Window) -> list[Scored]:
        found = self.index.retrieve(window)
        profiles = [self.index.profiles[cid] for cid in sorted(found)]
        if len(profiles) > PRESELECT:
            # Common names (130 "Müller" in a 20,000-contact account): score fully only the best exact-evidence
            # estimates; fuzzy evidence can add at most a few points, far less than the margin between them.
            estimates = sorted(((self._prescore(p, window), p) for p in profiles), key=lambda e: -e[0])
            top = estimates[0][0]
            profiles = [p for _, p in estimates[:PRESELECT]]
            # Ties near the top are all kept (duplicates and namesakes must be seen to be flagged).
            profiles += [p for estimate, p in estimates[PRESELECT:] if estimate >= top - POINTS_LAST_NAME]
        scored = [self.score(p, window) for p in profiles]
        # A candidate needs the page to name it (name, reference id or contract number); sharing the building's
        # address alone would list every resident of the house.
        scored = [
            s
            for s in scored
            if s.score >= MIN_CANDIDATE_SCORE and (s.name_points > 0 or s.has_identifier or s.has_contract_number)
        ]
        scored.sort(key=lambda s: (-s.score, not s.in_period, s.contact_id))
        return scored

    def _is_strong(self, best: Scored, window: Window) -> bool:
        by_identifier = best.has_identifier and (
            best.name_points >= POINTS_LAST_NAME or best.address_points >= POINTS_STREET
        )
        by_name_and_address = best.name_points >= POINTS_NAME_FULL_FUZZY and best.address_points >= POINTS_STREET_FUZZY
        # A company or person named in full with one of its contract numbers (a Postfach instead of the street).
        by_name_and_contract = best.has_contract_number and best.name_points >= POINTS_NAME_FULL_FUZZY
        # "Familie Koch" at the contact's exact street and postal code, and the contact placed in a unit.
        by_household = (
            window.household
            and best.name_points >= POINTS_LAST_NAME
            and best.address_points >= POINTS_STREET + POINTS_POSTAL_CODE
            and best.placement is not None
        )
        return by_identifier or by_name_and_address or by_name_and_contract or by_household

    @staticmethod
    def _weak_evidence_reason(score: float, threshold: float) -> str:
        if score < threshold:
            return f"Beweislage zu schwach ({score:g} Punkte, nötig {threshold:g})"
        # Enough points, but not of a kind that identifies someone on its own.
        return (
            f"Beweislage zu schwach ({score:g} Punkte): weder Name mit Anschrift noch Name mit einer Nummer des"
            " Kontakts bestätigt"
        )

    def _review_reasons(self, ranked: list[Scored], joint: list[Scored], window: Window) -> list[str]:
        best = ranked[0]
        reasons: list[str] = []
        # The other names in the window of a joint letter are explained by the co-addressees: no penalty then.
        score = best.score - (PENALTY_FOREIGN_NAME if joint and best.foreign_names else 0.0)
        if not best.in_period:
            reasons.append(f"bester Kandidat hat keinen {self.index.context.validity_text} gültigen Vertrag")
        if best.name_points < POINTS_LAST_NAME_FUZZY:
            reasons.append("Name des Kandidaten steht nicht auf der Seite (nie automatisch nur über eine Nummer)")
        reasons += self._number_conflicts(ranked)
        if score < self.policy.auto_threshold or not self._is_strong(best, window):
            reasons.append(self._weak_evidence_reason(score, self.policy.auto_threshold))
        if len(ranked) > 1 and best.score - ranked[1].score < self.policy.auto_margin and not joint:
            reasons.append(
                f"kein eindeutiger Treffer: Abstand zum nächsten Kandidaten {best.score - ranked[1].score:g} Punkte"
            )
        duplicates = self.duplicates_of(best.profile)
        if duplicates:
            reasons.append("mögliche Dublette: " + ", ".join(duplicates))
        if best.conflicts:
            reasons.append("widersprüchliche Angaben auf der Seite: " + "; ".join(best.conflicts))
        if best.placement_problem:
            reasons.append(best.placement_problem)
        return reasons

    @staticmethod
    def _number_conflicts(ranked: list[Scored]) -> list[str]:
        """A printed number that belongs to someone other than the person named in the window."""
        by_number = [s for s in ranked if (s.has_identifier or s.has_contract_number) and s.name_points == 0]
        named = [s for s in ranked if s.name_points >= POINTS_NAME_FULL_FUZZY and not s.has_identifier]
        if not by_number or not named:
            return []
        owner, addressee = _display_name(by_number[0].profile.contact), _display_name(named[0].profile.contact)
        return [f"die Nummer auf der Seite gehört zu {owner}, im Adressfeld steht aber {addressee}"]

    def joint_addressees(self, ranked: list[Scored], window: Window) -> list[Scored]:
        """The other addressees of a letter to several co-owners of one unit ("Eheleute Julia und Lukas Franke").

        Such a letter names every close candidate in full and all of them own the same unit: whichever of them
        gets the part, it reaches an addressee of that unit, so the closeness is no reason for review. Any doubt
        (a candidate not named in full, another unit, no contract at the letter date, contradictions) leaves the
        ordinary margin rule in force. Returns the co-addressees, or an empty list.
        """
        best = ranked[0]
        close = [s for s in ranked[1:] if best.score - s.score < self.policy.auto_margin]
        # Not for a household named by its family name only ("Familie Koch", "Eheleute Koch"): when two Kochs own
        # the unit, each may get a letter of their own, and the page does not say whose this is (layout I).
        if not close or best.placement is None or not window.joint_address:
            return []
        group = (best, *close)
        names = {t for s in group for t in (*s.profile.first, *s.profile.last)}
        for other in group:
            if (
                other.name_points < POINTS_NAME_FULL_FUZZY
                or other.conflicts
                or not other.in_period
                or other.placement is None
                or other.placement.unit_id != best.placement.unit_id
                or not all(any(fuzzy_token_equal(t, n) for n in names) for t in other.foreign_names)
            ):
                return []
        return close

    def duplicates_of(self, profile: Profile) -> list[str]:
        """Contacts of the whole account that are probably the same person (same name; same address or unit).

        Searched account-wide in every scope: a duplicate whose contract lies in another property (or outside the
        letter's groups) is still the same person, and staff must see it before anything is released.
        """
        account = self.index.account
        own_units = account.units_of.get(profile.contact.contact_id, frozenset())
        return sorted(
            cid
            for cid in account.by_name_key.get(profile.name_key, ())
            if cid != profile.contact.contact_id
            and (account.address_keys[cid] == profile.address_key or account.units_of.get(cid, frozenset()) & own_units)
        )

    def note_document(self, parts: list[SplitPart]) -> None:
        """Leave out lines printed on the first page of most letters of a document (letterhead, the manager).

        Such a line names no single letter's property, even when it names one of the account's properties.
        """
        counts: Counter[str] = Counter()
        for part in parts:
            counts.update({fold(_SPACES.sub(" ", line).strip()) for line in part.context_lines or ()})
        least = max(BOILERPLATE_MIN_PARTS, (len(parts) + 1) // 2)
        self._boilerplate = frozenset(line for line, n in counts.items() if n >= least)

    def assign(self, part: SplitPart) -> PartAssignment:
        window = parse_window(part)  # once per part: ranking, duplicates and the joint-letter rule share it
        window.context_cells = context_cells(part, self._boilerplate)
        ranked = self.rank(window)
        if ranked:
            # A probable duplicate must be shown for review even if the page does not name it.
            shown = {s.contact_id for s in ranked}
            missing = [d for d in self.duplicates_of(ranked[0].profile) if d not in shown]
            if missing:
                ranked = [ranked[0], *(self.score(self.index.profile_of(d), window) for d in missing), *ranked[1:]]
        candidates = [
            Candidate(
                contact_id=s.contact_id,
                score=s.score,
                property_id=s.placement_property,
                unit_id=s.placement.unit_id if s.placement else None,
                evidence=s.evidence,
            )
            for s in ranked[:MAX_CANDIDATES]
        ]
        if not ranked:
            return PartAssignment(
                part_id=part.part_id,
                status=AssignmentStatus.UNMATCHED,
                evidence=["kein Kontakt im Empfängerkreis passt zu Adressfeld und Kennungen"],
            )
        joint = self.joint_addressees(ranked, window)
        reasons = self._review_reasons(ranked, joint, window)
        best = ranked[0]
        if reasons:
            return PartAssignment(
                part_id=part.part_id,
                status=AssignmentStatus.NEEDS_REVIEW,
                score=best.score,
                evidence=reasons,
                candidates=candidates,
            )
        assert best.placement is not None
        evidence = list(best.evidence)
        if joint:
            names = ", ".join(_display_name(s.profile.contact) for s in joint)
            evidence.append(f"gemeinsam adressiert mit {names} (Miteigentum derselben Einheit)")
        return PartAssignment(
            part_id=part.part_id,
            status=AssignmentStatus.ASSIGNED,
            contact_id=best.contact_id,
            property_id=best.placement.property_id,
            unit_id=best.placement.unit_id,
            method=AssignmentMethod.AUTO,
            score=best.score,
            evidence=evidence,
            candidates=candidates,
        )


def _display_name(contact: Contact) -> str:
    return " ".join(x for x in (contact.first_name, contact.last_name) if x) or contact.company or contact.contact_id


def placement_for_contact(
    snapshot: AccountSnapshot, context: LetterContext, contact_id: str, property_id: str | None, unit_id: str | None
) -> tuple[str | None, str | None]:
    """Property and unit for a manual assignment: as given, else from the contact's contracts (if unique).

    In property scope only contracts of the letter's property count; contracts valid at the letter date are
    preferred, the role filter is not applied (staff may deliberately pick a contact outside the groups).
    """
    if unit_id is not None:
        unit = snapshot.units.get(unit_id)
        return (property_id or (unit.property_id if unit else None)), unit_id
    contracts = [c for c in snapshot.contracts if c.contact_id == contact_id]
    if property_id is not None:
        contracts = [c for c in contracts if c.property_id == property_id]
    elif context.scope is LetterScope.PROPERTY and context.property_id:
        contracts = [c for c in contracts if c.property_id == context.property_id] or contracts
    valid = [c for c in contracts if context.contract_valid(c)] or contracts
    in_roles = [c for c in valid if c.role in context.roles] or valid
    pairs = {(c.property_id, c.unit_id) for c in in_roles}
    if len(pairs) == 1:
        return next(iter(pairs))
    props = {c.property_id for c in in_roles}
    if property_id is not None:
        return property_id, None
    return (next(iter(props)) if len(props) == 1 else None), None
