# ruff: noqa: E501, C901, PLR0912, TC003, D205 - generator tables and branching scenario code
"""Layouts I and J: two more ERP exports, written by an author who did not work on the matcher or the splitter, and
measured once, untuned (``accuracy.py --layouts --only I`` / ``--only J``; not in the default run).

They were designed from what real German property-management exports look like (DOMUS/Haufe-like cover letter plus
"Einzelabrechnung", WODIS/GES-like legacy line-printer output), without reading the splitter's or the matcher's
source, and written down here before the first run.

Letters, recipients, traps and truth come unchanged from ``layouts.build_letters`` (same random draws, same trap
rates). What differs from A-H is the window: I and J print it from the contacts themselves (as an ERP prints it from
its own record), so they record, while ``build_letters`` runs, which contacts (and which partner not in master data)
each window was made for (``build_recorded``). The truth is never touched; it still says who the letter is for.
The window style of a contact is decided by a random generator seeded with the contact (an ERP prints the same
person the same way every time), so consecutive letters to the same owner carry identical windows.

Things the ERP knows and SmartPost's master data does not (titles, c/o, a Postfach, "Erbengemeinschaft") are the
realistic gap between an export and an imported read model; the right contact stays determinable from name,
address, property and unit. Left out on purpose: a country line (every contact of the generated account lives in
Germany) and letters to a community of heirs whose members are not in master data.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, field, fields
from datetime import date
from typing import TYPE_CHECKING

import layouts as _layouts
from corpus import LAST_NAMES, Corpus, _person
from layouts import LETTER_DATE, PERIOD, Layout, LetterDoc, Page, _unit_no, build_letters

if TYPE_CHECKING:
    from collections.abc import Callable

    from smartpost_shared.masterdata import Contact


@dataclass
class RecordedDoc(LetterDoc):
    """A letter of ``build_letters`` plus what the window was made from (the ERP's record of the addressee)."""

    role: str = "owner"
    contacts: tuple[Contact, ...] = ()  # () = the addressee is missing from master data (window as built)
    partner: tuple[str, str, str] | None = None  # (salutation, first, last) of a co-addressee not in master data
    held: tuple[date, date] = PERIOD  # the part of the billing period the main addressee held the contract
    variant: list[str] = field(default_factory=list)  # window variants rendered (debugging only)


def build_recorded(
    rng: random.Random,
    corpus: Corpus,
    role: str,
    unit_ids: list[str],
    *,
    period: tuple[date, date] | None,
    order_by_name: bool,
) -> list[LetterDoc]:
    """``layouts.build_letters`` unchanged (same draws, same truth), recording the contacts behind every window."""
    seen: dict[int, tuple[list[Contact], tuple[str, str, str] | None]] = {}
    single, joint = _layouts.single_window, _layouts.joint_window

    def single_recorded(r: random.Random, contact: Contact) -> list[str]:
        window = single(r, contact)
        seen[id(window)] = ([contact], None)
        return window

    def joint_recorded(r: random.Random, contacts: list[Contact], partner: tuple[str, str, str] | None) -> list[str]:
        window = joint(r, contacts, partner)
        seen[id(window)] = (list(contacts), partner)
        return window

    _layouts.single_window, _layouts.joint_window = single_recorded, joint_recorded
    try:
        docs = build_letters(rng, corpus, role, unit_ids, period=period, order_by_name=order_by_name)
    finally:
        _layouts.single_window, _layouts.joint_window = single, joint
    out: list[LetterDoc] = []
    for doc in docs:
        contacts, partner = seen.get(id(doc.window), ([], None))
        missing = doc.truth.category == "missing from master data"
        if missing != (not contacts):
            raise AssertionError(f"window record does not fit the truth: {doc.window} {doc.truth}")
        if contacts and not ({c.contact_id for c in contacts} & doc.truth.contact_ids):
            raise AssertionError(f"truth names none of the window's contacts: {doc.window} {doc.truth}")
        held = PERIOD
        if contacts:
            for c in corpus.snapshot.contracts:
                if c.contact_id == contacts[0].contact_id and c.unit_id == doc.unit.unit_id and c.role == role:
                    held = (max(c.start, PERIOD[0]), min(c.end or PERIOD[1], PERIOD[1]))
                    break
        base = {f.name: getattr(doc, f.name) for f in fields(LetterDoc)}
        out.append(RecordedDoc(**base, role=role, contacts=tuple(contacts), partner=partner, held=held))
    return out


# --- shared helpers ---------------------------------------------------------------------------------------------

HV = "Hausverwaltung Sonnenschein GmbH"
HV_STREET = "Friedrichstraße 123"
HV_CITY = "10117 Berlin"


def _stable(*parts: str) -> random.Random:
    """A generator that gives the same draws for the same record (string seeds are hashed deterministically)."""
    return random.Random("|".join(parts))


def _title(c: Contact) -> str:
    """The academic title the ERP keeps for the person (SmartPost's read model has no title field)."""
    x = _stable("title", c.contact_id, c.first_name, c.last_name, c.street).random()
    return "Dr." if x < 0.08 else "Prof. Dr." if x < 0.10 else "Dipl.-Ing." if x < 0.12 else ""


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def _ascii_upper(text: str) -> str:
    """Legacy line printer: upper case, umlauts as AE/OE/UE/SS, other diacritics dropped (Ş -> S, ł -> L)."""
    for a, b in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("Ä", "Ae"), ("Ö", "Oe"), ("Ü", "Ue"), ("ß", "ss")):
        text = text.replace(a, b)
    text = text.replace("ł", "l").replace("Ł", "L").replace("·", "-").replace("–", "-").replace("€", "EUR")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return text.upper()


