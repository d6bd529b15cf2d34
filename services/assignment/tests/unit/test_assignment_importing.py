from __future__ import annotations

import json
from pathlib import Path

import pytest

from smartpost_assignment.domain.importing import ImportFormatError, KnownIds, parse_masterdata
from smartpost_shared.contracts.masterdata import ContactUpserted, ContractUpserted, PropertyUpserted, UnitUpserted

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_example_csv_and_json_are_valid_and_ordered() -> None:
    for name in ("masterdata.csv", "masterdata.json"):
        result = parse_masterdata((EXAMPLES / name).read_bytes(), filename=name)
        assert result.ok, result.errors
        kinds = [type(e) for e in result.events]
        assert kinds == sorted(kinds, key=[PropertyUpserted, UnitUpserted, ContactUpserted, ContractUpserted].index)
    csv_result = parse_masterdata((EXAMPLES / "masterdata.csv").read_bytes(), filename="masterdata.csv")
    contract = next(e for e in csv_result.events if isinstance(e, ContractUpserted) and e.contract_id == "V-2")
    assert str(contract.start) == "2021-07-01"  # German date format accepted
    firma = next(e for e in csv_result.events if isinstance(e, ContactUpserted) and e.contact_id == "C-1003")
    assert firma.address.extra_lines == ["z. Hd. Frau Petra Meyer"]


def test_semicolon_csv_in_windows_1252_with_german_words() -> None:
    text = (
        "record_type;property_id;reference;name;unit_id;number;contact_id;last_name;channel_preference;"
        "portal_registered;contract_id;role;start\n"
        "Liegenschaft;P1;WEG-1;WEG Süd;;;;;;;;;\n"
        "Einheit;P1;;;U1;WE 1;;;;;;;\n"
        "Kontakt;;;;;;C1;Müller;postalisch;ja;;;\n"
        "Vertrag;;;;U1;;C1;;;;V1;Eigentümer;01.01.2020\n"
    )
    result = parse_masterdata(text.encode("cp1252"), filename="export.csv")
    assert result.ok, result.errors
    contact = next(e for e in result.events if isinstance(e, ContactUpserted))
    assert (contact.last_name, contact.channel_preference.value, contact.portal_registered) == ("Müller", "post", True)
    contract = next(e for e in result.events if isinstance(e, ContractUpserted))
    assert (contract.property_id, contract.role.value) == ("P1", "owner")


def test_row_errors_are_all_reported_and_nothing_is_returned() -> None:
    records = [
        {"record_type": "property", "property_id": "P1", "reference": "WEG-1", "name": "WEG"},
        {"record_type": "unit", "unit_id": "U1", "property_id": "P-unknown", "number": "1"},
        {"record_type": "contact", "contact_id": "C1", "last_name": "X", "email": "not-an-email"},
        {"record_type": "contact", "contact_id": "C2"},
        {
            "record_type": "contract",
            "contract_id": "V1",
            "contact_id": "C9",
            "unit_id": "U1",
            "role": "owner",
            "start": "2020-01-01",
        },
        {
            "record_type": "contract",
            "contract_id": "V2",
            "contact_id": "C1",
            "unit_id": "U1",
            "role": "landlord",
            "start": "2020-01-01",
        },
        {
            "record_type": "contract",
            "contract_id": "V3",
            "contact_id": "C1",
            "unit_id": "U1",
            "role": "owner",
            "start": "2020-13-01",
        },
        {"record_type": "property", "property_id": "P1", "reference": "WEG-1", "name": "again"},
        {"record_type": "garage"},
    ]
    result = parse_masterdata(json.dumps(records).encode(), filename="x.json")
    assert not result.ok
    assert result.events == []
    messages = {e.row: e.message for e in result.errors}
    assert "unknown property_id" in messages["record 2"]
    assert "email" in messages["record 3"]
    assert "last_name or company" in messages["record 4"]
    assert "unknown contact_id" in messages["record 5"]
    assert "role" in messages["record 6"]
    assert "not a date" in messages["record 7"]
    assert "twice" in messages["record 8"]
    assert "record_type" in messages["record 9"]


def test_references_to_existing_master_data_are_allowed() -> None:
    records = [
        {
            "record_type": "contract",
            "contract_id": "V1",
            "contact_id": "C1",
            "unit_id": "U1",
            "role": "tenant",
            "start": "2020-01-01",
            "end": "2019-01-01",
        }
    ]
    known = KnownIds(properties={"P1"}, units={"U1": "P1"}, contacts={"C1"})
    result = parse_masterdata(json.dumps(records).encode(), filename="x.json", known=known)
    assert [e.message for e in result.errors] == ["end 2019-01-01 is before start 2020-01-01"]
    records[0]["end"] = ""
    assert parse_masterdata(json.dumps(records).encode(), filename="x.json", known=known).ok


@pytest.mark.parametrize(
    ("raw", "name"), [(b"", "x.csv"), (b"a,b\n1,2\n", "x.csv"), (b"{not json", "x.json"), (b'{"people": []}', "x.json")]
)
def test_unreadable_files_are_rejected_as_a_whole(raw: bytes, name: str) -> None:
    with pytest.raises(ImportFormatError):
        parse_masterdata(raw, filename=name)
