"""Sheet geometry in millimetres from the top-left corner of an A4 portrait page, and provider address profiles.

Providers disagree about where the address must be and what must stay blank (domain notes (c)), so every provider
gets a validation profile instead of one hard-coded DIN 5008 rectangle.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

A4_WIDTH_MM = 210.0
A4_HEIGHT_MM = 297.0
MM_PER_POINT = 25.4 / 72
A4_TOLERANCE_MM = 2.0


class Rect(BaseModel):
    """A rectangle on the page: ``x``/``y`` of its top-left corner, measured from the page's top-left corner."""

    model_config = ConfigDict(frozen=True)

    x: float = Field(ge=0)
    y: float = Field(ge=0)
    width: float = Field(gt=0)
    height: float = Field(gt=0)
    name: str = ""

    @property
    def right(self) -> float:
        return self.x + self.width

    @property
    def bottom(self) -> float:
        return self.y + self.height

    def shrink(self, margin: float) -> Rect:
        """The rectangle with ``margin`` mm taken off every side (tolerance for anti-aliased edges)."""
        return Rect(
            x=self.x + margin,
            y=self.y + margin,
            width=max(self.width - 2 * margin, 0.1),
            height=max(self.height - 2 * margin, 0.1),
            name=self.name,
        )

    def to_pdf_points(self, page_height_pt: float) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in PDF points with the PDF's bottom-left origin."""
        left = self.x / MM_PER_POINT
        right = self.right / MM_PER_POINT
        top = page_height_pt - self.y / MM_PER_POINT
        bottom = page_height_pt - self.bottom / MM_PER_POINT
        return left, bottom, right, top


class AddressProfile(BaseModel):
    """Where one provider reads the recipient address and which areas of page 1 it needs blank."""

    model_config = ConfigDict(frozen=True)

    name: str
    # The recipient part of the address field (Anschriftzone): the text here must be the postal address.
    address_zone: Rect
    # Return-address line (Rücksendeangabe) above the address, printed on cover pages when a sender is configured.
    sender_zone: Rect | None = None
    # Areas the provider prints over (franking band, postage area, barcodes): must be blank on page 1.
    franking_zones: list[Rect] = Field(default_factory=list)
    restricted_zones: list[Rect] = Field(default_factory=list)
    max_pages_per_mailpiece: int | None = Field(default=None, ge=2)

    def blank_zones(self) -> list[Rect]:
        return [*self.franking_zones, *self.restricted_zones]


# DIN 5008 form B: address field 45 mm from top, 20 mm left, 85 × 45 mm; 17,7 mm sender/notes zone on top.
DIN5008_B = AddressProfile(
    name="din5008_b",
    address_zone=Rect(x=20, y=62.7, width=85, height=27.3, name="anschriftzone"),
    sender_zone=Rect(x=20, y=45, width=85, height=17.7, name="ruecksendeangabe"),
)
# DIN 5008 form A: address field 27 mm from top.
DIN5008_A = AddressProfile(
    name="din5008_a",
    address_zone=Rect(x=20, y=44.7, width=85, height=27.3, name="anschriftzone"),
    sender_zone=Rect(x=20, y=27, width=85, height=17.7, name="ruecksendeangabe"),
)
# Deutsche Post hybrid letter (E-POST style): sender ≤ 8 mm, 13 mm franking band at 53 mm, 24 mm address below.
EPOST = AddressProfile(
    name="epost",
    address_zone=Rect(x=20, y=66, width=85, height=24, name="anschriftzone"),
    sender_zone=Rect(x=20, y=45, width=85, height=8, name="ruecksendeangabe"),
    franking_zones=[Rect(x=20, y=53, width=85, height=13, name="frankierband")],
)
# Pingen: address 22 mm left / 60 mm top, 85,5 × 25,5 mm; postage area 20/40 mm, 89,5 × 20 mm;
# 15 mm at the lower-left corner stays free; at most 50 pages per letter (DE).
PINGEN = AddressProfile(
    name="pingen",
    address_zone=Rect(x=22, y=60, width=85.5, height=25.5, name="anschriftzone"),
    franking_zones=[Rect(x=20, y=40, width=89.5, height=20, name="frankierzone")],
    restricted_zones=[Rect(x=0, y=A4_HEIGHT_MM - 15, width=15, height=15, name="ecke_unten_links")],
    max_pages_per_mailpiece=50,
)

BUILTIN_PROFILES: dict[str, AddressProfile] = {p.name: p for p in (DIN5008_A, DIN5008_B, EPOST, PINGEN)}


def is_a4(width_mm: float, height_mm: float) -> bool:
    return abs(width_mm - A4_WIDTH_MM) <= A4_TOLERANCE_MM and abs(height_mm - A4_HEIGHT_MM) <= A4_TOLERANCE_MM


def is_a4_landscape(width_mm: float, height_mm: float) -> bool:
    return is_a4(height_mm, width_mm)
