from __future__ import annotations

from datetime import date

import pytest

from smartpost_print_dispatch.domain.address import (
    AddressError,
    AddressMatch,
    compare_address,
    validate_postal_lines,
)
from smartpost_print_dispatch.domain.lifecycle import UnknownProviderStatusError, can_move, map_provider_status
from smartpost_print_dispatch.domain.planning import OversizeError, mailpiece_id, plan_mailpieces
from smartpost_print_dispatch.domain.postage import PostageConfig, PostageError, price, sheets_for
from smartpost_print_dispatch.domain.selection import (
    RecipientFacts,
    add_working_days,
    easter_sunday,
    select_items,
)
from smartpost_shared.contracts.letters import EnvelopeFormat, RecipientFilter, RegisteredMail, ReleasedItem
from smartpost_shared.contracts.printing import LetterClass
from smartpost_shared.contracts.printing import MailpieceStatus as S

CONFIG = PostageConfig()


def item(n: int, contact: str, pages: int = 2) -> ReleasedItem:
    return ReleasedItem(
        item_id=f"i{n}", document_id="d", part_id=f"p{n}", contact_id=contact, storage_key=f"k{n}", page_count=pages
    )


def klass(sheets: int, envelope: EnvelopeFormat = EnvelopeFormat.DL) -> tuple[LetterClass, EnvelopeFormat]:
    p = price(
        CONFIG, sheets=sheets, printed_pages=sheets, envelope=envelope, color=False, registered=RegisteredMail.NONE
    )
    return p.letter_class, p.envelope


@pytest.mark.parametrize(
    ("sheets", "expected"),
    [
        (1, (LetterClass.STANDARD, EnvelopeFormat.DL)),
        (3, (LetterClass.STANDARD, EnvelopeFormat.DL)),
        (4, (LetterClass.KOMPAKT, EnvelopeFormat.DL)),
        (8, (LetterClass.KOMPAKT, EnvelopeFormat.DL)),
        (9, (LetterClass.GROSS, EnvelopeFormat.C4)),  # DL holds 8 sheets: switched to C4
        (97, (LetterClass.GROSS, EnvelopeFormat.C4)),
        (98, (LetterClass.MAXI, EnvelopeFormat.C4)),
        (120, (LetterClass.MAXI, EnvelopeFormat.C4)),
    ],
)
def test_letter_class_from_sheets_and_envelope(sheets, expected):
    assert klass(sheets) == expected


def test_c4_is_never_a_standard_letter():
    assert klass(1, EnvelopeFormat.C4) == (LetterClass.GROSS, EnvelopeFormat.C4)


def test_beyond_maxi_is_an_error_and_capacity_matches():
    assert CONFIG.max_sheets(EnvelopeFormat.C4) == 190
    with pytest.raises(PostageError):
        klass(191)
    strict = PostageConfig(auto_c4=False)
    with pytest.raises(PostageError):
        price(
            strict, sheets=9, printed_pages=9, envelope=EnvelopeFormat.DL, color=False, registered=RegisteredMail.NONE
        )


def test_cost_adds_registered_colour_and_print_prices_from_config():
    config = PostageConfig(print_cents_per_sheet=10, print_cents_per_page=2, color_cents_per_page=5)
    p = price(
        config, sheets=2, printed_pages=4, envelope=EnvelopeFormat.DL, color=True, registered=RegisteredMail.EINWURF
    )
    assert p.letter_class is LetterClass.STANDARD
    assert p.postage_cents == 95
    assert p.registered_cents == 235
    assert p.print_cents == 2 * 10 + 4 * 2 + 4 * 5 + 3
    assert p.cost_cents == 95 + 235 + p.print_cents


def test_sheets_duplex_starts_each_letter_on_new_sheet():
    assert sheets_for([3, 3], duplex=True) == 4
    assert sheets_for([3, 3], duplex=False) == 6
    assert sheets_for([120], duplex=True) == 60


def test_merge_by_contact_id_in_stable_order():
    items = [item(1, "c2"), item(2, "c1"), item(3, "c2"), item(4, "c3"), item(5, "c1")]
    plans = plan_mailpieces("o1", items, one_envelope_per_contact=True, duplex=True, max_sheets=190)
    assert [p.contact_id for p in plans] == ["c2", "c1", "c3"]
    assert [p.item_ids for p in plans] == [("i1", "i3"), ("i2", "i5"), ("i4",)]
    again = plan_mailpieces("o1", list(items), one_envelope_per_contact=True, duplex=True, max_sheets=190)
    assert [p.mailpiece_id for p in again] == [p.mailpiece_id for p in plans]
    assert plans[0].mailpiece_id == mailpiece_id("o1", "c2")
    separate = plan_mailpieces("o1", items, one_envelope_per_contact=False, duplex=True, max_sheets=190)
    assert len(separate) == 5
    assert len({p.mailpiece_id for p in separate}) == 5


def test_120_page_letter_fits_maxi_simplex_and_splits_for_a_50_page_provider():
    big = [item(1, "c1", pages=120)]
    plans = plan_mailpieces(
        "o1",
        big,
        one_envelope_per_contact=True,
        duplex=False,
        max_sheets=CONFIG.max_sheets_any_envelope(EnvelopeFormat.DL),
    )
    assert len(plans) == 1
    assert plans[0].pages == 120
    # Pingen: 50 pages per letter incl. the cover page; duplex pads, so 48 letter pages per envelope.
    split = plan_mailpieces("o1", big, one_envelope_per_contact=True, duplex=True, max_sheets=190, max_pages=50)
    assert [(s.segments[0].first_page, s.segments[-1].last_page) for s in split] == [(1, 48), (49, 96), (97, 120)]
    assert [p.needs_cover for p in split] == [False, True, True]
    assert [p.part_index for p in split] == [1, 2, 3]
    assert len({p.mailpiece_id for p in split}) == 3
    with pytest.raises(OversizeError):
        plan_mailpieces(
            "o1", big, one_envelope_per_contact=True, duplex=True, max_sheets=190, max_pages=50, split_oversize=False
        )


