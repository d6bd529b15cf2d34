# ruff: noqa: E501, C901, PLR0912, FBT003, SIM905 - generator tables and branching scenario code
"""A generated master-data account and split letters with ground truth, with the noise real letters have.

Noise and difficulty (rates per letter unless stated), chosen before tuning and kept fixed:
- reference id printed on 70 % of letters, contract number instead on 10 %, nothing on 20 %;
- property reference on 60 %, unit reference on 50 %;
- spelling: 25 % transliterated/upper-case names ("Mueller", "MÜLLER"), 10 % one OCR error in the last name
  ("Muller", "Schrnidt"), 20 % abbreviated street ("Lindenstr."), 5 % a sender line above the address;
- salutations in one or two lines, "Herr Dr.", "Eheleute", "z. Hd." for companies;
- 10 % of units have two co-owners (separate contacts, same address; 30 % of those get one "Eheleute" letter);
- 6 % of units changed owner (half before the letter date, half after: the letter date decides);
- 8 % of owners own units in two or three properties;
- 2 % of contacts were imported twice (same person, new contact id, no or another reference id, own contract);
- 1 % of letters are addressed to people missing from master data;
- 1 % of contacts are archived.
"""

from __future__ import annotations

import hashlib
import random  # noqa: TC003 - used at runtime by callers
from dataclasses import dataclass, field
from datetime import date

from smartpost_shared.contracts.documents import SplitPart
from smartpost_shared.masterdata import AccountSnapshot, Contact, Contract, Property, Unit

FIRST_NAMES = (
    "Hans Peter Klaus Jürgen Thomas Michael Andreas Stefan Frank Uwe Wolfgang Karl Heinz Dieter Bernd Jörg Ralf "
    "Matthias Markus Sven Tobias Florian Jan Lukas Felix Maximilian Paul Jonas Leon Björn Günter Horst Manfred "
    "Anna Maria Ursula Monika Petra Sabine Susanne Andrea Claudia Birgit Karin Renate Gabriele Heike Nicole "
    "Stefanie Julia Katharina Laura Lea Sophie Marie Hannah Jana Sarah Lisa Jutta Bärbel Gisela Ingrid Helga "
    "Emine Mehmet Ayşe Ali Fatma Piotr Agnieszka Ivan Olga Giuseppe Francesca Dragan Jelena"
).split()
LAST_NAMES = (
    "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer Koch Bauer Richter Klein "
    "Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger Hofmann Hartmann Lange Schmitt Werner Schmitz Krause "
    "Meier Lehmann Schmid Schulze Maier Köhler Herrmann König Walter Mayer Huber Kaiser Fuchs Peters Lang Scholz "
    "Möller Weiß Jung Hahn Schubert Vogel Friedrich Keller Günther Frank Berger Winkler Roth Beck Lorenz Baumann "
    "Franke Albrecht Schuster Simon Ludwig Böhm Winter Kraus Martin Schumacher Krämer Vogt Stein Jäger Otto "
    "Sommer Groß Seidel Heinrich Brandt Haas Schreiber Graf Schulte Dietrich Ziegler Kuhn Kühn Pohl Engel Horn "
    "Busch Bergmann Thomas Voigt Sauer Arnold Wolff Pfeiffer Yilmaz Kaya Demir Şahin Nowak Kowalski Wiśniewski "
    "Popović Jovanović Rossi Russo Ferrari Esposito Ivanov Petrov Smirnov Nguyen Tran Papadopoulos Öztürk "
    "Meyer-Lüdenscheidt Schulze-Wilde Klein-Hartmann von_Bülow Freiherr-von-Stein Dąbrowski Żukowski Große Großmann"
)
LAST_NAMES = tuple(name.replace("_", " ") for name in LAST_NAMES.split())
STREET_STEMS = (
    "Linden Garten Haupt Bahnhof Schul Kirch Berg Wald Wiesen Mühlen Rosen Birken Eichen Buchen Tannen Ahorn "
    "Kastanien Feld Dorf Markt Schloss Park Sonnen Blumen Goethe Schiller Mozart Beethoven Bismarck Kant Heine "
    "Friedrich Wilhelm Luisen Marien Karl Uhland Lessing Herder Fontane Brahms Händel Bach Dürer Gutenberg"
).split()
STREET_KINDS = ("straße", "weg", "allee", "platz", "ring", "gasse")
CITIES = (
    ("10115", "Berlin"), ("10178", "Berlin"), ("12043", "Berlin"), ("14467", "Potsdam"), ("20095", "Hamburg"),
    ("22767", "Hamburg"), ("80331", "München"), ("81667", "München"), ("50667", "Köln"), ("60311", "Frankfurt am Main"),
    ("70173", "Stuttgart"), ("40213", "Düsseldorf"), ("04109", "Leipzig"), ("01067", "Dresden"), ("30159", "Hannover"),
    ("90402", "Nürnberg"), ("28195", "Bremen"), ("45127", "Essen"), ("44135", "Dortmund"), ("53111", "Bonn"),
)  # fmt: skip
POSITIONS = ("EG links", "EG rechts", "1. OG links", "1. OG rechts", "2. OG links", "2. OG rechts", "DG", "Souterrain")
PROPERTY_KINDS = ("Wohnanlage", "Wohnpark", "Residenz", "Quartier")
PROPERTY_ENDS = ("hof", "höhe", "garten", "blick", "tal", "eck")
COMPANY_FORMS = ("GmbH", "GmbH & Co. KG", "KG", "AG", "GbR", "UG (haftungsbeschränkt)")
LETTER_DATE = date(2025, 3, 1)


