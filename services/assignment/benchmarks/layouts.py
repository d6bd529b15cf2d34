# ruff: noqa: C901, PLR0912, TC003, D205, PERF401, SIM102, RUF007 - generator tables and branching scenario code
"""ERP-like export layouts, rendered as page text and split with the splitter's own text rules (not flattering).

The older corpus (corpus.py) hands the matcher ready-made evidence (``property_refs=["WEG-0001"]``). Real exports
print property and unit in their own way, and the splitter has to read them off the page first. Here every
letter is rendered as the text an extractor returns for each page (window zone lines + the page text in reading
order), in one of several layouts chosen before tuning (LAYOUTS), then split and read by the splitter's pure
text rules (smartpost_splitter.pages / domain: address window, evidence patterns, segmentation), and the parts
are matched. What is NOT simulated: PDF geometry (text position, extraction order quirks of pdfium); the
splitter's own tests cover the PDF path.

Master data of the account follows one ERP's conventions too ("numeric" property numbers such as 1020, named
properties "Wohnanlage Rosenhof", units "WE 01"), so the page and the read model agree the way they do in
practice: same numbers, other spelling.

Traps per letter (rates fixed before tuning): owners with units in several properties, co-owners with one joint
letter, a joint letter naming a partner who is not in master data ("Eheleute Anna und Bernd X", "Herrn A X und
Frau B Y", "A X u. B Y"), company recipients with "z. Hd.", an owner change inside the billing period (former and
new owner each get the statement), a misprinted number that belongs to another owner, duplicate contacts,
addressees missing from master data, and consecutive letters to the same addressee (the split must not merge
them).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from corpus import FIRST_NAMES, LAST_NAMES, Corpus, Truth, _ocr_error, _person, _translit

if TYPE_CHECKING:
    from collections.abc import Callable

    from smartpost_shared.masterdata import Contact, Property, Unit

LETTER_DATE = date(2025, 3, 1)
PERIOD = (date(2024, 1, 1), date(2024, 12, 31))  # "Abrechnungszeitraum 2024"
SENDER = "Hausverwaltung Sonnenschein GmbH · Postfach 10 20 30 · 10001 Berlin"


@dataclass
class LetterDoc:
    """One letter of a serial-letter export, with who it is for."""

    truth: Truth
    trap: str
    window: list[str]
    prop: Property
    unit: Unit
    identifier: str | None
    greeting: str
    pages: int


@dataclass(frozen=True)
class Page:
    zone: tuple[str, ...]  # the lines inside the DIN window zone (() = no address on this page)
    text: str  # the whole page text in reading order


@dataclass(frozen=True)
class Layout:
    name: str
    description: str
    address_form: str
    render: Callable[[random.Random, LetterDoc], list[Page]]


# --- helpers ------------------------------------------------------------------------------------------------------


def _unit_no(unit: Unit) -> str:
    """The unit's number without its kind ("WE 07" -> "07")."""
    return unit.number.split()[-1]


def _body(rng: random.Random, lines: int) -> list[str]:
    words = [
        "Abrechnung",
        "Hausgeld",
        "Vorauszahlung",
        "Heizkosten",
        "Wasser",
        "Grundsteuer",
        "Versicherung",
        "Hausmeister",
        "Aufzug",
        "Instandhaltungsrücklage",
        "Verwaltervergütung",
        "Müllabfuhr",
        "Straßenreinigung",
        "Allgemeinstrom",
        "Gartenpflege",
        "Betrag",
        "Anteil",
        "Umlageschlüssel",
        "Miteigentumsanteile",
        "Fläche",
        "Guthaben",
        "Nachzahlung",
        "Summe",
        "Gesamtkosten",
    ]
    out = []
    for _ in range(lines):
        n = rng.randint(3, 7)
        row = " ".join(rng.choice(words) for _ in range(n))
        out.append(f"{row} {rng.randint(10, 9999)},{rng.randint(0, 99):02d} €")
    return out


def _greeting_line(doc: LetterDoc) -> str:
    return f"{doc.greeting},"


def _amount(rng: random.Random) -> str:
    return f"{rng.randint(20, 2500)},{rng.randint(0, 99):02d} €"


