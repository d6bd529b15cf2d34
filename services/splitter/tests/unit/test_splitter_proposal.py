"""The split-strategy proposal at upload: on varied generated PDFs the most consistent rule is proposed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from smartpost_shared.sample_letters import demo_recipients, write_serial_letter
from smartpost_shared.testing.identity import caller_headers
from smartpost_splitter.adapters.scan import proposal_pages
from smartpost_splitter.pages import ProposalPage, proposal_page
from smartpost_splitter.proposal import assess, explain, propose

if TYPE_CHECKING:
    from pathlib import Path

LAYOUTS: dict[str, tuple[dict[str, Any], str, dict[str, Any]]] = {
    # name: (generator options, expected strategy, expected rule details)
    "window form B": ({"address_form": "B"}, "address_block", {"address_form": "B"}),
    "window form A": ({"address_form": "A"}, "address_block", {"address_form": "A"}),
    "no address, page numbers": ({"address_mode": "missing"}, "first_page", {"first_page_text": "Seite 1 von"}),
    "address below the window": ({"address_mode": "outside"}, "first_page", {"first_page_text": "Seite 1 von"}),
    "separator sheets": ({"keyword_separators": True}, "keyword", {"keyword": "trennseite"}),
    "blank separators": ({"blank_separators": True, "address_mode": "missing"}, "blank_separator", {}),
}


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_the_most_consistent_rule_is_proposed_and_cuts_the_letters_right(name: str, tmp_path: Path) -> None:
    options, strategy, details = LAYOUTS[name]
    pdf = tmp_path / "serienbrief.pdf"
    truths = write_serial_letter(pdf, demo_recipients(9, seed=4), seed=7, **options)
    total, pages = proposal_pages(str(pdf), 300)
    assert total == len(pages)
    ranked = propose(pages)
    best = ranked[0]
    assert best.rule["strategy"] == strategy, explain(best, ranked[1:], pages_read=total, pages_total=total)
    for key, value in details.items():
        assert best.rule[key] == value
    assert best.letters == len(truths)
    assert best.score > 0.9
    # A merging rule (one part per 6 pages) scores lower than the proposal.
    assert all(a.score <= best.score for a in ranked)


def test_merged_letters_score_lower_than_cut_ones() -> None:
    # Two letters to the same address: the address alone would merge them; page numbering restarts show two.
    window = ("Herrn", "Max Muster", "Weg 1", "10115 Berlin")

    def page(index: int, number: int, ident: str) -> ProposalPage:
        return proposal_page(index, f"Kunden-Nr. {ident}\nSeite {number} von 2", (), window)

    pages = [page(0, 1, "4711"), page(1, 2, "4711"), page(2, 1, "4712"), page(3, 2, "4712")]
    by_number = assess(pages, {"strategy": "first_page", "first_page_text": "Seite 1 von"}, "Erste Seite")
    merged = assess(pages, {"strategy": "fixed_pages", "pages_per_letter": 4}, "Feste Seitenzahl (4)")
    assert by_number.letters == 2
    assert by_number.score == 1.0
    assert merged.score < by_number.score
    assert any("Kontaktnummer" in reason for reason in merged.reasons)


def test_explanation_is_german_and_names_the_alternatives() -> None:
    pages = [
        proposal_page(i, f"Seite {i % 2 + 1} von 2", (), ("Frau", "Eva Beispiel", "Weg 2", "10115 Berlin"))
        for i in range(4)
    ]
    ranked = propose(pages)
    text = explain(ranked[0], ranked[1:], pages_read=4, pages_total=10)
    assert text.startswith("Vorschlag: „")
    assert "Andere Regeln" in text
    assert "Geprüft wurden die ersten 4 von 10 Seiten" in text


def test_proposal_endpoint_needs_a_caller_and_answers_the_ranking(tmp_path: Path) -> None:
    from pydantic import SecretStr

    from smartpost_shared.settings import StorageSettings
    from smartpost_splitter.app import create_app
    from smartpost_splitter.settings import Settings

    pdf = tmp_path / "serienbrief.pdf"
    write_serial_letter(pdf, demo_recipients(4, seed=1), seed=2)
    # The storage is never contacted for a proposal (no lifespan); the client only needs a key to be built.
    storage = StorageSettings(secret_key=SecretStr("unused"))
    app = create_app(Settings(text_processes=1, log_json=False, work_dir=str(tmp_path), storage=storage))
    client = TestClient(app)  # no lifespan: no broker or storage needed for a proposal
    try:
        body = pdf.read_bytes()
        assert client.post("/split-proposals", content=body).status_code == 401
        headers = caller_headers("acc-proposal", audience="splitter") | {"Content-Type": "application/pdf"}
        answer = client.post("/split-proposals", content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert result["proposal"]["rule"] == {"strategy": "address_block", "address_form": "B"}
        assert result["proposal"]["letters"] == 4
        assert result["explanation"].startswith("Vorschlag: „Anschriftfeld (Form B)“")
        broken = client.post("/split-proposals", content=b"%PDF-1.7 kaputt", headers=headers)
        assert broken.status_code == 422
        assert "nicht lesen" in broken.json()["detail"]
    finally:
        app.state.sandbox.close()