def _abbrev_street(street: str) -> str:
    return street.replace("straße", "str.").replace("Straße", "Str.")


def _last_first(c: Contact) -> str:
    """DIN 5007 sorting form of a person: "Müller, Dr. Hans", "Bülow, Anna von"."""
    last, particle = c.last_name, ""
    for p in ("von ", "van der ", "van ", "de "):
        if last.startswith(p):
            particle, last = p.strip(), last[len(p) :]
    return f"{last}, {_join(_title(c), c.first_name, particle)}"


def _people(doc: RecordedDoc) -> list[tuple[str, str, str, str]]:
    """(salutation, title, first, last) of everyone the window names, master data or not."""
    out = [(c.salutation or "Herrn", _title(c), c.first_name, c.last_name) for c in doc.contacts if not c.company]
    if doc.partner:
        sal, first, last = doc.partner
        out.append((sal, "", first, last))
    return out


def _missing_person(doc: RecordedDoc) -> tuple[str, str, str]:
    sal, first, *last = doc.window[0].split()
    return sal, first, " ".join(last)


def _display_last_first(doc: RecordedDoc) -> str:
    if not doc.contacts:
        _, first, last = _missing_person(doc)
        return f"{last}, {first}"
    main = doc.contacts[0]
    if main.company:
        return main.company
    people = _people(doc)
    if len(people) == 1:
        return _last_first(main)
    if len({p[3] for p in people}) == 1:
        return f"{people[0][3]}, {' und '.join(p[2] for p in people)}"
    return " / ".join(f"{p[3]}, {p[2]}" for p in people)


def _held_text(doc: RecordedDoc) -> str:
    return f"{doc.held[0]:%d.%m.%Y} - {doc.held[1]:%d.%m.%Y}"


COST_ITEMS = (
    "Allgemeinstrom", "Wasser/Abwasser", "Niederschlagswasser", "Müllbeseitigung", "Straßenreinigung",
    "Gebäudeversicherung", "Haftpflichtversicherung", "Hausmeisterdienst", "Treppenhausreinigung", "Gartenpflege",
    "Winterdienst", "Wartung Aufzug", "Wartung Rauchwarnmelder", "Schornsteinfeger", "Kabelanschluss",
    "Heizkosten lt. Abrechnung Techem", "Warmwasser lt. Abrechnung Techem", "Verwaltervergütung",
    "Kontoführungsgebühren", "Reparaturen/Instandhaltung", "Zuführung Erhaltungsrücklage", "Grundsteuer",
)  # fmt: skip
KEYS = ("MEA", "Wohnfläche", "Einheiten", "Verbrauch", "Personen", "direkt")


def _money(x: float) -> str:
    s = f"{x:,.2f}"  # 1,234.56
    return s.replace(",", "X").replace(".", ",").replace("X", ".")


def _cost_rows(rng: random.Random, n: int) -> list[str]:
    rows = []
    for _ in range(n):
        item = rng.choice(COST_ITEMS)
        total = rng.uniform(150, 48000)
        share = rng.uniform(0.005, 0.09)
        rows.append(f"{item:<36}{_money(total):>12} €  {rng.choice(KEYS):<11}{_money(total * share):>10} €")
    return rows