# --- the layouts (chosen before tuning; see the module docstring) ----------------------------------------------


def _layout_a(rng: random.Random, doc: LetterDoc) -> list[Page]:
    """Info block with colons, reference number, page "Seite x von n"."""
    p, u = doc.prop, doc.unit
    pages = []
    for n in range(1, doc.pages + 1):
        if n == 1:
            info = ["Ihr Ansprechpartner: Frau Berger", "Telefon: 030 1234567"]
            if doc.identifier:
                info.append(f"Kunden-Nr.: {doc.identifier}")
            info += [f"Objekt: {p.reference}", f"Einheit: {u.number}", f"Datum: {LETTER_DATE:%d.%m.%Y}"]
            lines = [SENDER, *doc.window, *info, "Hausgeldabrechnung 2024", _greeting_line(doc)]
            lines += ["anbei erhalten Sie die Abrechnung für das Wirtschaftsjahr 2024.", *_body(rng, 12)]
            lines.append(f"Seite {n} von {doc.pages}")
            pages.append(Page(tuple(doc.window), "\n".join(lines)))
        else:
            lines = [f"Hausgeldabrechnung 2024 – Objekt: {p.reference}", *_body(rng, 30), f"Seite {n} von {doc.pages}"]
            pages.append(Page((), "\n".join(lines)))
    return pages


def _layout_b(rng: random.Random, doc: LetterDoc) -> list[Page]:
    """Labels without colon, "Objekt 1020 / WE 01", subject "für Objekt 1020, Wohnung 01", page "Seite 1/2"."""
    p, u = doc.prop, doc.unit
    pages = []
    for n in range(1, doc.pages + 1):
        if n == 1:
            info = [f"Objekt {p.reference} / {u.number}"]
            if doc.identifier:
                info.append(f"Kundennummer {doc.identifier}")
            info.append(f"Berlin, {LETTER_DATE:%d.%m.%Y}")
            lines = [*doc.window, *info]
            lines += [f"Jahresabrechnung 2024 für Objekt {p.reference}, Wohnung {_unit_no(u)}", _greeting_line(doc)]
            lines += ["wir übersenden Ihnen die Jahresabrechnung.", *_body(rng, 14), f"Seite {n}/{doc.pages}"]
            pages.append(Page(tuple(doc.window), "\n".join(lines)))
        else:
            pages.append(Page((), "\n".join([*_body(rng, 30), f"Seite {n}/{doc.pages}"])))
    return pages


def _layout_c(rng: random.Random, doc: LetterDoc) -> list[Page]:
    """No info block; subject "WEG Parkallee 7, Whg. 3"; mostly single page, no page numbers."""
    p, u = doc.prop, doc.unit
    pages = []
    for n in range(1, doc.pages + 1):
        if n == 1:
            lines = [SENDER, *doc.window, f"{p.city}, den {LETTER_DATE:%d.%m.%Y}"]
            lines.append(f"Jahresabrechnung 2024 – WEG {p.street}, Whg. {int(_unit_no(u))}")
            lines.append(_greeting_line(doc))
            lines += ["beigefügt erhalten Sie Ihre Abrechnung.", *_body(rng, 10)]
            if doc.identifier:
                lines.append(f"Bitte geben Sie bei Rückfragen Ihre Eigentümer-Nr. {doc.identifier} an.")
            lines += ["Mit freundlichen Grüßen", "Ihre Hausverwaltung"]
            pages.append(Page(tuple(doc.window), "\n".join(lines)))
        else:
            pages.append(Page((), "\n".join(["Anlage zur Jahresabrechnung", *_body(rng, 30)])))
    return pages