@dataclass(frozen=True)
class Truth:
    """Who a letter is for: one contact (or one of several for an "Eheleute" letter), property and unit."""

    contact_ids: frozenset[str]
    property_id: str | None
    unit_id: str | None
    category: str


@dataclass
class Corpus:
    snapshot: AccountSnapshot
    duplicate_of: dict[str, str] = field(default_factory=dict)  # duplicate contact id -> original
    owners_by_unit: dict[str, list[str]] = field(default_factory=dict)
    owner_change: dict[str, date] = field(default_factory=dict)  # unit id -> day the new owner took over


def _street(rng: random.Random) -> str:
    return f"{rng.choice(STREET_STEMS)}{rng.choice(STREET_KINDS)} {rng.randint(1, 180)}{rng.choice(['', '', '', 'a', 'b'])}"


def _person(rng: random.Random) -> tuple[str, str, str]:
    first = rng.choice(FIRST_NAMES)
    female = first in FIRST_NAMES[FIRST_NAMES.index("Anna") :] and first not in (
        "Mehmet",
        "Ali",
        "Piotr",
        "Ivan",
        "Giuseppe",
        "Dragan",
    )
    return ("Frau" if female else "Herrn"), first, rng.choice(LAST_NAMES)


def build_account(
    rng: random.Random,
    *,
    account_id: str,
    properties: int,
    units_per_property: int,
    tenant_rate: float = 0.6,
    extra_contacts: int = 0,
    numeric_refs: bool = False,
    named_rate: float = 0.0,
) -> Corpus:
    """A generated account with its contacts, contracts and traps.

    ``numeric_refs`` gives ERP property numbers ("1020") instead of "WEG-0001", ``named_rate`` the share of
    properties with a name of their own ("Wohnanlage Rosenhof") instead of "WEG <street>".
    """
    snap = AccountSnapshot(account_id)
    corpus = Corpus(snap)
    counter = iter(range(1, 10_000_000))

    def new_contact(sal: str, first: str, last: str, company: str, street: str, pc: str, city: str) -> Contact:
        n = next(counter)
        cid = f"{account_id}-c{n}"
        ref = f"K-{n:06d}"
        channel = "post" if rng.random() < 0.3 else "online"
        email = None if rng.random() < 0.05 else f"k{n}@example.org"
        contact = Contact(
            account_id, cid, ref, sal, first, last, company, street, pc, city, "DE", [], email, channel,
            rng.random() < 0.5, rng.random() < 0.01,
        )  # fmt: skip
        snap.contacts[cid] = contact
        return contact

    def add_contract(contact: Contact, unit: Unit, role: str, start: date, end: date | None) -> None:
        n = len(snap.contracts) + 1
        snap.contracts.append(
            Contract(account_id, f"{account_id}-v{n}", contact.contact_id, unit.unit_id, unit.property_id, role, start, end,
                     f"{'E' if role == 'owner' else 'M'}-{n:07d}")
        )  # fmt: skip

    multi_owners: list[Contact] = []
    used_names: set[str] = set()
    for p in range(1, properties + 1):
        pc, city = rng.choice(CITIES)
        street = _street(rng)
        reference = f"{1000 + 10 * p}" if numeric_refs else f"WEG-{p:04d}"
        name = f"WEG {street}"
        if named_rate and rng.random() < named_rate:  # no draw at 0: the default corpus stays as it was
            for _ in range(20):
                candidate = f"{rng.choice(PROPERTY_KINDS)} {rng.choice(STREET_STEMS)}{rng.choice(PROPERTY_ENDS)}"
                if candidate not in used_names:
                    name = candidate
                    break
        used_names.add(name)
        prop = Property(account_id, f"{account_id}-p{p}", reference, name, street, pc, city)
        snap.properties[prop.property_id] = prop
        for u in range(1, units_per_property + 1):
            unit = Unit(account_id, f"{prop.property_id}-u{u}", prop.property_id, f"WE {u:02d}", rng.choice(POSITIONS))
            snap.units[unit.unit_id] = unit
            owners: list[Contact] = []
            if multi_owners and rng.random() < 0.08:
                owners.append(rng.choice(multi_owners))
            elif rng.random() < 0.07:
                last = rng.choice(LAST_NAMES)
                company = f"{last} {rng.choice(['Immobilien', 'Grundbesitz', 'Vermögensverwaltung', 'Wohnbau'])} {rng.choice(COMPANY_FORMS)}"
                owners.append(new_contact("", "", "", company, _street(rng), *rng.choice(CITIES)))
            else:
                lives_here = rng.random() < 0.5
                address = (street, pc, city) if lives_here else (_street(rng), *rng.choice(CITIES))
                sal, first, last = _person(rng)
                owners.append(new_contact(sal, first, last, "", *address))
                if rng.random() < 0.10:  # co-owner: spouse, same last name and address
                    sal2, first2, _ = _person(rng)
                    while first2 == first:
                        sal2, first2, _ = _person(rng)
                    owners.append(new_contact(sal2, first2, last, "", *address))
                if rng.random() < 0.25:
                    multi_owners.append(owners[0])
            change = rng.random()
            if change < 0.06:
                # Owner change: the previous owner's contract ends, the new one starts (before or after the date).
                switch = date(2024, 7, 1) if change < 0.03 else date(2025, 6, 1)
                sal, first, last = _person(rng)
                old = new_contact(sal, first, last, "", _street(rng), *rng.choice(CITIES))
                add_contract(old, unit, "owner", date(2005, 1, 1), date.fromordinal(switch.toordinal() - 1))
                for owner in owners:
                    add_contract(owner, unit, "owner", switch, None)
                corpus.owners_by_unit[unit.unit_id] = [old.contact_id, *(o.contact_id for o in owners)]
                corpus.owner_change[unit.unit_id] = switch
            else:
                for owner in owners:
                    add_contract(owner, unit, "owner", date(rng.randint(1995, 2023), rng.randint(1, 12), 1), None)
                corpus.owners_by_unit[unit.unit_id] = [o.contact_id for o in owners]
            if rng.random() < tenant_rate:
                sal, first, last = _person(rng)
                tenant = new_contact(sal, first, last, "", street, pc, city)
                add_contract(tenant, unit, "tenant", date(rng.randint(2010, 2024), rng.randint(1, 12), 1), None)
    # Duplicates from an interface import: same person again, other contact id, other or no reference id.
    originals = [c for c in list(snap.contacts.values()) if rng.random() < 0.02]
    for original in originals:
        n = next(counter)
        dup = Contact(
            account_id, f"{account_id}-c{n}", None if rng.random() < 0.5 else f"IMP-{n}", original.salutation,
            original.first_name, original.last_name, original.company, original.street, original.postal_code,
            original.city, "DE", [], original.email, original.channel_preference, False, False,
        )  # fmt: skip
        snap.contacts[dup.contact_id] = dup
        corpus.duplicate_of[dup.contact_id] = original.contact_id
        for contract in [c for c in snap.contracts if c.contact_id == original.contact_id]:
            unit = snap.units[contract.unit_id]
            add_contract(dup, unit, contract.role, contract.start, contract.end)
    for _ in range(extra_contacts):  # service providers and others without contracts
        sal, first, last = _person(rng)
        new_contact(sal, first, last, "", _street(rng), *rng.choice(CITIES))
    return corpus