# --- layout I ---------------------------------------------------------------------------------------------------

I_RETURN = f"{HV} · Friedrichstr. 123 · {HV_CITY}"
I_FOOTER = (
    f"{HV} · {HV_STREET} · {HV_CITY} · Tel. 030 2345670 · info@hv-sonnenschein.de",
    "Geschäftsführer: Thomas Berger · Amtsgericht Charlottenburg HRB 98765 B · USt-IdNr. DE 274 193 806",
    "Berliner Volksbank · IBAN DE44 1009 0000 2874 5510 03 · BIC BEVODEBBXXX",
)


def _window_i(doc: RecordedDoc) -> tuple[list[str], str]:
    """The window of I (return address line in small print first) and the greeting, from the ERP's record."""
    lines = [I_RETURN]
    if not doc.contacts:  # missing from master data: as built
        doc.variant.append("missing")
        return [*lines, *doc.window], f"{doc.greeting},"
    main = doc.contacts[0]
    street, postal_code = main.street, main.postal_code
    if main.company:
        r = _stable("I-company", main.contact_id, main.company)
        if r.random() < 0.3:
            lines.append("Firma")
            doc.variant.append("Firma line")
        lines.append(main.company)
        x = r.random()
        if x < 0.25:
            sal, first, last = _person(r)
            lines.append(f"z. Hd. {sal} {first} {last}")
            doc.variant.append("z. Hd.")
        elif x < 0.35:
            lines.append("- Geschäftsführung -")
            doc.variant.append("Geschäftsführung")
        if r.random() < 0.25:  # the ERP's postal address is a Postfach (own postal code); master data has the street
            street = f"Postfach {r.randint(10, 99)} {r.randint(10, 99)} {r.randint(10, 99)}"
            postal_code = f"{main.postal_code[:2]}{(int(main.postal_code[2:]) + r.randint(1, 800)) % 1000:03d}"
            doc.variant.append("Postfach")
        elif r.random() < 0.15:
            street = _abbrev_street(street)
        return [*lines, street, f"{postal_code} {main.city}"], "Sehr geehrte Damen und Herren,"
    people = _people(doc)
    r = _stable("I-person", *(c.contact_id for c in doc.contacts), repr(doc.partner), main.first_name, main.last_name)
    if len(people) == 1:
        sal, title, first, last = people[0]
        x = r.random()
        if doc.role == "owner" and x < 0.01:
            lines += ["Erbengemeinschaft nach", f"{first} {last}"]
            greeting = "Sehr geehrte Damen und Herren,"
            doc.variant.append("Erbengemeinschaft")
        else:
            lines.append(_join(sal, title, first, last))
            greeting = f"{'Sehr geehrte Frau' if sal == 'Frau' else 'Sehr geehrter Herr'} {_join(title.replace('Dipl.-Ing.', ''), last)},"
            if title:
                doc.variant.append(f"title {title}")
            if r.random() < 0.03:
                _, cf, cl = _person(r)
                lines.append(f"c/o {cf} {cl}")
                doc.variant.append("c/o")
    else:
        (sa, ta, fa, la), (sb, tb, fb, lb) = people[0], people[1]
        dear = ", ".join(
            f"{'sehr geehrte Frau' if s == 'Frau' else 'sehr geehrter Herr'} {_join(t.replace('Dipl.-Ing.', ''), la_)}"
            for s, t, _, la_ in people
        )
        greeting = dear[0].upper() + dear[1:] + ","
        x = r.random()
        if la == lb and x < 0.3:
            lines.append(f"Familie {la}")
            greeting = f"Sehr geehrte Familie {la},"
            doc.variant.append("Familie")
        elif la == lb and x < 0.6 and {sa, sb} == {"Herrn", "Frau"}:
            husband = fa if sa == "Herrn" else fb
            lines.append(f"Herrn und Frau {husband} {la}")
            doc.variant.append("Herrn und Frau <his first name>")
        elif la == lb and x < 0.8:
            lines.append(f"Eheleute {la}")
            doc.variant.append("Eheleute <last name>")
        else:
            lines += [_join(sa, ta, fa, la), f"und {_join(sb, tb, fb, lb)}"]
            doc.variant.append("two lines with und")
        for s, t, f, la_ in people[2:]:
            lines.append(f"und {_join(s, t, f, la_)}")
    if r.random() < 0.15:
        street = _abbrev_street(street)
    return [*lines, street, f"{postal_code} {main.city}"], greeting