def _layout_d(rng: random.Random, doc: LetterDoc) -> list[Page]:
    """Info block beside the window on the same text lines, "Liegenschaft <address>", "ME 12", page "- 1 -";
    the address is repeated on every page.
    """
    p, u = doc.prop, doc.unit
    info = [f"Liegenschaft {p.street}, {p.postal_code} {p.city}", f"ME {int(_unit_no(u))}"]
    if doc.identifier:
        info.append(f"Personenkonto {doc.identifier}")
    info.append(f"Datum {LETTER_DATE:%d.%m.%Y}")
    pages = []
    for n in range(1, doc.pages + 1):
        rows = max(len(doc.window), len(info))
        beside = [
            f"{doc.window[i] if i < len(doc.window) else '':<40}{info[i] if i < len(info) else ''}".strip()
            for i in range(rows)
        ]
        lines = [SENDER, *beside]
        if n == 1:
            lines += ["Einzelabrechnung 2024", _greeting_line(doc), *_body(rng, 12)]
        else:
            lines += ["Einzelabrechnung 2024 (Fortsetzung)", *_body(rng, 24)]
        lines.append(f"- {n} -")
        pages.append(Page(tuple(doc.window), "\n".join(lines)))
    return pages


def _layout_e(rng: random.Random, doc: LetterDoc) -> list[Page]:
    """Property and unit only in the body, the property by its name; "Blatt 1 von 2"; contract number."""
    p, u = doc.prop, doc.unit
    pages = []
    for n in range(1, doc.pages + 1):
        if n == 1:
            lines = [*doc.window, f"{LETTER_DATE:%d.%m.%Y}"]
            if doc.identifier:
                lines.append(f"Unser Zeichen {doc.identifier}")
            lines += ["Abrechnung des Wirtschaftsjahres 2024", _greeting_line(doc)]
            lines.append(
                f"für Ihre Wohnung Nr. {int(_unit_no(u))} in der Liegenschaft {p.name} übersenden wir die Abrechnung."
            )
            lines += [*_body(rng, 12), f"Blatt {n} von {doc.pages}"]
            pages.append(Page(tuple(doc.window), "\n".join(lines)))
        else:
            pages.append(Page((), "\n".join([*_body(rng, 30), f"Blatt {n} von {doc.pages}"])))
    return pages


def _layout_f(rng: random.Random, doc: LetterDoc) -> list[Page]:
    """Form A window, letterhead line "WEG <name> · Abrechnung 2024", "Whg.-Nr. 03", "Einheit" in the body,
    page "Seite 1" (no total), the reference at the page bottom.
    """
    p, u = doc.prop, doc.unit
    pages = []
    for n in range(1, doc.pages + 1):
        if n == 1:
            lines = [f"{p.name} · Abrechnung 2024", SENDER, *doc.window, f"Whg.-Nr. {_unit_no(u)}"]
            lines += [f"{p.city}, {LETTER_DATE:%d.%m.%Y}", "Einzelabrechnung", _greeting_line(doc)]
            lines += ["die Einzelabrechnung Ihrer Einheit liegt bei.", *_body(rng, 12)]
            if doc.identifier:
                lines.append(f"Ref. {doc.identifier}")
            lines.append(f"Seite {n}")
            pages.append(Page(tuple(doc.window), "\n".join(lines)))
        else:
            lines = [f"{p.name} · Abrechnung 2024", *_body(rng, 30), f"Seite {n}"]
            pages.append(Page((), "\n".join(lines)))
    return pages


def _layout_g(rng: random.Random, doc: LetterDoc) -> list[Page]:
    """Written last and measured once, untuned: a table header (labels on one line, values on the next), page
    number in the letterhead line, "Guten Tag", the period in the title; continuation pages repeat the table.
    """
    p, u = doc.prop, doc.unit
    head = f"{'Objekt-Nr.':<14}{'Wohnung':<10}{'Kunden-Nr.':<14}Datum"
    values = f"{p.reference:<14}{_unit_no(u):<10}{(doc.identifier or '-'):<14}{LETTER_DATE:%d.%m.%Y}"
    pages = []
    for n in range(1, doc.pages + 1):
        lines = [f"Hausverwaltung Sonnenschein GmbH{'':>30}Seite {n} von {doc.pages}"]
        if n == 1:
            lines += [*doc.window, head, values, "Hausgeldabrechnung 01.01.2024 - 31.12.2024"]
            lines += [
                doc.greeting.replace("Sehr geehrte Frau", "Guten Tag Frau").replace(
                    "Sehr geehrter Herr", "Guten Tag Herr"
                )
                + ","
            ]
            lines += ["nachfolgend erhalten Sie die Abrechnung.", *_body(rng, 12)]
            pages.append(Page(tuple(doc.window), "\n".join(lines)))
        else:
            lines += [head, values, *_body(rng, 28)]
            pages.append(Page((), "\n".join(lines)))
    return pages


