"""Realistic German serial-letter PDFs (Serienbriefe) with ground truth, for tests and benchmarks.

The letters imitate an ERP export of a property manager: a letterhead with a logo, the DIN 5008 address field
(sender line in the "Rücksendeangabe" zone, recipient in the "Anschriftzone"), an information block as a separate
column at the right ("Kontakt-Nr.", "Objekt", "Einheit", "Datum": labels and values are two columns), a title,
salutation, paragraphs, a cost table, and a "Seite k von N" footer on every page. Letters are 1-6 pages long.

Fonts are reportlab's bundled Bitstream Vera TrueType fonts, embedded (subset) in the PDF, so output does not
depend on system fonts. Everything expensive (font registration, paragraph wrapping, the logo) is done once and
reused, so 10,000 pages take well under a minute.

Ground truth (which pages belong to which recipient) is returned and also written beside the PDF as
``<path>.truth.json``.

Requires ``reportlab`` (a development dependency of the workspace) and ``Pillow``.
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Sequence

    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen.canvas import Canvas

MM = 72.0 / 25.4
A4_WIDTH = 210 * MM
A4_HEIGHT = 297 * MM

# DIN 5008 address field (domain.md (c)): 85 x 45 mm, 20 mm from the left edge, top at 27 mm (form A) or 45 mm
# (form B); upper 17.7 mm are the "Rücksendeangabe/Vermerkzone", the lower 27.3 mm the "Anschriftzone" (6 lines).
ADDRESS_FIELD_LEFT_MM = 20.0
ADDRESS_FIELD_WIDTH_MM = 85.0
ADDRESS_FIELD_HEIGHT_MM = 45.0
ADDRESS_FIELD_TOP_MM = {"A": 27.0, "B": 45.0}
REMARK_ZONE_HEIGHT_MM = 17.7
# The information block starts at 125 mm from the left; form B puts its top at 50 mm, form A at 32 mm.
INFO_BLOCK_LEFT_MM = 125.0
INFO_BLOCK_VALUE_LEFT_MM = 148.0
INFO_BLOCK_TOP_MM = {"A": 32.0, "B": 50.0}

FONT = "SPVera"
FONT_BOLD = "SPVeraBd"
LOGO_NAME = "smartpost-sample-logo"


@dataclass(frozen=True)
class SampleRecipient:
    contact_id: str  # master-data id, NOT printed
    reference_id: str  # printed as "Kontakt-Nr.: K-004711" in the information block
    address_lines: list[str]  # printed in the address window: name line(s), street, "12345 Stadt", country
    property_ref: str  # printed as "Objekt: WEG-0815 Lindenstraße 5"
    unit_ref: str  # printed as "Einheit: WE 03 (1. OG links)"
    salutation_line: str = "Sehr geehrte Damen und Herren,"


@dataclass(frozen=True)
class SampleLetterTruth:
    """Where one letter ended up in the generated PDF: 1-based, inclusive page numbers (separators excluded)."""

    contact_id: str
    reference_id: str
    first_page: int
    last_page: int


@dataclass
class _Layout:
    form: Literal["A", "B"]
    address_mode: Literal["window", "missing", "outside"]
    sender_line: str
    title: str
    letter_date: date
    pages_total: int = 0
    landscape_pages: list[int] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------------------
# Text material
# --------------------------------------------------------------------------------------------------------------

_PARAGRAPHS = [
    (
        "anbei erhalten Sie die Abrechnung für den oben genannten Zeitraum. Grundlage sind die Beschlüsse der "
        "Eigentümerversammlung, der gültige Wirtschaftsplan sowie die Teilungserklärung in ihrer aktuellen Fassung."
    ),
    (
        "Die Kosten wurden nach den vereinbarten Verteilerschlüsseln umgelegt. Verbrauchsabhängige Kosten für Heizung "
        "und Warmwasser wurden gemäß Heizkostenverordnung zu 70 % nach Verbrauch und zu 30 % nach Wohnfläche verteilt."
    ),
    (
        "Ein sich ergebendes Guthaben wird Ihnen innerhalb von 30 Tagen auf das uns bekannte Konto erstattet. Eine "
        "Nachzahlung bitten wir Sie bis zum Fälligkeitsdatum unter Angabe Ihrer Kontakt-Nummer zu überweisen."
    ),
    (
        "Die Belege können Sie nach vorheriger Terminabsprache in unseren Geschäftsräumen einsehen. Bitte beachten "
        "Sie, dass Einwendungen gegen die Abrechnung innerhalb von zwölf Monaten nach Zugang geltend zu machen sind."
    ),
    (
        "Die Instandhaltungsrücklage wurde im Abrechnungsjahr planmäßig zugeführt. Die Entwicklung der Rücklage sowie "
        "die Vermögensübersicht der Gemeinschaft finden Sie in der Anlage zu diesem Schreiben."
    ),
    (
        "Aufgrund gestiegener Energiepreise empfehlen wir, die monatlichen Vorauszahlungen anzupassen. Der neue Betrag "
        "ist im beigefügten Wirtschaftsplan ausgewiesen und gilt ab dem ersten Monat nach der Beschlussfassung."
    ),
    (
        "Für die Wartung der Aufzugsanlage, die Gartenpflege und den Winterdienst wurden im Berichtszeitraum neue "
        "Verträge abgeschlossen. Die Kosten sind in den Positionen der Kostenaufstellung enthalten."
    ),
    (
        "Haushaltsnahe Dienstleistungen und Handwerkerleistungen nach § 35a EStG sind in einer gesonderten "
        "Bescheinigung ausgewiesen, die Sie Ihrer Einkommensteuererklärung beifügen können."
    ),
    (
        "Sollten Sie Fragen zu einzelnen Positionen haben, steht Ihnen Ihr zuständiger Objektbetreuer gerne zur "
        "Verfügung. Sie erreichen uns montags bis freitags von 9 bis 16 Uhr telefonisch oder jederzeit per E-Mail."
    ),
    (
        "Die Zählerstände wurden durch den Messdienstleister zum Stichtag abgelesen. Geschätzte Werte sind in der "
        "Einzelabrechnung gekennzeichnet; bei Abweichungen teilen Sie uns bitte den tatsächlichen Stand mit."
    ),
    (
        "Bitte beachten Sie, dass die Grundsteuer direkt durch die Gemeinde erhoben wird und daher nicht Bestandteil "
        "dieser Abrechnung ist. Versicherungsprämien wurden nach Miteigentumsanteilen verteilt."
    ),
    (
        "Wir danken Ihnen für die gute Zusammenarbeit im vergangenen Jahr und freuen uns, die Gemeinschaft auch "
        "künftig zuverlässig zu betreuen."
    ),
]
_SECTION_TITLES = [
    "Erläuterungen zur Einzelabrechnung",
    "Entwicklung der Instandhaltungsrücklage",
    "Verteilung der Betriebskosten",
    "Heiz- und Warmwasserkosten",
    "Hinweise zu haushaltsnahen Dienstleistungen",
    "Vermögensbericht",
]
_COST_ITEMS = [
    ("Allgemeinstrom", "MEA"),
    ("Wasser / Abwasser", "Verbrauch"),
    ("Müllabfuhr", "Einheiten"),
    ("Hausmeisterdienst", "MEA"),
    ("Gebäudeversicherung", "MEA"),
    ("Gartenpflege", "Wohnfläche"),
    ("Treppenhausreinigung", "Einheiten"),
    ("Aufzugswartung", "MEA"),
    ("Schornsteinfeger", "Einheiten"),
    ("Winterdienst", "Wohnfläche"),
    ("Verwaltervergütung", "Einheiten"),
    ("Kontoführungsgebühren", "MEA"),
    ("Heizkosten", "Verbrauch"),
    ("Warmwasser", "Verbrauch"),
    ("Rauchwarnmelder-Wartung", "Einheiten"),
]

_FIRST_NAMES_M = [
    "Max",
    "Peter",
    "Thomas",
    "Michael",
    "Andreas",
    "Jürgen",
    "Klaus",
    "Stefan",
    "Jörg",
    "Uwe",
    "Matthias",
    "Sebastian",
    "Lukas",
    "Hans-Georg",
    "Karl-Heinz",
    "Mehmet",
    "Dimitrios",
    "Özgür",
]
_FIRST_NAMES_F = [
    "Anna",
    "Maria",
    "Ursula",
    "Sabine",
    "Monika",
    "Petra",
    "Claudia",
    "Julia",
    "Birgit",
    "Renate",
    "Katharina",
    "Sophie",
    "Anne-Kathrin",
    "Gülsen",
    "Agnieszka",
    "Elisabeth",
    "Jutta",
    "Bärbel",
]
_LAST_NAMES = [
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Schäfer",
    "Koch",
    "Bauer",
    "Richter",
    "Klein",
    "Wolf",
    "Schröder",
    "Neumann",
    "Schwarz",
    "Zimmermann",
    "Braun",
    "Krüger",
    "Hofmann",
    "Hartmann",
    "Lange",
    "Schmitt",
    "Werner",
    "Krause",
    "Meier",
    "Lehmann",
    "Schmid",
    "Schulze",
    "Maier",
    "Köhler",
    "Herrmann",
    "König",
    "Walter",
    "Mayer",
    "Huber",
    "Kaiser",
    "Fuchs",
    "Peters",
    "Lang",
    "Scholz",
    "Möller",
    "Weiß",
    "Jung",
    "Hahn",
    "Schubert",
    "Vogel",
    "Friedrich",
    "Keller",
    "Günther",
    "Frank",
    "Berger",
    "Yılmaz",
    "Kowalski",
    "Papadopoulos",
    "von Stetten",
    "Graf-Lindner",
    "Lüdenscheidt",
]
_STREETS = [
    "Lindenstraße",
    "Hauptstraße",
    "Bahnhofstraße",
    "Gartenweg",
    "Schillerstraße",
    "Goethestraße",
    "Am Mühlbach",
    "Kirchplatz",
    "Birkenallee",
    "Ringstraße",
    "Parkstraße",
    "Rosenweg",
    "Friedrich-Ebert-Straße",
    "Im Winkel",
    "Sonnenhang",
    "Kastanienallee",
    "Uhlandstraße",
    "Marktplatz",
]
_CITIES = [
    ("10115", "Berlin"),
    ("20095", "Hamburg"),
    ("80331", "München"),
    ("50667", "Köln"),
    ("60311", "Frankfurt am Main"),
    ("70173", "Stuttgart"),
    ("40213", "Düsseldorf"),
    ("04109", "Leipzig"),
    ("01067", "Dresden"),
    ("30159", "Hannover"),
    ("90402", "Nürnberg"),
    ("28195", "Bremen"),
    ("44135", "Dortmund"),
    ("45127", "Essen"),
    ("69117", "Heidelberg"),
    ("79098", "Freiburg im Breisgau"),
    ("24103", "Kiel"),
    ("99084", "Erfurt"),
    ("18055", "Rostock"),
    ("93047", "Regensburg"),
]
_FOREIGN = [
    ("1010", "Wien", "ÖSTERREICH"),
    ("8001", "Zürich", "SCHWEIZ"),
    ("6020", "Innsbruck", "ÖSTERREICH"),
    ("1000", "Bruxelles", "BELGIEN"),
    ("2511", "Den Haag", "NIEDERLANDE"),
]
_COMPANIES = [
    "Immobilien Schulte GmbH",
    "Weber & Söhne KG",
    "Grundbesitz Nord GmbH & Co. KG",
    "Stadtwerke Wohnbau eG",
    "Müller Vermögensverwaltung GbR",
]
_POSITIONS = [
    "EG links",
    "EG rechts",
    "1. OG links",
    "1. OG rechts",
    "2. OG links",
    "2. OG rechts",
    "3. OG Mitte",
    "DG",
    "Souterrain",
    "Hinterhaus EG",
]


def demo_recipients(n: int, seed: int = 0) -> list[SampleRecipient]:
    """``n`` varied, realistic recipients; reference ids are unique, neighbours never share an address."""
    rng = random.Random(f"recipients:{seed}")  # noqa: S311 - test data, reproducible by seed
    recipients: list[SampleRecipient] = []
    property_ref = ""
    unit_number = 0
    base_ref = 4711 + (seed % 1000) * 1000
    for i in range(n):
        if i % rng.randint(8, 30) == 0 or not property_ref:
            property_ref = f"WEG-{rng.randint(100, 9999):04d} {rng.choice(_STREETS)} {rng.randint(1, 120)}"
            unit_number = 0
        unit_number += 1
        unit_ref = f"WE {unit_number:02d} ({rng.choice(_POSITIONS)})"
        while True:
            name_lines, salutation = _random_name(rng)
            street = f"{rng.choice(_STREETS)} {rng.randint(1, 199)}{rng.choice(['', '', '', 'a', 'b'])}"
            if rng.random() < 0.06:
                postal_code, city, country = rng.choice(_FOREIGN)
                place_lines = [f"{postal_code} {city}", country]
            else:
                postal_code, city = rng.choice(_CITIES)
                place_lines = [f"{postal_code} {city}"]
            extra = [f"c/o {rng.choice(_LAST_NAMES)}"] if rng.random() < 0.04 else []
            lines = [*name_lines, *extra, street, *place_lines][:6]
            if not recipients or lines != recipients[-1].address_lines:
                break
        recipients.append(
            SampleRecipient(
                contact_id=f"contact-{seed:03d}-{i:06d}",
                reference_id=f"K-{base_ref + i:06d}",
                address_lines=lines,
                property_ref=property_ref,
                unit_ref=unit_ref,
                salutation_line=salutation,
            )
        )
    return recipients


def _random_name(rng: random.Random) -> tuple[list[str], str]:
    kind = rng.random()
    last = rng.choice(_LAST_NAMES)
    if kind < 0.38:
        first = rng.choice(_FIRST_NAMES_M)
        return [f"Herrn {first} {last}"], f"Sehr geehrter Herr {last},"
    if kind < 0.74:
        first = rng.choice(_FIRST_NAMES_F)
        title = rng.choice(["", "", "", "Dr. "])
        return [f"Frau {title}{first} {last}"], f"Sehr geehrte Frau {title}{last},"
    if kind < 0.88:
        first_m, first_f = rng.choice(_FIRST_NAMES_M), rng.choice(_FIRST_NAMES_F)
        if rng.random() < 0.5:
            return [f"Eheleute {first_f} und {first_m} {last}"], f"Sehr geehrte Eheleute {last},"
        return [f"Herrn {first_m} {last}", f"Frau {first_f} {rng.choice(_LAST_NAMES)}"], (
            "Sehr geehrte Damen und Herren,"
        )
    if kind < 0.95:
        company = rng.choice(_COMPANIES)
        contact = f"z. Hd. {rng.choice(['Herrn', 'Frau'])} {last}"
        return [company, contact], "Sehr geehrte Damen und Herren,"
    return [f"Erbengemeinschaft {last}", f"vertreten durch {rng.choice(_FIRST_NAMES_F)} {last}"], (
        "Sehr geehrte Damen und Herren,"
    )


# --------------------------------------------------------------------------------------------------------------
# Cached resources
# --------------------------------------------------------------------------------------------------------------


@cache
def _register_fonts() -> None:
    from reportlab.pdfbase import pdfmetrics  # noqa: PLC0415 - reportlab is only needed by generating code
    from reportlab.pdfbase.ttfonts import TTFont  # noqa: PLC0415

    pdfmetrics.registerFont(TTFont(FONT, "Vera.ttf"))
    pdfmetrics.registerFont(TTFont(FONT_BOLD, "VeraBd.ttf"))


@cache
def _logo() -> ImageReader:
    """Draw a small house logo (PNG) once; reportlab embeds the reused image once per PDF."""
    from PIL import Image, ImageDraw  # noqa: PLC0415
    from reportlab.lib.utils import ImageReader  # noqa: PLC0415

    image = Image.new("RGB", (240, 120), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for x in range(240):
        draw.line([(x, 100), (x, 120)], fill=(20 + x // 4, 70 + x // 8, 140))
    draw.polygon([(20, 60), (60, 20), (100, 60)], fill=(180, 40, 40))
    draw.rectangle([(30, 60), (90, 100)], fill=(230, 200, 150), outline=(90, 60, 30), width=3)
    draw.rectangle([(52, 74), (68, 100)], fill=(90, 60, 30))
    for i in range(6):
        draw.rectangle([(115 + i * 20, 40), (128 + i * 20, 90)], fill=(60 + i * 25, 90, 160 - i * 10))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    buffer.seek(0)
    return ImageReader(buffer)


@cache
def _wrapped(text: str, font: str, size: float, width_mm: float) -> tuple[str, ...]:
    from reportlab.lib.utils import simpleSplit  # noqa: PLC0415

    return tuple(simpleSplit(text, font, size, width_mm * MM))


# --------------------------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------------------------


def _y(top_mm: float, page_height: float = A4_HEIGHT) -> float:
    return page_height - top_mm * MM


def _draw_letterhead(c: Canvas, layout: _Layout) -> None:
    c.drawImage(_logo(), 160 * MM, _y(28), width=34 * MM, height=17 * MM, mask=None)
    c.setFont(FONT_BOLD, 13)
    c.drawString(20 * MM, _y(17), layout.sender_line.split("·")[0].strip())
    c.setFont(FONT, 8)
    c.drawString(20 * MM, _y(21.5), "Wohnungseigentums- und Mietverwaltung seit 1987")


def _draw_address(c: Canvas, layout: _Layout, recipient: SampleRecipient) -> float:
    """Sender line and recipient address; returns the extra vertical offset (mm) the body must move down."""
    field_top = ADDRESS_FIELD_TOP_MM[layout.form]
    c.setFont(FONT, 7)
    # Rücksendeangabe: bottom line of the 17.7 mm remark zone.
    c.drawString(ADDRESS_FIELD_LEFT_MM * MM, _y(field_top + REMARK_ZONE_HEIGHT_MM - 2.5), layout.sender_line)
    if layout.address_mode == "missing":
        return 0.0
    offset = 0.0
    top = field_top + REMARK_ZONE_HEIGHT_MM
    if layout.address_mode == "outside":
        offset = 42.0
        top = field_top + ADDRESS_FIELD_HEIGHT_MM + 8.0  # below the window: invisible in the envelope
    c.setFont(FONT, 10)
    for i, line in enumerate(recipient.address_lines[:6]):
        c.drawString(ADDRESS_FIELD_LEFT_MM * MM, _y(top + 4.0 + i * 4.23), line)
    return offset


def _fit(text: str, font: str, size: float, width_mm: float) -> float:
    from reportlab.pdfbase.pdfmetrics import stringWidth  # noqa: PLC0415

    while size > 6 and stringWidth(text, font, size) > width_mm * MM:
        size -= 0.5
    return size


def _draw_info_block(c: Canvas, layout: _Layout, recipient: SampleRecipient) -> None:
    top = INFO_BLOCK_TOP_MM[layout.form]
    rows = [
        ("Kontakt-Nr.:", recipient.reference_id),
        ("Objekt:", recipient.property_ref),
        ("Einheit:", recipient.unit_ref),
        ("Datum:", layout.letter_date.strftime("%d.%m.%Y")),
        ("Ansprechpartner:", "Frau Lehmann"),
        ("Telefon:", "030 1234567-89"),
    ]
    for i, (label, value) in enumerate(rows):
        y = _y(top + i * 4.5)
        c.setFont(FONT, 8)
        c.drawString(INFO_BLOCK_LEFT_MM * MM, y, label)
        c.setFont(FONT, _fit(value, FONT, 8, 190 - INFO_BLOCK_VALUE_LEFT_MM))
        c.drawString(INFO_BLOCK_VALUE_LEFT_MM * MM, y, value)


def _draw_footer(c: Canvas, page_no: int, pages: int, width: float) -> None:
    c.setFont(FONT, 8)
    c.drawCentredString(width / 2, 14 * MM, f"Seite {page_no} von {pages}")
    c.setFont(FONT, 6.5)
    c.drawString(
        20 * MM,
        8 * MM,
        "Hausverwaltung Muster GmbH · Amtsgericht Berlin HRB 12345 · "
        "IBAN DE02 1001 0010 0123 4567 89 · USt-IdNr. DE123456789",
    )


def _draw_paragraph(c: Canvas, text: str, y_mm: float, *, width_mm: float = 170.0) -> float:
    c.setFont(FONT, 10)
    for line in _wrapped(text, FONT, 10, width_mm):
        c.drawString(20 * MM, _y(y_mm), line)
        y_mm += 4.6
    return y_mm + 3.0


def _draw_table(c: Canvas, rng: random.Random, y_mm: float, rows: int) -> float:
    c.setFont(FONT_BOLD, 9)
    headers = [("Kostenart", 20), ("Gesamtkosten", 85), ("Schlüssel", 118), ("Ihr Anteil", 160)]
    for text, x in headers:
        c.drawString(x * MM, _y(y_mm), text)
    c.setLineWidth(0.5)
    c.line(20 * MM, _y(y_mm + 1.5), 190 * MM, _y(y_mm + 1.5))
    y_mm += 5.5
    c.setFont(FONT, 9)
    total = 0.0
    for item, key in rng.sample(_COST_ITEMS, rows):
        amount = rng.uniform(300, 25_000)
        share = amount * rng.uniform(0.005, 0.08)
        total += share
        c.drawString(20 * MM, _y(y_mm), item)
        c.drawRightString(110 * MM, _y(y_mm), _euro(amount))
        c.drawString(118 * MM, _y(y_mm), key)
        c.drawRightString(188 * MM, _y(y_mm), _euro(share))
        y_mm += 4.6
    c.line(20 * MM, _y(y_mm - 2.8), 190 * MM, _y(y_mm - 2.8))
    c.setFont(FONT_BOLD, 9)
    c.drawString(20 * MM, _y(y_mm + 0.5), "Summe Ihres Anteils")
    c.drawRightString(188 * MM, _y(y_mm + 0.5), _euro(total))
    return y_mm + 8.0


def _euro(value: float) -> str:
    text = f"{value:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".")
    return f"{text} €"


def _draw_first_page(c: Canvas, layout: _Layout, recipient: SampleRecipient, rng: random.Random) -> float:
    _draw_letterhead(c, layout)
    offset = _draw_address(c, layout, recipient)
    _draw_info_block(c, layout, recipient)
    title_top = (103.4 if layout.form == "B" else 85.0) + offset
    c.setFont(FONT_BOLD, 12)
    c.drawString(20 * MM, _y(title_top), layout.title)
    c.setFont(FONT, 10)
    c.drawString(20 * MM, _y(title_top + 5), f"{recipient.property_ref}, {recipient.unit_ref}")
    c.drawString(20 * MM, _y(title_top + 14), recipient.salutation_line)
    y = _draw_paragraph(c, _PARAGRAPHS[0], title_top + 22)
    y = _draw_paragraph(c, rng.choice(_PARAGRAPHS[1:4]), y)
    return _draw_table(c, rng, y + 2, rng.randint(4, 6) if offset == 0 else 3)


def _draw_following_page(c: Canvas, layout: _Layout, recipient: SampleRecipient, rng: random.Random) -> float:
    c.setFont(FONT, 8)
    c.drawString(20 * MM, _y(12), f"{layout.title} · {recipient.property_ref}")
    c.setFont(FONT_BOLD, 11)
    c.drawString(20 * MM, _y(25), rng.choice(_SECTION_TITLES))
    y = 32.0
    for text in rng.sample(_PARAGRAPHS[1:], 3):
        y = _draw_paragraph(c, text, y)
    return _draw_table(c, rng, y + 2, rng.randint(6, 11))


def _draw_closing(c: Canvas, y_mm: float) -> None:
    c.setFont(FONT, 10)
    c.drawString(20 * MM, _y(y_mm + 4), "Mit freundlichen Grüßen")
    c.drawString(20 * MM, _y(y_mm + 18), "Hausverwaltung Muster GmbH")
    c.setFont(FONT, 8)
    c.drawString(20 * MM, _y(y_mm + 22), "Dieses Schreiben wurde maschinell erstellt und ist ohne Unterschrift gültig.")


def _draw_landscape_page(c: Canvas, recipient: SampleRecipient, rng: random.Random) -> None:
    height = A4_WIDTH
    c.setFont(FONT_BOLD, 12)
    c.drawString(20 * MM, _y(20, height), f"Anlage: Heizkostenaufstellung {recipient.unit_ref}")
    c.setFont(FONT, 8)
    months = ["Jan", "Feb", "Mär", "Apr", "Mai", "Jun", "Jul", "Aug", "Sep", "Okt", "Nov", "Dez"]
    for i, month in enumerate(months):
        c.drawString((60 + i * 18) * MM, _y(32, height), month)
    for row in range(12):
        c.drawString(20 * MM, _y(40 + row * 6, height), f"Heizkörper {row + 1}")
        for i in range(12):
            c.drawRightString((72 + i * 18) * MM, _y(40 + row * 6, height), f"{rng.uniform(0, 300):.1f}")


def _draw_separator(c: Canvas, layout: _Layout, recipient: SampleRecipient) -> None:
    c.setFont(FONT_BOLD, 28)
    c.drawString(20 * MM, _y(25), "Trennseite")
    _draw_address(c, _Layout(layout.form, "window", layout.sender_line, layout.title, layout.letter_date), recipient)


def write_serial_letter(  # noqa: PLR0913 - the knobs are the point of a test-data generator
    path: Path,
    recipients: Sequence[SampleRecipient],
    *,
    title: str = "Jahresabrechnung 2025",
    sender_line: str = "Hausverwaltung Muster GmbH · Hauptstr. 1 · 10115 Berlin",
    seed: int = 0,
    pages_per_letter: tuple[int, int] = (1, 6),
    keyword_separators: bool = False,
    blank_separators: bool = False,
    address_form: Literal["A", "B"] = "B",
    address_mode: Literal["window", "missing", "outside"] = "window",
    landscape_every: int = 0,
) -> list[SampleLetterTruth]:
    """Write one PDF of concatenated letters (one per recipient) and return where each letter is.

    ``keyword_separators`` puts a page saying "Trennseite" (with the address) before each letter;
    ``blank_separators`` an empty page. ``address_mode`` "missing" prints no recipient address, "outside" prints
    it below the window. ``landscape_every=n`` turns the last page of every n-th letter landscape (a letter of
    one page gets an extra landscape page). The truth is also written to ``<path>.truth.json``.
    """
    from reportlab.pdfgen.canvas import Canvas  # noqa: PLC0415

    if not recipients:
        raise ValueError("at least one recipient is needed")
    low, high = pages_per_letter
    if not 1 <= low <= high:
        raise ValueError("pages_per_letter must be (min, max) with 1 <= min <= max")
    _register_fonts()
    rng = random.Random(f"letters:{seed}")  # noqa: S311 - test data, reproducible by seed
    layout = _Layout(address_form, address_mode, sender_line, title, date(2026, 3, 2) + timedelta(days=seed % 20))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    c = Canvas(str(path), pagesize=(A4_WIDTH, A4_HEIGHT), pageCompression=1, invariant=1)
    c.setTitle(title)
    c.setAuthor(sender_line.split("·", maxsplit=1)[0].strip())
    c.setCreator("SmartPost sample-letter generator")
    truths: list[SampleLetterTruth] = []
    page = 0
    for index, recipient in enumerate(recipients):
        if keyword_separators:
            _draw_separator(c, layout, recipient)
            c.showPage()
            page += 1
        if blank_separators:
            c.showPage()
            page += 1
        pages = rng.randint(low, high)
        landscape = landscape_every > 0 and (index + 1) % landscape_every == 0
        if landscape and pages == 1:
            pages = 2
        first = page + 1
        for k in range(1, pages + 1):
            if landscape and k == pages:
                c.setPageSize((A4_HEIGHT, A4_WIDTH))
                _draw_landscape_page(c, recipient, rng)
                _draw_footer(c, k, pages, A4_HEIGHT)
                c.showPage()
                c.setPageSize((A4_WIDTH, A4_HEIGHT))
                continue
            y = (
                _draw_first_page(c, layout, recipient, rng)
                if k == 1
                else _draw_following_page(c, layout, recipient, rng)
            )
            if k == pages or (landscape and k == pages - 1):
                _draw_closing(c, min(y, 240.0))
            _draw_footer(c, k, pages, A4_WIDTH)
            c.showPage()
        page += pages
        truths.append(SampleLetterTruth(recipient.contact_id, recipient.reference_id, first, page))
    c.save()
    truth_path(path).write_text(
        json.dumps(
            {
                "pdf": path.name,
                "pages": page,
                "address_form": address_form,
                "address_mode": address_mode,
                "keyword_separators": keyword_separators,
                "blank_separators": blank_separators,
                "letters": [asdict(t) for t in truths],
            },
            ensure_ascii=False,
            indent=1,
        ),
        encoding="utf-8",
    )
    return truths


def truth_path(pdf_path: Path) -> Path:
    """Where :func:`write_serial_letter` writes the ground truth for ``pdf_path``."""
    return pdf_path.with_name(pdf_path.name + ".truth.json")


def read_truth(pdf_path: Path) -> list[SampleLetterTruth]:
    """Read the ground truth written beside ``pdf_path``."""
    data = json.loads(truth_path(pdf_path).read_text(encoding="utf-8"))
    return [SampleLetterTruth(**item) for item in data["letters"]]


__all__ = [
    "SampleLetterTruth",
    "SampleRecipient",
    "demo_recipients",
    "read_truth",
    "truth_path",
    "write_serial_letter",
]