def _layout_i(rng: random.Random, doc: LetterDoc) -> list[Page]:
    """DOMUS/Haufe-like: a cover letter plus a separately numbered "Einzelabrechnung".

    Page 1 (cover letter): letterhead "Hausverwaltung Sonnenschein GmbH"; window (form B) whose first line is the
    return address in small print ("Hausverwaltung Sonnenschein GmbH · Friedrichstr. 123 · 10117 Berlin"), then the
    addressee as the ERP keeps it: academic titles ("Frau Dr. Anna X", "Herrn Prof. Dr.", "Dipl.-Ing."), joint
    letters as "Familie X", "Herrn und Frau <his first name> X", "Eheleute X" (no first names) or two lines
    "Frau A X" / "und Herrn B Y", companies with a "Firma" line, "z. Hd." or "- Geschäftsführung -" and 25 % with a
    Postfach (own postal code) instead of the street, 3 % of persons "c/o <someone>", 1 % of owners
    "Erbengemeinschaft nach" / "<first last>"; streets 15 % abbreviated. Then an info block without colons, values
    aligned: contact person, phone, e-mail, "Eigentümer-Nr." (owners) or "Mieter-Nr." (tenants) with the printed
    number when there is one, "Objekt-Nr./Einh. 1020/007", "Datum 01.03.2025". Subject "Hausgeldabrechnung 2024 und
    Wirtschaftsplan 2025" / "Betriebs- und Heizkostenabrechnung 2024", a second subject line naming the property
    ("WEG Lindenstraße 12, 10115 Berlin" / "Wohnanlage Rosenhof, Lindenstraße 12, 10115 Berlin") and the unit's
    position ("Wohnung 1. OG links"), a greeting built from the window (titles, "Familie"), two paragraphs with the
    WEG's bank account and the manager's contact person by name, signature, "Anlage", and a three-line footer with
    the manager's address, register number, VAT id and bank account. No page number on the cover letter.
    Pages 2..n ("Einzelabrechnung"): no window; header "Einzelabrechnung 2024" (tenants: "Einzelaufstellung
    Betriebskosten 2024"), "Abrechnungszeitraum", the addressee last name first ("Müller, Dr. Hans", "Bülow, Anna
    von", "Müller, Hans und Petra"), "Objekt 1020 <property name>", "Einheit 007 <position>", share of ownership
    (owners) or the tenancy period, a cost table; numbered on their own: "S. 1/2", "S. 2/2" (the numbering restarts
    after the cover letter). A one-page letter is the cover letter with a short summary and no numbering.
    """
    assert isinstance(doc, RecordedDoc)
    p, u = doc.prop, doc.unit
    unit_no = int(_unit_no(u))
    window, greeting = _window_i(doc)
    owner = doc.role == "owner"
    property_line = p.name if p.name.startswith("WEG ") else f"{p.name}, {p.street}"
    info = ["Ihre Ansprechpartnerin    Sabine Berger", "Durchwahl                 030 2345670-12"]
    info.append("E-Mail                    s.berger@hv-sonnenschein.de")
    if doc.identifier:
        info.append(f"{'Eigentümer-Nr.' if owner else 'Mieter-Nr.':<26}{doc.identifier}")
    info += [f"{'Objekt-Nr./Einh.':<26}{p.reference}/{unit_no:03d}", f"{'Datum':<26}{LETTER_DATE:%d.%m.%Y}"]
    if owner:
        subject = ["Hausgeldabrechnung 2024 und Wirtschaftsplan 2025"]
        subject.append(f"{property_line}, {p.postal_code} {p.city} – Wohnung {u.position}")
        text = [
            "anbei erhalten Sie die Einzelabrechnung für das Wirtschaftsjahr 2024 sowie den Einzelwirtschaftsplan 2025.",
            f"Die Abrechnung schließt mit einer {'Nachzahlung' if rng.random() < 0.6 else 'Erstattung'} von {_money(rng.uniform(20, 2400))} € ab.",
            "Eine Nachzahlung überweisen Sie bitte bis zum 15.04.2025 auf das Hausgeldkonto der Gemeinschaft",
            f"IBAN DE{rng.randint(10, 99)} 1005 0000 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)} {rng.randint(10, 99)}.",
            "Über die Abrechnung beschließt die Eigentümerversammlung; die Einladung erhalten Sie gesondert.",
        ]
    else:
        subject = ["Betriebs- und Heizkostenabrechnung 2024"]
        subject.append(f"Mietobjekt {p.street}, {p.postal_code} {p.city}, {u.position}")
        text = [
            "anbei erhalten Sie die Abrechnung der Betriebs- und Heizkosten für den Zeitraum 01.01.2024 bis 31.12.2024.",
            f"Sie schließt mit einem {'Guthaben' if rng.random() < 0.5 else 'Nachzahlungsbetrag'} von {_money(rng.uniform(20, 900))} € ab.",
            "Ab dem 01.05.2025 ändert sich Ihre monatliche Vorauszahlung entsprechend der beigefügten Aufstellung.",
            "Belegeinsicht ist nach Terminvereinbarung in unseren Geschäftsräumen möglich.",
        ]
    text.append("Für Rückfragen steht Ihnen Frau Berger unter der oben genannten Durchwahl gern zur Verfügung.")
    pages = []
    first = [
        "Hausverwaltung Sonnenschein GmbH",
        "WEG- und Mietverwaltung seit 1987",
        *window,
        *info,
        "",
        *subject,
        "",
        greeting,
        *text,
    ]
    if doc.pages == 1:
        first += [f"{'Gesamtkosten':<36}{_money(rng.uniform(20000, 90000)):>12} €", *_cost_rows(rng, 4)]
    first += ["Mit freundlichen Grüßen", HV, "i. A. Sabine Berger"]
    if doc.pages > 1:
        first.append("Anlage: Einzelabrechnung" if owner else "Anlage: Einzelaufstellung")
    first += ["", *I_FOOTER]
    pages.append(Page(tuple(window), "\n".join(first)))
    m = doc.pages - 1
    for k in range(1, m + 1):
        lines = [HV, "Einzelabrechnung 2024" if owner else "Einzelaufstellung Betriebskosten 2024"]
        if k == 1:
            lines += [
                f"{'Abrechnungszeitraum':<22}01.01.2024 - 31.12.2024",
                f"{'Eigentümer' if owner else 'Mieter':<22}{_display_last_first(doc)}",
                f"{'Objekt':<22}{p.reference} {p.name}",
                f"{'Einheit':<22}{unit_no:03d} {u.position}",
            ]
            if owner:
                lines.append(f"{'Miteigentumsanteil':<22}{_money(rng.uniform(5, 90))}/1.000")
            lines.append(f"{'Ihr Zeitraum':<22}{_held_text(doc)}")
            lines += ["", f"{'Kostenart':<36}{'Gesamt':>12}    {'Schlüssel':<11}{'Ihr Anteil':>12}"]
            lines += _cost_rows(rng, 18)
        else:
            lines += _cost_rows(rng, 14)
            lines += [f"{'Summe Ihrer Kosten':<36}{'':>14}  {'':<11}{_money(rng.uniform(900, 9000)):>10} €"]
            lines += [f"{'Ihre Vorauszahlungen':<36}{'':>14}  {'':<11}{_money(rng.uniform(900, 9000)):>10} €"]
            if owner:
                lines += ["Entwicklung der Erhaltungsrücklage", *_cost_rows(rng, 4)]
        lines.append(f"S. {k}/{m}")
        pages.append(Page((), "\n".join(lines)))
    return pages