def _layout_h(rng: random.Random, doc: LetterDoc) -> list[Page]:
    """Written after the work on G and measured once, untuned: form A window, a one-line reference strip with "|"
    ("Obj.-Nr. 1020 | Whg. 3 | Debitor 4711 | 01.03.2025"), the subject naming "Wirtschaftseinheit" and
    "Nutzeinheit", the page number as "1/2" alone at the bottom, continuation pages headed "Fortsetzung".
    """
    p, u = doc.prop, doc.unit
    strip = [f"Obj.-Nr. {p.reference}", f"Whg. {int(_unit_no(u))}"]
    if doc.identifier:
        strip.append(f"Debitor {doc.identifier}")
    strip.append(f"{LETTER_DATE:%d.%m.%Y}")
    pages = []
    for n in range(1, doc.pages + 1):
        if n == 1:
            lines = ["Hausverwaltung Sonnenschein GmbH", *doc.window, " | ".join(strip)]
            lines.append(f"Hausgeldabrechnung 2024 – Wirtschaftseinheit {p.reference}, Nutzeinheit {_unit_no(u)}")
            lines += [_greeting_line(doc), "mit diesem Schreiben erhalten Sie die Abrechnung.", *_body(rng, 13)]
        else:
            lines = [f"Fortsetzung Hausgeldabrechnung 2024 – {doc.window[-3] if len(doc.window) > 2 else ''}"]
            lines += _body(rng, 30)
        lines.append(f"{n}/{doc.pages}")
        pages.append(Page(tuple(doc.window) if n == 1 else (), "\n".join(lines)))
    return pages


LAYOUTS: tuple[Layout, ...] = (
    Layout("A colon info block", "Kunden-Nr./Objekt/Einheit mit Doppelpunkt, Seite x von n", "B", _layout_a),
    Layout("B no colon, subject", "Objekt 1020 / WE 01, Betreff mit Objekt und Wohnung, Seite x/n", "B", _layout_b),
    Layout("C WEG address subject", "nur Betreff: WEG <Straße>, Whg. n; keine Seitenzahl", "B", _layout_c),
    Layout(
        "D Liegenschaft + ME beside",
        "Infoblock auf gleicher Zeile, Liegenschaft <Adresse>, ME n, - n -, Anschrift auf jeder Seite",
        "B",
        _layout_d,
    ),
    Layout("E body, property name", "Wohnung Nr. n in der Liegenschaft <Name>, Blatt x von n", "B", _layout_e),
    Layout("F form A, header name", "Form A, Kopfzeile mit Objektname, Whg.-Nr., Seite n", "A", _layout_f),
    # Written last in session 3 and measured once untuned (79-90 %); the table reader was then built for it.
    Layout("G table header", "Beschriftungen über den Werten (Tabelle), Seite x von n im Kopf", "B", _layout_g),
)
# Written after the work on G and measured once untuned (README "Assignment on foreign exports": it found one wrong
# automatic assignment, fixed since); not in the default run (--only H).
UNTUNED_LAYOUT = Layout(
    "H reference strip", "Form A, Zeile „Obj.-Nr. … | Whg. … | Debitor …“, Seite „n/m“", "A", _layout_h
)


# --- letters -----------------------------------------------------------------------------------------------------


def _greeting(contacts: list[Contact], partner: tuple[str, str, str] | None) -> str:
    c = contacts[0]
    if c.company:
        return "Sehr geehrte Damen und Herren"
    parts = []
    for x in contacts:
        parts.append(f"{'Sehr geehrte Frau' if x.salutation == 'Frau' else 'Sehr geehrter Herr'} {x.last_name}")
    if partner:
        sal, _, last = partner
        parts.append(f"{'sehr geehrte Frau' if sal == 'Frau' else 'sehr geehrter Herr'} {last}")
    return ", ".join(parts)


