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
    ("raw", "name"),
    [
        (b"", "x.csv"),
        (b"a,b\n1,2\n", "x.csv"),
        (b"{not json", "x.json"),
        (b'{"people": []}', "x.json"),
        (b"[" * 5000 + b"]" * 5000, "x.json"),  # nested too deeply: RecursionError used to escape as a 500
    ],
)
def test_unreadable_files_are_rejected_as_a_whole(raw: bytes, name: str) -> None:
    with pytest.raises(ImportFormatError):
        parse_masterdata(raw, filename=name)


def _two_accounts_csv() -> bytes:
    return (
        b"account_id;record_type;property_id;reference;name;unit_id;number;contact_id;last_name;role;start\n"
        b"acc-a;property;P1;1020;WEG A;;;;;;\n"
        b"acc-a;unit;P1;;;U1;01;;;;\n"
        b"acc-a;contact;;;;;;C1;Alpha;;\n"
        b"acc-a;contract;P1;;;U1;;C1;;owner;01.01.2020\n"
        b"acc-b;property;P1;2040;WEG B;;;;;;\n"
        b"acc-b;unit;P1;;;U1;01;;;;\n"
        b"acc-b;contact;;;;;;C1;Beta;;\n"
        b"acc-b;contract;P1;;;U1;;C1;;owner;2020-01-01\n"
    )


def test_a_file_with_several_accounts_is_read_per_account_never_mixed() -> None:
    raw = _two_accounts_csv()
    a = parse_masterdata(raw, filename="x.csv", account="acc-a")
    b = parse_masterdata(raw, filename="x.csv", account="acc-b")
    assert a.ok
    assert b.ok
    assert [e.last_name for e in a.events if isinstance(e, ContactUpserted)] == ["Alpha"]
    assert [e.last_name for e in b.events if isinstance(e, ContactUpserted)] == ["Beta"]
    with pytest.raises(ImportFormatError, match=r"several accounts .*account_id.*acc-a, acc-b"):
        parse_masterdata(raw, filename="x.csv")
    with pytest.raises(ImportFormatError, match="no rows for account 'acc-c'"):
        parse_masterdata(raw, filename="x.csv", account="acc-c")
    # An upload scoped to one account refuses a file that also holds another one, naming the column.
    with pytest.raises(ImportFormatError, match="other accounts \\(column 'account_id': acc-b\\)"):
        parse_masterdata(raw, filename="x.csv", account="acc-a", only_account=True)


def test_missing_contract_ids_are_derived_deterministically() -> None:
    raw = _two_accounts_csv()
    first = parse_masterdata(raw, filename="x.csv", account="acc-a")
    again = parse_masterdata(raw, filename="x.csv", account="acc-a")
    (contract,) = [e for e in first.events if isinstance(e, ContractUpserted)]
    assert contract.contract_id.startswith("V-")
    assert contract.contract_id == next(e.contract_id for e in again.events if isinstance(e, ContractUpserted))
    # The same contract written with the other date format ("01.01.2020" vs "2020-01-01") gets the same id.
    (other,) = [
        e for e in parse_masterdata(raw, account="acc-b", filename="x.csv").events if isinstance(e, ContractUpserted)
    ]
    assert other.contract_id == contract.contract_id


def test_cli_prints_counts_and_every_row_error(tmp_path: Path) -> None:
    import io

    from smartpost_assignment.importer import EXIT_INVALID, main

    good = tmp_path / "two.csv"
    good.write_bytes(_two_accounts_csv())
    out = io.StringIO()
    assert main([str(good), "--dry-run"], out=out) == 0
    text = out.getvalue()
    assert "Konto acc-a: 1 Liegenschaften, 1 Einheiten, 1 Kontakte, 1 Verträge geprüft." in text
    assert "Konto acc-b:" in text
    assert "Probelauf" in text
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            [
                {"record_type": "contact", "contact_id": "C1"},
                {"record_type": "contract", "contact_id": "C9", "unit_id": "U9", "role": "owner", "start": "x"},
            ]
        )
    )
    out = io.StringIO()
    assert main([str(bad), "--account", "demo", "--dry-run"], out=out) == EXIT_INVALID
    text = out.getvalue()
    assert "2 fehlerhafte Zeile(n)" in text
    assert "record 1: contact C1: a contact needs last_name or company" in text
    assert "record 2: contract V-" in text
    assert "unknown contact_id 'C9'" in text
    assert "Nichts importiert" in text