# --- layout J ---------------------------------------------------------------------------------------------------

J_WIDTH = 27  # the legacy system's field width for name and street lines: longer values are cut
J_RETURN_ZONE = (_ascii_upper(HV), "ABT. WEG-VERWALTUNG", "POSTFACH 10 20 30", "10001 BERLIN")


def _cut(text: str) -> str:
    return _ascii_upper(text)[:J_WIDTH].rstrip()


def _object_key(doc: LetterDoc) -> str:
    """The legacy property key: Wirtschaftseinheit.Haus.Einheit ("1020.01.0007")."""
    return f"{doc.prop.reference}.01.{int(_unit_no(doc.unit)):04d}"


def _window_j(rng: random.Random, doc: RecordedDoc) -> list[str]:
    """The window of J: upper case ASCII, salutation on its own line, fields cut at 27 characters."""
    lines: list[str] = []
    if doc.role == "owner":  # the owners' letters go by registered mail: the endorsement zone carries it
        lines += [
            "EINSCHREIBEN EINWURF",
            f"RR {rng.randint(1000, 9999)} {rng.randint(1000, 9999)} {rng.randint(1, 9)}DE",
        ]
    if not doc.contacts:
        doc.variant.append("missing")
        sal, first, last = _missing_person(doc)
        return [*lines, _cut(sal), _cut(f"{first} {last}"), _cut(doc.window[-2]), _cut(doc.window[-1])]
    main = doc.contacts[0]
    if main.company:
        lines.append(_cut(main.company))
        if len(_ascii_upper(main.company)) > J_WIDTH:
            doc.variant.append("company cut")
        r = _stable("J-company", main.contact_id, main.company)
        if r.random() < 0.3:
            sal, first, last = _person(r)
            lines.append(_cut(f"Z.HD. {sal} {first} {last}"))
            doc.variant.append("z. Hd.")
    else:
        people = _people(doc)
        r = _stable(
            "J-person", *(c.contact_id for c in doc.contacts), repr(doc.partner), main.first_name, main.last_name
        )
        if len(people) == 1:
            sal, title, first, last = people[0]
            lines += [_cut(sal), _cut(_join(title, first, last))]
            if len(_ascii_upper(_join(title, first, last))) > J_WIDTH:
                doc.variant.append("name cut")
        else:
            (sa, ta, fa, la), (sb, tb, fb, lb) = people[0], people[1]
            x = r.random()
            if la == lb and (x < 0.5 or {sa, sb} != {"Herrn", "Frau"}):
                lines += ["EHELEUTE", _cut(f"{fa} u. {fb} {la}")]
                doc.variant.append("EHELEUTE A U. B X")
            elif la == lb:
                husband = fa if sa == "Herrn" else fb
                lines += ["HERRN UND FRAU", _cut(f"{husband} {la}")]
                doc.variant.append("HERRN UND FRAU / his name")
            else:
                lines += [_cut(f"{sa} {_join(ta, fa, la)} u."), _cut(f"{sb} {_join(tb, fb, lb)}")]
                doc.variant.append("two names with u.")
    street = _ascii_upper(main.street).replace("STRASSE", "STR.")
    if len(street) > J_WIDTH:
        doc.variant.append("street cut")
    return [*lines, street[:J_WIDTH].rstrip(), _ascii_upper(f"{main.postal_code} {main.city}")]