def joint_window(rng: random.Random, contacts: list[Contact], partner: tuple[str, str, str] | None) -> list[str]:
    """A window to several people: co-owners in master data, or one of them plus a partner who is not."""
    a = contacts[0]
    if partner is None:
        b_first, b_last, b_sal = contacts[1].first_name, contacts[1].last_name, contacts[1].salutation
    else:
        b_sal, b_first, b_last = partner
    style = rng.random()
    if b_last == a.last_name and style < 0.5:
        names = ["Eheleute", f"{a.first_name} und {b_first} {a.last_name}"]
    elif style < 0.75:
        names = [f"{a.salutation or 'Herrn'} {a.first_name} {a.last_name} und", f"{b_sal or 'Frau'} {b_first} {b_last}"]
    else:
        names = [f"{a.first_name} {a.last_name} u. {b_first} {b_last}"]
    if rng.random() < 0.5:  # the partner first
        if len(names) == 2 and names[0] != "Eheleute":
            names = [names[1].rstrip() + " und", names[0].removesuffix(" und")]
    street = a.street.replace("straße", "str.") if rng.random() < 0.2 else a.street
    return [*names, street, f"{a.postal_code} {a.city}"]


def single_window(rng: random.Random, contact: Contact) -> list[str]:
    lines: list[str] = []
    last = contact.last_name
    if last and rng.random() < 0.08:
        last = _ocr_error(rng, last)
    if contact.company:
        lines.append(contact.company if rng.random() < 0.7 else contact.company.rsplit(" ", 1)[0])
        if rng.random() < 0.4:
            lines.append(f"z. Hd. {rng.choice(['Frau', 'Herrn'])} {rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}")
    else:
        name = f"{contact.first_name} {last}"
        style = rng.random()
        if style < 0.12:
            name = _translit(name)
        elif style < 0.2:
            name = name.upper()
        if rng.random() < 0.5:
            lines += [contact.salutation or "Herrn", name]
        else:
            lines.append(f"{contact.salutation or 'Herrn'} {name}")
    street = contact.street
    if rng.random() < 0.2:
        street = street.replace("straße", "str.").replace("Straße", "Str.")
    return [*lines, street, f"{contact.postal_code} {contact.city}"]


