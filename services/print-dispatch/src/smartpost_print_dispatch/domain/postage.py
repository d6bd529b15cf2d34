"""Sheets, letter class and cost of a mailpiece.

All prices and limits come from configuration (postage changes every January); the defaults are the Deutsche Post
2025 figures from the domain notes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from smartpost_shared.contracts.letters import EnvelopeFormat, RegisteredMail
from smartpost_shared.contracts.printing import LetterClass


class LetterClassRule(BaseModel):
    """One Deutsche Post product: heaviest weight, envelopes that fit its size limits, price."""

    model_config = ConfigDict(frozen=True)

    letter_class: LetterClass
    max_weight_g: float = Field(gt=0)
    envelopes: tuple[EnvelopeFormat, ...]
    price_cents: int = Field(ge=0)


def _default_classes() -> list[LetterClassRule]:
    dl, c4 = EnvelopeFormat.DL, EnvelopeFormat.C4
    return [
        # Standardbrief 140–235 × 90–125 mm: a DL envelope, not C4 (229 × 324 mm).
        LetterClassRule(letter_class=LetterClass.STANDARD, max_weight_g=20, envelopes=(dl,), price_cents=95),
        LetterClassRule(letter_class=LetterClass.KOMPAKT, max_weight_g=50, envelopes=(dl,), price_cents=110),
        LetterClassRule(letter_class=LetterClass.GROSS, max_weight_g=500, envelopes=(dl, c4), price_cents=180),
        LetterClassRule(letter_class=LetterClass.MAXI, max_weight_g=1000, envelopes=(dl, c4), price_cents=290),
    ]


class PostageConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    classes: list[LetterClassRule] = Field(default_factory=_default_classes)
    # A4 at 80 g/m² weighs 4,99 g.
    sheet_weight_g: float = 5.0
    envelope_weight_g: dict[EnvelopeFormat, float] = Field(
        default_factory=lambda: {EnvelopeFormat.DL: 5.0, EnvelopeFormat.C4: 15.0}
    )
    # A folded DL letter takes about 8 sheets ("C4 for more than 8 sheets", onlinebrief24); beyond that the
    # mailpiece goes into a C4 envelope automatically when ``auto_c4`` is on, else it is reported.
    envelope_max_sheets: dict[EnvelopeFormat, int] = Field(
        default_factory=lambda: {EnvelopeFormat.DL: 8, EnvelopeFormat.C4: 190}
    )
    auto_c4: bool = True
    registered_cents: dict[RegisteredMail, int] = Field(
        default_factory=lambda: {
            RegisteredMail.NONE: 0,
            RegisteredMail.EINWURF: 235,
            RegisteredMail.UEBERGABE: 265,
            RegisteredMail.EIGENHAENDIG: 485,
        }
    )
    print_cents_per_sheet: int = 8
    print_cents_per_page: int = 4
    color_cents_per_page: int = 5
    envelope_cents: dict[EnvelopeFormat, int] = Field(
        default_factory=lambda: {EnvelopeFormat.DL: 3, EnvelopeFormat.C4: 12}
    )

    def max_sheets(self, envelope: EnvelopeFormat) -> int:
        """The most sheets one envelope of this format can carry within the heaviest allowed letter class."""
        heaviest = max((c.max_weight_g for c in self.classes if envelope in c.envelopes), default=0.0)
        by_weight = math.floor((heaviest - self.envelope_weight_g[envelope]) / self.sheet_weight_g)
        return max(0, min(by_weight, self.envelope_max_sheets[envelope]))

    def max_sheets_any_envelope(self, envelope: EnvelopeFormat) -> int:
        if self.auto_c4 and envelope is EnvelopeFormat.DL:
            return max(self.max_sheets(EnvelopeFormat.DL), self.max_sheets(EnvelopeFormat.C4))
        return self.max_sheets(envelope)


class PostageError(ValueError):
    """The mailpiece fits no configured letter class (too many sheets for the envelope)."""


@dataclass(frozen=True)
class Postage:
    sheets: int
    printed_pages: int
    envelope: EnvelopeFormat
    weight_g: float
    letter_class: LetterClass
    postage_cents: int
    registered_cents: int
    print_cents: int

    @property
    def cost_cents(self) -> int:
        return self.postage_cents + self.registered_cents + self.print_cents


def sheets_for(page_counts: list[int], *, duplex: bool) -> int:
    """Sheets of paper: in duplex every letter starts on a new sheet (odd page counts leave one back blank)."""
    if duplex:
        return sum(math.ceil(p / 2) for p in page_counts)
    return sum(page_counts)


def price(
    config: PostageConfig,
    *,
    sheets: int,
    printed_pages: int,
    envelope: EnvelopeFormat,
    color: bool,
    registered: RegisteredMail,
) -> Postage:
    """Letter class and cost for ``sheets`` sheets; switches DL to C4 when DL is too small and ``auto_c4`` is on."""
    if sheets < 1:
        raise PostageError("a mailpiece needs at least one sheet")
    chosen = envelope
    if sheets > config.envelope_max_sheets[envelope]:
        if envelope is EnvelopeFormat.DL and config.auto_c4:
            chosen = EnvelopeFormat.C4
        else:
            raise PostageError(
                f"{sheets} sheets do not fit a {envelope.value} envelope (max {config.envelope_max_sheets[envelope]})"
            )
    if sheets > config.envelope_max_sheets[chosen]:
        raise PostageError(
            f"{sheets} sheets do not fit a {chosen.value} envelope (max {config.envelope_max_sheets[chosen]})"
        )
    weight = sheets * config.sheet_weight_g + config.envelope_weight_g[chosen]
    for rule in sorted(config.classes, key=lambda c: c.max_weight_g):
        if chosen in rule.envelopes and weight <= rule.max_weight_g:
            print_cents = (
                sheets * config.print_cents_per_sheet
                + printed_pages * config.print_cents_per_page
                + (printed_pages * config.color_cents_per_page if color else 0)
                + config.envelope_cents[chosen]
            )
            return Postage(
                sheets=sheets,
                printed_pages=printed_pages,
                envelope=chosen,
                weight_g=weight,
                letter_class=rule.letter_class,
                postage_cents=rule.price_cents,
                registered_cents=config.registered_cents[registered],
                print_cents=print_cents,
            )
    raise PostageError(f"{sheets} sheets ({weight:.0f} g) exceed every letter class for {chosen.value}")