def test_split_prefers_letter_boundaries():
    items = [item(1, "c1", pages=30), item(2, "c1", pages=30)]
    plans = plan_mailpieces("o1", items, one_envelope_per_contact=True, duplex=False, max_sheets=190, max_pages=50)
    assert [p.item_ids for p in plans] == [("i1",), ("i2",)]
    assert not any(p.needs_cover for p in plans)


def test_recipient_filters_and_unknown_contacts_stay_selected():
    facts = {
        "post": RecipientFacts("post", "post", portal_registered=False),
        "online": RecipientFacts("online", "online", portal_registered=True),
    }
    items = [item(1, "post"), item(2, "online"), item(3, "ghost")]
    assert [i.item_id for i in select_items(items, RecipientFilter.ALL, facts, set()).selected] == ["i1", "i2", "i3"]
    pref = select_items(items, RecipientFilter.POST_PREFERENCE, facts, set())
    assert [i.item_id for i in pref.selected] == ["i1", "i3"]
    assert pref.excluded[0].reason == "prefers online delivery"
    assert [i.item_id for i in select_items(items, RecipientFilter.NOT_REGISTERED, facts, set()).selected] == [
        "i1",
        "i3",
    ]
    viewed = select_items(items, RecipientFilter.NOT_VIEWED, facts, {"i1"})
    assert [i.item_id for i in viewed.selected] == ["i2", "i3"]


def test_an_item_the_portal_does_not_show_goes_on_paper_under_every_filter():
    # "online" is registered and prefers online delivery, but the portal hides this letter from them (contract
    # ended, no billing period covering it): paper is the only way it reaches them.
    facts = {"online": RecipientFacts("online", "online", portal_registered=True)}
    items = [item(1, "online"), item(2, "online")]
    for recipient_filter in RecipientFilter:
        chosen = select_items(items, recipient_filter, facts, set(), {"i1"})
        assert "i1" in [i.item_id for i in chosen.selected], recipient_filter
    assert [i.item_id for i in select_items(items, RecipientFilter.NOT_REGISTERED, facts, set(), {"i1"}).selected] == [
        "i1"
    ]


def test_working_days_skip_weekends_and_german_holidays():
    assert easter_sunday(2026) == date(2026, 4, 5)
    # Monday + 5 working days -> the following Tuesday morning (Mon..Fri waited, next working day)
    assert add_working_days(date(2026, 3, 2), 5) == date(2026, 3, 10)
    # Friday + 1 -> Monday waited, Tuesday sends
    assert add_working_days(date(2026, 3, 6), 1) == date(2026, 3, 10)
    # Over Easter 2026: Good Friday 3 April and Easter Monday 6 April are not working days
    assert add_working_days(date(2026, 4, 1), 2, nationwide_holidays=True) == date(2026, 4, 8)
    assert add_working_days(date(2026, 4, 1), 2, nationwide_holidays=False) == date(2026, 4, 6)
    assert add_working_days(date(2026, 3, 2), 1, extra_holidays=frozenset({date(2026, 3, 3)})) == date(2026, 3, 5)


def test_address_rules():
    assert validate_postal_lines(
        ["Max Muster", "", " Hauptstr. 1 ", "10115 Berlin"], country="DE", country_line=None
    ) == ["Max Muster", "Hauptstr. 1", "10115 Berlin"]
    with pytest.raises(AddressError, match="7 lines"):
        validate_postal_lines([f"l{i}" for i in range(6)] + ["10115 Berlin"], country="DE", country_line=None)
    with pytest.raises(AddressError, match="country"):
        validate_postal_lines(["Anna", "Ring 1", "1010 Wien"], country="AT", country_line="ÖSTERREICH")
    assert (
        validate_postal_lines(["Anna", "Ring 1", "1010 Wien", "ÖSTERREICH"], country="AT", country_line="ÖSTERREICH")[
            -1
        ]
        == "ÖSTERREICH"
    )
    with pytest.raises(AddressError, match="postcode"):
        validate_postal_lines(["Anna", "Ring 1", "Berlin"], country="DE", country_line=None)


def test_address_comparison_tolerates_format_not_content():
    expected = ["Herr Max Muster", "Hauptstraße 1", "10115 Berlin"]
    assert compare_address(expected, "Herrn Max Muster\r\nHauptstr. 1\r\nD-10115 Berlin") is AddressMatch.MATCH
    assert compare_address(expected, "c/o Verwaltung\nHerr Max Muster\nHauptstraße 1\n10115 Berlin") is (
        AddressMatch.MATCH
    )
    assert compare_address(expected, "Herr Max Muster\nNebenweg 9\n10115 Berlin") is AddressMatch.DIFFERENT
    assert compare_address(expected, "  \n") is AddressMatch.EMPTY


def test_life_cycle_moves_forward_only():
    assert map_provider_status("transferring") is S.PRINTING
    assert map_provider_status("undelivered") is S.UNDELIVERABLE
    assert map_provider_status("cancelling") is None
    with pytest.raises(UnknownProviderStatusError):
        map_provider_status("teleported")
    assert can_move(S.SUBMITTED, S.SENT)
    assert not can_move(S.SENT, S.PRINTING)
    assert not can_move(S.DELIVERED, S.CANCELLED)
    assert can_move(S.PRINTING, S.CANCELLED)
    assert can_move(S.ACTION_REQUIRED, S.SUBMITTED)