def _agenda(doc: LetterDoc) -> tuple[list[str], list[str]]:
    """Agenda and motions of the property's meeting (the same for every owner of the property): they name the
    advisory board candidates and owners who filed motions, people who may well be contacts of the account.
    """
    r = _stable("J-agenda", doc.prop.property_id, doc.prop.name)
    names = [
        _ascii_upper(f"{'Frau' if s == 'Frau' else 'Herr'} {f} {la}") for s, f, la in (_person(r) for _ in range(4))
    ]
    agenda = [
        "TOP 1  EROEFFNUNG, FESTSTELLUNG DER BESCHLUSSFAEHIGKEIT",
        "TOP 2  BERICHT DES VERWALTERS UND DES VERWALTUNGSBEIRATS",
        "TOP 3  BESCHLUSSFASSUNG UEBER DIE NACHSCHUESSE AUS DER JAHRESABRECHNUNG 2024",
        "TOP 4  BESCHLUSSFASSUNG UEBER DIE VORSCHUESSE LT. WIRTSCHAFTSPLAN 2025",
        f"TOP 5  WAHL DES VERWALTUNGSBEIRATS (KANDIDATEN: {names[0]}, {names[1]})",
        f"TOP 6  ANTRAG {names[2]} (WHG {r.randint(1, 20):04d}): ERNEUERUNG DER KLINGELANLAGE",
        "TOP 7  ENTLASTUNG DES VERWALTERS",
        "TOP 8  VERSCHIEDENES",
    ]
    motions = [
        f"ZU TOP 5: {names[0]} IST SEIT 2019 MITGLIED DES BEIRATS; {names[1]} KANDIDIERT ERSTMALS.",
        f"ZU TOP 6: {names[2]} BEANTRAGT DIE ERNEUERUNG DER KLINGEL- UND GEGENSPRECHANLAGE.",
        f"ANGEBOT FA. {_ascii_upper(r.choice(LAST_NAMES))} ELEKTROTECHNIK GMBH VOM 12.01.2025: {_money(r.uniform(8000, 30000))} EUR.",
        f"ZUSTIMMUNG DES BEIRATS ({names[3]}) LIEGT VOR.",
        f"VERSAMMLUNGSORT: GEMEINDESAAL, {_ascii_upper(r.choice(('KIRCHSTR. 4', 'MARKTPLATZ 2', 'SCHULWEG 11')))}, {_ascii_upper(doc.prop.postal_code + ' ' + doc.prop.city)}",
    ]
    return agenda, motions