# --- letters -----------------------------------------------------------------------------------------------------

_OCR = (("ü", "u"), ("m", "rn"), ("l", "1"), ("e", "c"), ("n", "ri"), ("ö", "o"), ("i", "l"), ("h", "b"))


def _ocr_error(rng: random.Random, word: str) -> str:
    options = [(a, b) for a, b in _OCR if a in word]
    if options:
        a, b = rng.choice(options)
        i = word.index(a)
        return word[:i] + b + word[i + len(a) :]
    if len(word) > 4:
        i = rng.randrange(1, len(word) - 1)
        return word[:i] + word[i + 1 :]
    return word


def _translit(text: str) -> str:
    return text.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue").replace("ß", "ss").replace("Ü", "Ue")


def window_lines(rng: random.Random, contacts: list[Contact], *, eheleute: bool = False) -> list[str]:
    """The window address as a letter would print it, with realistic variation and noise."""
    main = contacts[0]
    lines: list[str] = []
    if rng.random() < 0.05:
        lines.append("Hausverwaltung Sonnenschein GmbH · Postfach 10 20 30 · 10001 Berlin")
    last = main.last_name
    if last and rng.random() < 0.10:
        last = _ocr_error(rng, last)
    style = rng.random()
    if main.company:
        company = main.company if rng.random() < 0.7 else main.company.rsplit(" ", 1)[0]
        lines.append(company.upper() if style < 0.1 else company)
        if rng.random() < 0.3:
            lines.append(f"z. Hd. Frau {rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}")
    elif eheleute and len(contacts) > 1:
        lines.append("Eheleute")
        lines.append(f"{contacts[0].first_name} und {contacts[1].first_name} {last}")
    else:
        first = main.first_name
        if rng.random() < 0.1:
            first = f"Dr. {first}"
        name = f"{first} {last}"
        if style < 0.15:
            name = _translit(name)
        elif style < 0.25:
            name = name.upper()
        salutation = main.salutation or "Herrn"
        if rng.random() < 0.5:
            lines += [salutation, name]
        else:
            lines.append(f"{salutation} {name}")
    street = main.street
    if rng.random() < 0.2:
        street = street.replace("straße", "str.").replace("Straße", "Str.")
    lines.append(street)
    lines.append(f"{main.postal_code} {main.city}")
    return lines