def build_letters(
    rng: random.Random,
    corpus: Corpus,
    role: str,
    unit_ids: list[str],
    *,
    period: tuple[date, date] | None,
    order_by_name: bool,
) -> list[LetterDoc]:
    """The letters of one serial letter: each recipient of each unit (valid in the period, else at the date)."""
    snap = corpus.snapshot
    by_unit: dict[str, list[str]] = defaultdict(list)
    for c in snap.contracts:
        if c.role != role or c.contact_id in corpus.duplicate_of:
            continue
        valid = (c.start <= period[1] and (c.end is None or c.end >= period[0])) if period else c.valid_on(LETTER_DATE)
        if valid:
            by_unit[c.unit_id].append(c.contact_id)
    owner_props: dict[str, set[str]] = defaultdict(set)
    for c in snap.contracts:
        if c.role == role:
            owner_props[c.contact_id].add(c.property_id)
    changed = set(corpus.owner_change) if role == "owner" else set()
    duplicated = set(corpus.duplicate_of.values())
    all_refs = [c.reference_id for c in snap.contacts.values() if c.reference_id]
    docs: list[LetterDoc] = []
    for unit_id in unit_ids:
        ids = [c for c in by_unit.get(unit_id, []) if not snap.contacts[c].archived]
        if not ids:
            continue
        unit = snap.units[unit_id]
        prop = snap.properties[unit.property_id]
        # Former and new owner (change inside the period) get separate letters; co-owners share one 30 % of the time.
        old_new = unit_id in changed and corpus.owners_by_unit[unit_id][0] in ids and len(ids) > 1
        if old_new:
            former = corpus.owners_by_unit[unit_id][0]
            groups = [[c] for c in ids if c == former]
            rest = [c for c in ids if c != former]
            groups += [rest] if len(rest) > 1 and rng.random() < 0.3 else [[c] for c in rest]
        elif len(ids) > 1 and rng.random() < 0.3:
            groups = [ids]
        else:
            groups = [[c] for c in ids]
        for group in groups:
            contacts = [snap.contacts[c] for c in group]
            main = contacts[0]
            partner = None
            trap = "plain"
            if len(group) > 1:
                window = joint_window(rng, contacts, None)
                trap = "co-owners, one letter"
            elif not main.company and role == "owner" and rng.random() < 0.10:
                sal, first, last = _person(rng)
                while first == main.first_name:
                    sal, first, last = _person(rng)
                partner = (sal, first, main.last_name if rng.random() < 0.6 else last)
                co_names = {(snap.contacts[c].first_name, snap.contacts[c].last_name) for c in ids}
                if partner[1:] in co_names:
                    # By chance the co-owner in master data: then it is a letter to both co-owners, not this trap.
                    partner = (sal, f"{first}a" if not first.endswith("a") else f"{first}o", partner[2])
                window = joint_window(rng, contacts, partner)
                trap = "joint, partner not in master data"
            else:
                window = single_window(rng, main)
            if all(c in duplicated for c in group):
                trap = "duplicate contact"  # whatever else the letter is: a duplicate always goes to review
            elif trap == "plain":
                if old_new and group[0] == corpus.owners_by_unit[unit_id][0]:
                    trap = "former owner (change in period)"
                elif old_new:
                    trap = "new owner (change in period)"
                elif unit_id in changed:
                    trap = "owner change outside period"
                elif len(owner_props[group[0]]) > 1:
                    trap = "contact in several properties"
                elif main.company:
                    trap = "company (z. Hd.)" if any("z. Hd." in ln for ln in window) else "company"
            roll = rng.random()
            identifier = None
            if roll < 0.6 and main.reference_id:
                identifier = main.reference_id
            elif roll < 0.7:
                identifier = next(
                    (
                        c.contract_number
                        for c in snap.contracts
                        if c.contact_id == main.contact_id and c.unit_id == unit_id
                    ),
                    None,
                )
            if identifier and trap == "plain" and rng.random() < 0.04:
                # A misprint: the number of another contact of the account.
                identifier = rng.choice(all_refs)
                if identifier != main.reference_id:
                    trap = "misprinted number (another owner's)"
            dups = {d for d, o in corpus.duplicate_of.items() if o in group}
            right = frozenset(group) | dups
            if trap != "duplicate contact":
                # A joint letter may go to any co-addressee, but never to one who exists twice.
                right = frozenset(c for c in group if c not in duplicated)
            truth = Truth(right, prop.property_id, unit_id, trap)
            pages = 1 if rng.random() < 0.3 else rng.choice([2, 2, 2, 3])
            docs.append(LetterDoc(truth, trap, window, prop, unit, identifier, _greeting(contacts, partner), pages))
            if rng.random() < 0.01:
                sal, first, last = _person(rng)
                other = snap.contacts[rng.choice(sorted(snap.contacts))]
                missing_window = [f"{sal} {first} {last}", other.street, f"{other.postal_code} {other.city}"]
                docs.append(
                    LetterDoc(
                        Truth(frozenset(), None, None, "missing from master data"), "missing from master data",
                        missing_window, prop, unit, None, f"Sehr geehrte(r) {sal} {last}", 2,
                    )
                )  # fmt: skip
    if order_by_name:
        # Exports sorted by owner: the letters of one owner (several units, several properties) follow each other.
        docs.sort(key=lambda d: (d.window[-3:], d.unit.unit_id))
    # Consecutive letters to the same window: the split must keep them apart.
    for prev, doc in zip(docs, docs[1:], strict=False):
        if prev.window == doc.window and doc.trap == "plain":
            doc.trap = "same addressee as previous letter"
            doc.truth = Truth(doc.truth.contact_ids, doc.truth.property_id, doc.truth.unit_id, doc.trap)
    return docs


@dataclass
class RenderedLetter:
    docs: list[LetterDoc]
    pages: list[Page]
    starts: list[int] = field(default_factory=list)  # 0-based first page of each doc


def render(rng: random.Random, layout: Layout, docs: list[LetterDoc]) -> RenderedLetter:
    out = RenderedLetter(docs, [])
    for doc in docs:
        out.starts.append(len(out.pages))
        out.pages += layout.render(rng, doc)
    return out