def _layout_j(rng: random.Random, doc: LetterDoc) -> list[Page]:
    """WODIS/GES-like legacy line-printer export: everything upper case ASCII (umlauts AE/OE/UE/SS, other diacritics
    dropped), fixed-width fields, no prose cover letter.

    Every page starts with the letterhead line "HAUSVERWALTUNG SONNENSCHEIN GMBH   BLATT n" (no total), the manager's
    address and phone, "DATUM 01.03.2025". Page 1 then has the info block BEFORE the window in reading order (it is
    printed top right): "PERS.-KTO K-000123" (a reference id) or "VERTRAG E-0001234" (a contract number) when a
    number is printed, "OBJEKT-SCHL. 1020.01.0007" (Wirtschaftseinheit.Haus.Einheit, the unit zero-padded to 4),
    "WIRTSCH.-EINH. <PROPERTY NAME>". The window (form A): owners' letters go by registered mail, so the
    endorsement zone holds "EINSCHREIBEN EINWURF" and a tracking number "RR 1234 5678 9DE"; then the salutation on
    its own line ("HERRN", "FRAU", "EHELEUTE", "HERRN UND FRAU"), the name ("DR. HANS MUELLER", "HANS U. PETRA
    MUELLER", "<HIS FIRST NAME> MUELLER", "HERRN A X U." / "FRAU B Y"), companies upper case with "Z.HD." 30 %,
    streets with "STR.", name and street cut at 27 characters, "10115 BERLIN". A generic greeting ("SEHR GEEHRTE
    EIGENTUEMERIN, SEHR GEEHRTER EIGENTUEMER,"), then the statement itself: "HAUSGELD-EINZELABRECHNUNG 2024" /
    "BETRIEBSKOSTENABRECHNUNG 2024", the period, the addressee's own period ("IHR ZEITRAUM"), a fixed-width cost
    table, the result, and a footer with register number and bank account.
    Continuation pages: letterhead line, then "MUELLER, HANS" (last name first, no address) and the object key on
    one line. Owners: page 2 is the invitation to the owners' meeting with the agenda (naming other owners as board
    candidates and applicants, the meeting place's address); page 3 of a three-page owner letter is a proxy form
    ("RUECKANTWORT / VOLLMACHT") meant to be sent back in a window envelope: the manager's own address
    ("HAUSVERWALTUNG SONNENSCHEIN GMBH / ABT. WEG-VERWALTUNG / POSTFACH 10 20 30 / 10001 BERLIN") stands in the
    window zone of that page, below it the owner's name and object key as the proxy giver. Tenants: page 2 the
    heating cost sheet, page 3 of a three-page letter a SEPA direct-debit mandate form with the same return window.
    """
    assert isinstance(doc, RecordedDoc)
    p, u = doc.prop, doc.unit
    owner = doc.role == "owner"
    key = _object_key(doc)
    who = _ascii_upper(_display_last_first(doc))
    window = _window_j(rng, doc)

    def head(n: int) -> list[str]:
        return [
            f"{_ascii_upper(HV):<60}BLATT {n}",
            f"{_ascii_upper(HV_STREET)} - {HV_CITY.upper()} - TEL. 030 2345670 - FAX 030 2345679",
            f"DATUM {LETTER_DATE:%d.%m.%Y}",
        ]

    footer = [
        "-" * 78,
        "GESCHAEFTSFUEHRER THOMAS BERGER - AMTSGERICHT CHARLOTTENBURG HRB 98765 B - UST-ID DE274193806",
        "BERLINER VOLKSBANK - IBAN DE44 1009 0000 2874 5510 03 - BIC BEVODEBBXXX",
    ]
    rows = [_ascii_upper(r) for r in _cost_rows(rng, 40)]
    pages = []
    for n in range(1, doc.pages + 1):
        lines = head(n)
        zone: tuple[str, ...] = ()
        if n == 1:
            if doc.identifier:
                label = "PERS.-KTO" if doc.identifier.startswith("K-") else "VERTRAG"
                lines.append(f"{label:<16}{doc.identifier}")
            lines += [f"{'OBJEKT-SCHL.':<16}{key}", f"{'WIRTSCH.-EINH.':<16}{_ascii_upper(p.name)}"]
            lines += window
            zone = tuple(window)
            if owner:
                lines += [
                    "",
                    "HAUSGELD-EINZELABRECHNUNG 2024",
                    "SEHR GEEHRTE EIGENTUEMERIN, SEHR GEEHRTER EIGENTUEMER,",
                ]
            else:
                lines += ["", "BETRIEBSKOSTENABRECHNUNG 2024", "SEHR GEEHRTE MIETERIN, SEHR GEEHRTER MIETER,"]
            lines += [
                "NACHSTEHEND ERHALTEN SIE DIE ABRECHNUNG FUER DEN ZEITRAUM 01.01.2024 - 31.12.2024.",
                f"{'IHR ZEITRAUM':<20}{_held_text(doc)}",
                f"{'LAGE':<20}{_ascii_upper(p.street)}, {_ascii_upper(u.position)}",
                f"{'KOSTENART':<36}{'GESAMT':>12}    {'SCHLUESSEL':<11}{'IHR ANTEIL':>12}",
                *rows[:16],
                f"{'ERGEBNIS':<36}{'':>14}  {'':<11}{_money(rng.uniform(-900, 2400)):>10} EUR",
                "DIESES SCHREIBEN WURDE MASCHINELL ERSTELLT UND IST OHNE UNTERSCHRIFT GUELTIG.",
                *footer,
            ]
        else:
            lines.append(f"{who:<40}{key}")
            last_return_form = n == 3 and doc.pages == 3
            if owner and n == 2:
                agenda, motions = _agenda(doc)
                lines += ["ANLAGE: EINLADUNG ZUR ORDENTLICHEN EIGENTUEMERVERSAMMLUNG 2025"]
                weg = p.name if p.name.startswith("WEG ") else f"WEG {p.name}, {p.street}"
                lines += [f"DER {_ascii_upper(weg)}", "AM DONNERSTAG, 10.04.2025, 18:00 UHR"]
                lines += ["TAGESORDNUNG:", *agenda, "ERLAEUTERUNGEN:", *motions]
            elif not owner and n == 2:
                lines += ["ANLAGE: HEIZ- UND WARMWASSERKOSTEN 2024 (LT. ABRECHNUNG TECHEM)", *rows[16:34]]
            elif last_return_form:
                zone = J_RETURN_ZONE
                lines += [*J_RETURN_ZONE]
                if owner:
                    lines += [
                        "RUECKANTWORT / VOLLMACHT ZUR EIGENTUEMERVERSAMMLUNG AM 10.04.2025",
                        f"{'VOLLMACHTGEBER':<20}{who}",
                        f"{'OBJEKT-SCHL.':<20}{key}",
                        "ICH/WIR BEVOLLMAECHTIGE(N) ____________________ ODER DEN VERWALTER, MICH/UNS IN DER",
                        "VERSAMMLUNG ZU VERTRETEN UND DAS STIMMRECHT AUSZUUEBEN.",
                        "ORT, DATUM ____________________  UNTERSCHRIFT ____________________",
                    ]
                else:
                    lines += [
                        "SEPA-LASTSCHRIFTMANDAT",
                        "GLAEUBIGER-ID DE98ZZZ09999999999",
                        f"{'MANDATSREFERENZ':<20}{key.replace('.', '')}01",
                        f"{'KONTOINHABER':<20}{who}",
                        "IBAN DE__ ____ ____ ____ ____ __      BIC ___________",
                        "ORT, DATUM ____________________  UNTERSCHRIFT ____________________",
                    ]
            else:
                lines += rows[16:40]
        pages.append(Page(zone, "\n".join(lines)))
    return pages


@dataclass(frozen=True)
class RecordingLayout(Layout):
    """A layout that prints the window from the contacts itself, so it needs the letters of ``build_recorded``."""

    build_letters: Callable[..., list[LetterDoc]] = build_recorded


UNTUNED_IJ: tuple[Layout, ...] = (
    RecordingLayout(
        "I cover letter + Einzelabr.",
        "Anschreiben ohne Seitenzahl + Einzelabrechnung S. k/m; Absenderzeile im Fenster, Titel, Familie, Postfach",
        "B",
        _layout_i,
    ),
    RecordingLayout(
        "J legacy upper-case ASCII",
        "GROSSBUCHSTABEN ASCII, BLATT n, OBJEKT-SCHL. 1020.01.0007, Einschreiben-Vermerk, Rueckantwort-Fenster",
        "A",
        _layout_j,
    ),
)