# Share of letters whose page names no property at all (or in a form the splitter does not pick up). A per-unit
# letter from an ERP (statement, invitation) names its property; the rest name it by number, number and address,
# or address only, as ERPs print it ("Objekt: WEG-0815 Lindenstraße 12" / "Objekt: Lindenstraße 12, 10115 Berlin").
UNNAMED_PROPERTY_RATE = 0.15


def property_naming(roll: float, prop: Property, unnamed_rate: float) -> list[str]:
    """How the page names the letter's property, decided by one random roll in [0, 1)."""
    if roll < unnamed_rate:
        return []
    named = (roll - unnamed_rate) / (1 - unnamed_rate)  # again uniform in [0, 1)
    if named < 0.55:
        return [prop.reference]
    if named < 0.70:
        return [f"{prop.reference} {prop.street}"]
    return [f"{prop.street}, {prop.postal_code} {prop.city}"]


def make_part(
    rng: random.Random,
    corpus: Corpus,
    letter: str,
    index: int,
    contact_ids: list[str],
    unit_id: str,
    *,
    eheleute: bool = False,
    unnamed_rate: float = UNNAMED_PROPERTY_RATE,
) -> SplitPart:
    snap = corpus.snapshot
    contacts = [snap.contacts[c] for c in contact_ids]
    unit = snap.units[unit_id]
    identifiers: list[str] = []
    roll = rng.random()
    if roll < 0.7 and contacts[0].reference_id:
        identifiers.append(contacts[0].reference_id)
    elif roll < 0.8:
        number = next(
            (
                c.contract_number
                for c in snap.contracts
                if c.contact_id == contacts[0].contact_id and c.unit_id == unit_id
            ),
            "",
        )
        if number:
            identifiers.append(number)
    pages = 2 if rng.random() < 0.8 else rng.choice([1, 3, 4])
    return SplitPart(
        part_id=f"{letter}-{index}",
        index=index,
        first_page=index * 4 + 1,
        last_page=index * 4 + pages,
        page_count=pages,
        storage_key=f"{letter}/{index}.pdf",
        sha256=hashlib.sha256(f"{letter}{index}".encode()).hexdigest(),
        size_bytes=1,
        address_lines=window_lines(rng, contacts, eheleute=eheleute),
        identifiers=identifiers,
        property_refs=property_naming(rng.random(), snap.properties[unit.property_id], unnamed_rate),
        unit_refs=[unit.number] if rng.random() < 0.5 else [],
    )


def missing_person_part(rng: random.Random, letter: str, index: int) -> SplitPart:
    sal, first, last = _person(rng)
    pc, city = rng.choice(CITIES)
    return SplitPart(
        part_id=f"{letter}-{index}",
        index=index,
        first_page=index * 4 + 1,
        last_page=index * 4 + 2,
        page_count=2,
        storage_key=f"{letter}/{index}.pdf",
        sha256=hashlib.sha256(f"{letter}{index}".encode()).hexdigest(),
        size_bytes=1,
        address_lines=[f"{sal} {first} {last}", _street(rng), f"{pc} {city}"],
        identifiers=[],
    )
