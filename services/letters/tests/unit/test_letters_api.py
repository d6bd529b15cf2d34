"""HTTP API over a real SQLite event store and an in-memory object store (no Kafka: lifespan not started)."""

from __future__ import annotations

import json
import uuid

import pytest
from fastapi.testclient import TestClient
from letters_testkit import SPLITTER, make_parts, tiny_pdf

from smartpost_letters.app import create_app
from smartpost_letters.domain.letter import Actor
from smartpost_letters.settings import Settings
from smartpost_shared.contracts.documents import AssignmentStatus, PartAssignment
from smartpost_shared.storage import MemoryStore
from smartpost_shared.testing.identity import caller_headers

PDF = tiny_pdf(2)


STAFF = ("prepare", "release")


def headers(account="acc-1", actor="staff:anna", command=None, version=None, roles=STAFF):
    h = caller_headers(account, actor, audience="letters", roles=roles)
    if command:
        h["X-SmartPost-Command-Id"] = command
    if version is not None:
        h["If-Match"] = f'"{version}"'
    return h


@pytest.fixture
def env(tmp_path):
    store = MemoryStore()
    settings = Settings(data_dir=str(tmp_path), log_json=False)
    app = create_app(settings, store=store)
    client = TestClient(app)
    yield client, app, store
    app.state.event_app.close()


def make_doctype(client, account="acc-1"):
    r = client.post("/v1/document-types", json={"name": "Abrechnungen"}, headers=headers(account))
    assert r.status_code == 201, r.text
    return r.json()["created_id"]


def make_letter(client, account="acc-1", command=None, **extra):
    dt = make_doctype(client, account)
    body = {
        "title": "Heizkosten 2025",
        "document_type_id": dt,
        "recipient_groups": ["owners"],
        "scope": "property",
        "property_id": "prop-1",
        **extra,
    }
    r = client.post("/v1/letters", json=body, headers=headers(account, command=command))
    assert r.status_code == 201, r.text
    return r.json()


def upload(client, letter_id, data=PDF, role="split", command=None, account="acc-1", rule=None):
    form = {"role": role}
    if rule:
        form["rule"] = json.dumps(rule)
    return client.post(
        f"/v1/letters/{letter_id}/documents",
        files={"file": ("brief.pdf", data, "application/pdf")},
        data=form,
        headers=headers(account, command=command),
    )


def drive_to_review(app, client, letter_id, count=2, *, thumbnail_pack=False):
    r = client.post(f"/v1/letters/{letter_id}/split", headers=headers())
    assert r.status_code == 200, r.text
    doc_id = r.json()["documents"][0]["document_id"]
    service = app.state.service
    lid = uuid.UUID(letter_id)
    parts = make_parts("acc-1", letter_id, doc_id, count, thumbnail_pack=thumbnail_pack)
    service.record_split(
        "acc-1",
        lid,
        inbound_event_id=str(uuid.uuid4()),
        document_id=doc_id,
        source_page_count=count * 2,
        parts=parts,
        warnings=[],
        actor=SPLITTER.name,
    )
    service.record_assignments(
        "acc-1",
        lid,
        inbound_event_id=str(uuid.uuid4()),
        document_id=doc_id,
        assignments=[
            PartAssignment(
                part_id=p.part_id,
                status=AssignmentStatus.ASSIGNED,
                contact_id=f"c{i}",
                property_id="prop-1",
                unit_id=f"u{i}",
            )
            for i, p in enumerate(parts)
        ],
        warnings=[],
        is_correction=False,
        actor=Actor("service:assignment").name,
    )
    return doc_id, parts


def test_only_signed_caller_claims_identify_the_caller(tmp_path):
    app = create_app(Settings(data_dir=str(tmp_path), log_json=False), store=MemoryStore())
    client = TestClient(app)
    assert client.get("/v1/letters").status_code == 401
    plain = {"X-SmartPost-Account": "acc-1", "X-SmartPost-Actor": "staff:anna"}
    assert client.get("/v1/letters", headers=plain).status_code == 401
    assert client.get("/v1/letters", headers=caller_headers("acc-1", audience="assignment")).status_code == 401
    assert client.get("/v1/letters", headers=headers()).status_code == 200
    app.state.event_app.close()


def test_full_flow_over_http(env):  # noqa: PLR0915 - one scenario end to end
    client, app, store = env
    letter = make_letter(client)
    lid = letter["letter_id"]
    assert letter["status"] == "draft"
    assert letter["document_type"]["path"] == ["Abrechnungen"]
    r = upload(client, lid, rule={"strategy": "fixed_pages", "pages_per_letter": 2})
    assert r.status_code == 201, r.text
    doc = r.json()["documents"][0]
    assert doc["rule"]["strategy"] == "fixed_pages"
    assert store.get(doc["source_key"]) == PDF
    assert doc["source_key"] == f"accounts/acc-1/letters/{lid}/sources/{doc['document_id']}.pdf"
    assert client.get(f"/v1/letters/{lid}/documents/{doc['document_id']}/pdf", headers=headers()).content == PDF
    _, parts = drive_to_review(app, client, lid)
    store.put(parts[0].storage_key, b"%PDF-part0", content_type="application/pdf")
    store.put(parts[0].thumbnail_key, b"\x89PNG...", content_type="image/png")
    got = client.get(f"/v1/letters/{lid}", headers=headers()).json()
    assert got["status"] == "in_review"
    assert got["release_blockers"] == ["the review has not been confirmed"]
    part_resp = client.get(f"/v1/letters/{lid}/parts/{parts[0].part_id}/pdf", headers=headers())
    assert part_resp.status_code == 200
    assert part_resp.content == b"%PDF-part0"
    thumb = client.get(f"/v1/letters/{lid}/parts/{parts[0].part_id}/thumbnail", headers=headers())
    assert thumb.headers["content-type"] == "image/png"
    assert thumb.content == b"\x89PNG..."
    r = client.post(f"/v1/letters/{lid}/parts/{parts[1].part_id}/discard", headers=headers())
    assert r.json()["counts"]["discarded"] == 1
    r = client.post(f"/v1/letters/{lid}/release", json={"notify_by_email": True}, headers=headers())
    assert r.status_code == 422
    assert r.json()["code"] == "release_blocked"
    assert client.post(f"/v1/letters/{lid}/review/confirm", headers=headers()).json()["status"] == "reviewed"
    r = client.post(f"/v1/letters/{lid}/release?items=none", json={"notify_by_email": True}, headers=headers())
    assert r.status_code == 200
    assert r.json()["items"] == []  # a command's answer stays small; the number is in counts
    assert r.json()["counts"]["released_items"] == 1
    r = client.get(f"/v1/letters/{lid}", headers=headers())
    assert [i["item_id"] for i in r.json()["items"]] == [f"{lid}:{parts[0].part_id}"]
    # A misspelt option is refused, not silently replaced by a default (paper for everyone).
    r = client.post(f"/v1/letters/{lid}/print-order", json={"recipient_filtr": "post_preference"}, headers=headers())
    assert r.status_code == 422
    r = client.post(f"/v1/letters/{lid}/print-order", json={"color": True, "registered": "einwurf"}, headers=headers())
    assert r.json()["status"] == "print_ordered"
    assert r.json()["print_order"]["options"]["registered"] == "einwurf"
    r = client.post(f"/v1/letters/{lid}/print-order", json={}, headers=headers())
    assert r.status_code == 422
    assert "already ordered" in r.json()["detail"]
    r = client.post(
        f"/v1/letters/{lid}/revocations", json={"unit_id": "u0", "reason": "Mieterwechsel"}, headers=headers()
    )
    assert r.json()["items"][0]["revoke_reason"] == "Mieterwechsel"
    r = client.delete(f"/v1/letters/{lid}", params={"reason": "falsch"}, headers=headers())
    assert r.json()["status"] == "deleted"
    audit = client.get(f"/v1/letters/{lid}/audit", headers=headers()).json()["entries"]
    actions = [e["action"] for e in audit]
    assert actions[0] == "created"
    assert "document_attached" in actions
    assert "split_recorded" in actions
    assert actions[-4:] == ["released", "print_order_placed", "items_revoked", "deleted"]
    assert {e["actor"] for e in audit} >= {"staff:anna", "service:splitter", "service:assignment"}
    assert all(e["timestamp"] for e in audit)
    listed = client.get("/v1/letters", headers=headers()).json()["letters"]
    assert [(x["letter_id"], x["status"], x["parts"], x["released_items"]) for x in listed] == [(lid, "deleted", 2, 1)]


def _upload_as(client, letter_id, who):
    files = {"file": ("brief.pdf", PDF, "application/pdf")}
    return client.post(f"/v1/letters/{letter_id}/documents", files=files, data={"role": "split"}, headers=who)


def test_roles_come_from_the_verified_claims_not_from_the_gateway(env):
    """A token of the account is not enough: prepare-only cannot release, release-only cannot prepare."""
    client, app, _ = env
    preparer = headers(actor="staff:paula", roles=("prepare",))
    releaser = headers(actor="staff:rolf", roles=("release",))
    nobody = headers(actor="staff:niemand", roles=())
    lid = make_letter(client)["letter_id"]
    refused = _upload_as(client, lid, releaser)
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("Dafür fehlt Ihnen die Berechtigung")
    assert "Vorbereiten" in refused.json()["detail"]
    assert _upload_as(client, lid, preparer).status_code == 201
    _, parts = drive_to_review(app, client, lid)
    assert client.post(f"/v1/letters/{lid}/parts/{parts[0].part_id}/unassign", headers=releaser).status_code == 403
    assert client.post(f"/v1/letters/{lid}/review/discard-unmatched", headers=releaser).status_code == 403
    # The Endkontrolle is the preparer's step (as in the gateway); the release is not.
    assert client.post(f"/v1/letters/{lid}/review/confirm", headers=preparer).json()["status"] == "reviewed"
    for method, path, body in [
        ("POST", f"/v1/letters/{lid}/release", {"notify_by_email": False}),
        ("POST", f"/v1/letters/{lid}/print-order", {}),
        ("POST", f"/v1/letters/{lid}/revocations", {"unit_id": "u0", "reason": "Mieterwechsel"}),
    ]:
        r = client.request(method, path, json=body, headers=preparer)
        assert r.status_code == 403, (path, r.text)
        assert "Freigeben" in r.json()["detail"]
    assert client.get(f"/v1/letters/{lid}", headers=preparer).json()["status"] == "reviewed"
    r = client.post(f"/v1/letters/{lid}/release", json={"notify_by_email": False}, headers=releaser)
    assert r.status_code == 200, r.text
    # Deleting a released letter withdraws documents from recipients: a release decision, not the preparer's.
    assert client.delete(f"/v1/letters/{lid}", headers=preparer).status_code == 403
    for who in (preparer, releaser):
        assert client.get(f"/v1/letters/{lid}", headers=who).json()["status"] == "released"
        assert client.get("/v1/letters", headers=who).status_code == 200
        assert client.get(f"/v1/letters/{lid}/audit", headers=who).status_code == 200
        assert client.get(f"/v1/letters/{lid}/parts", headers=who).status_code == 200
        assert client.get("/v1/document-types", headers=who).status_code == 200
    # A verified caller without any staff role reads nothing either.
    assert client.get(f"/v1/letters/{lid}", headers=nobody).status_code == 403
    assert client.get("/v1/letters", headers=nobody).status_code == 403
    actions = [e["action"] for e in client.get(f"/v1/letters/{lid}/audit", headers=releaser).json()["entries"]]
    assert actions.count("released") == 1
    assert "print_order_placed" not in actions
    assert "items_revoked" not in actions
    assert "deleted" not in actions


def test_a_draft_is_the_preparers_to_delete(env):
    client, _, _ = env
    lid = make_letter(client)["letter_id"]
    assert client.delete(f"/v1/letters/{lid}", headers=headers(roles=("admin",))).status_code == 403
    assert client.delete(f"/v1/letters/{lid}", headers=headers(roles=("prepare",))).json()["status"] == "deleted"


def test_another_account_cannot_read_or_change_a_letter(env):
    client, _, _ = env
    lid = make_letter(client)["letter_id"]
    other = headers("acc-2")
    assert client.get(f"/v1/letters/{lid}", headers=other).status_code == 404
    assert client.get(f"/v1/letters/{lid}/audit", headers=other).status_code == 404
    assert client.post(f"/v1/letters/{lid}/split", headers=other).status_code == 404
    assert upload(client, lid, account="acc-2").status_code == 404
    assert client.delete(f"/v1/letters/{lid}", headers=other).status_code == 404
    assert client.get("/v1/letters", headers=other).json()["letters"] == []
    assert client.get("/v1/letters/not-a-uuid", headers=headers()).status_code == 404


def test_upload_validation_is_clear(env):
    client, _, store = env
    lid = make_letter(client)["letter_id"]
    r = upload(client, lid, data=b"")
    assert r.status_code == 422
    assert "leer" in r.json()["detail"]
    r = upload(client, lid, data=b"GIF89a not a pdf")
    assert r.status_code == 422
    assert r.json()["code"] == "upload_rejected"
    assert r.json()["problems"][0]["code"] == "not_a_pdf"
    r = upload(client, lid, rule={"strategy": "nonsense"})
    assert r.status_code == 422
    assert r.json()["code"] == "invalid_document"
    r = upload(client, lid, role="attachment")
    assert r.status_code == 422
    assert "cover letter" in r.json()["detail"]
    assert store.list("accounts/") == [] or all("sources" in k for k in store.list("accounts/"))
    assert client.get(f"/v1/letters/{lid}", headers=headers()).json()["documents"] == []


def test_retried_commands_apply_once(env):
    client, _, _ = env
    first = make_letter(client, command="create-1")
    dt = first["document_type"]["id"]
    again = client.post(
        "/v1/letters",
        json={
            "title": "Heizkosten 2025",
            "document_type_id": dt,
            "recipient_groups": ["owners"],
            "property_id": "prop-1",
        },
        headers=headers(command="create-1"),
    )
    assert again.json()["letter_id"] == first["letter_id"]
    lid = first["letter_id"]
    a = upload(client, lid, command="up-1").json()
    b = upload(client, lid, command="up-1").json()
    assert len(a["documents"]) == len(b["documents"]) == 1
    assert a["version"] == b["version"]
    assert len(client.get("/v1/letters", headers=headers()).json()["letters"]) == 1


def test_stale_expected_version_is_a_409_with_current_version(env):
    client, _, _ = env
    letter = make_letter(client)
    lid = letter["letter_id"]
    r = upload(client, lid)
    version = r.json()["version"]
    assert r.headers["etag"] == f'"{version}"'
    stale = client.post(f"/v1/letters/{lid}/split", headers=headers(version=version - 1))
    assert stale.status_code == 409
    assert stale.json()["current_version"] == version
    ok = client.post(f"/v1/letters/{lid}/split", headers=headers(version=version))
    assert ok.status_code == 200
    assert ok.json()["version"] == version + 1


def test_property_on_cross_property_letter_is_rejected(env):
    client, _, _ = env
    dt = make_doctype(client)
    r = client.post(
        "/v1/letters",
        json={
            "title": "T",
            "document_type_id": dt,
            "recipient_groups": ["tenants"],
            "scope": "cross_property",
            "property_id": "prop-1",
        },
        headers=headers(),
    )
    assert r.status_code == 422
    assert "cross-property" in r.json()["detail"]
    r = client.post(
        "/v1/letters",
        json={"title": "T", "document_type_id": "unknown", "recipient_groups": ["x"], "property_id": "p"},
        headers=headers(),
    )
    assert r.status_code == 422
    assert r.json()["code"] == "invalid_document_type"


def test_document_type_tree_crud_and_five_levels(env):
    client, _, _ = env
    parent = None
    ids = []
    for level in range(5):
        r = client.post("/v1/document-types", json={"name": f"L{level}", "parent_id": parent}, headers=headers())
        assert r.status_code == 201, r.text
        parent = r.json()["created_id"]
        ids.append(parent)
    r = client.post("/v1/document-types", json={"name": "L5", "parent_id": parent}, headers=headers())
    assert r.status_code == 422
    assert "five" in r.json()["detail"] or "5" in r.json()["detail"]
    tree = client.get("/v1/document-types", headers=headers()).json()
    assert [n["depth"] for n in tree["nodes"]] == [1, 2, 3, 4, 5]
    assert tree["nodes"][-1]["path"] == ["L0", "L1", "L2", "L3", "L4"]
    admin = headers(roles=("admin",))
    # Changing the shared tree of document types is an admin's task (preparers only add new types).
    assert client.delete(f"/v1/document-types/{ids[4]}", headers=headers()).status_code == 403
    assert client.delete(f"/v1/document-types/{ids[0]}", headers=admin).status_code == 422
    r = client.patch(f"/v1/document-types/{ids[4]}", json={"name": "Neu", "parent_id": None}, headers=admin)
    assert r.status_code == 200
    assert client.delete(f"/v1/document-types/{ids[4]}", headers=admin).status_code == 200
    assert client.get("/v1/document-types", headers=headers("acc-2")).json()["nodes"] == []


def test_openapi_is_served(env):
    client, _, _ = env
    spec = client.get("/openapi.json").json()
    assert "/v1/letters/{letter_id}/release" in spec["paths"]
    assert client.get("/healthz").json() == {"status": "ok"}


def test_thumbnail_from_the_documents_thumbnail_pack_is_its_byte_range(env) -> None:
    client, app, store = env
    lid = make_letter(client)["letter_id"]
    assert upload(client, lid, rule={"strategy": "fixed_pages", "pages_per_letter": 2}).status_code == 201
    _, parts = drive_to_review(app, client, lid, count=3, thumbnail_pack=True)
    assert parts[0].thumbnail_key is not None
    store.put(parts[0].thumbnail_key, b"".join(b"thumb-%04d" % i for i in range(3)), content_type="image/png")
    for i, part in enumerate(parts):
        got = client.get(f"/v1/letters/{lid}/parts/{part.part_id}/thumbnail", headers=headers())
        assert got.status_code == 200
        assert (got.content, got.headers["content-type"]) == (b"thumb-%04d" % i, "image/png")


def test_a_letter_whose_event_cannot_be_published_shows_it(env):
    from smartpost_shared.messaging import MessageTooLargeError

    client, app, _ = env
    created = make_letter(client)
    other = make_letter(client, account="acc-2")
    assert client.get(f"/v1/letters/{created['letter_id']}", headers=headers()).json()["publish_problem"] is None
    app.state.relay.health.failed(
        MessageTooLargeError("LetterReleased of 2000000 bytes"),
        {"event_type": "LetterReleased", "account_id": "acc-1", "letter_id": created["letter_id"]},
    )
    body = client.get(f"/v1/letters/{created['letter_id']}", headers=headers()).json()
    assert "LetterReleased" in body["publish_problem"]
    assert client.get(f"/v1/letters/{other['letter_id']}", headers=headers("acc-2")).json()["publish_problem"] is None
    # another account never learns about it
    assert app.state.relay.health.problem_for(account_id="acc-2", letter_id=created["letter_id"]) is None


def _review_letter(client, app, count=6):
    letter = make_letter(client)
    lid = letter["letter_id"]
    assert upload(client, lid).status_code == 201
    doc_id, parts = drive_to_review(app, client, lid, count=count)
    return lid, doc_id, parts


def test_parts_are_paged_and_filtered_and_commands_can_answer_without_parts(env):
    client, app, _ = env
    lid, _, parts = _review_letter(client, app, count=6)
    client.post(f"/v1/letters/{lid}/parts/{parts[1].part_id}/unassign", headers=headers())
    r = client.post(f"/v1/letters/{lid}/parts/{parts[2].part_id}/discard?parts=none", headers=headers())
    assert r.status_code == 200
    slim = r.json()
    assert slim["documents"][0]["parts"] == []
    assert slim["documents"][0]["part_count"] == 6
    assert slim["counts"]["discarded"] == 1
    page = client.get(f"/v1/letters/{lid}/parts?limit=2&offset=2", headers=headers()).json()
    assert page["total"] == 6
    assert [p["part_id"] for p in page["parts"]] == [parts[2].part_id, parts[3].part_id]
    review = client.get(f"/v1/letters/{lid}/parts?filter=review", headers=headers()).json()
    assert [p["part_id"] for p in review["parts"]] == [parts[1].part_id]
    assert review["filter_counts"]["unassigned"] == 1
    assert review["filter_counts"]["discarded"] == 1
    assert review["filter_counts"]["assigned"] == 4
    assert review["properties"][0] == {"property_id": "prop-1", "parts": 4, "undecided": 0, "deferred": 0}
    in_prop = client.get(f"/v1/letters/{lid}/parts?property_id=prop-1&filter=all", headers=headers()).json()
    assert in_prop["total"] == 4
    none = client.get(f"/v1/letters/{lid}/parts?property_id=none", headers=headers()).json()
    assert none["total"] == 2
    assert client.get(f"/v1/letters/{lid}/parts?filter=bogus", headers=headers()).status_code == 422
    assert client.get(f"/v1/letters/{lid}/parts", headers=headers("acc-2")).status_code == 404


def test_bulk_actions_over_http_are_one_event_each_audited_and_undoable(env):
    client, app, _ = env
    lid, _, parts = _review_letter(client, app, count=4)
    client.post(f"/v1/letters/{lid}/parts/{parts[0].part_id}/unassign", headers=headers())
    before = client.get(f"/v1/letters/{lid}", headers=headers()).json()["version"]
    r = client.post(
        f"/v1/letters/{lid}/review/defer-property?parts=none", json={"property_id": "prop-1"}, headers=headers()
    )
    assert r.status_code == 200, r.text
    bulk_id = r.headers["X-SmartPost-Bulk-Id"]
    assert r.json()["version"] == before + 1
    assert r.json()["counts"]["discarded"] == 3
    page = client.get(f"/v1/letters/{lid}/parts?filter=deferred", headers=headers()).json()
    assert page["total"] == 3
    assert page["bulk_actions"][0]["action"] == "defer_property"
    assert page["bulk_actions"][0]["parts"] == 3
    audit = client.get(f"/v1/letters/{lid}/audit", headers=headers()).json()["entries"]
    assert audit[-1]["action"] == "bulk_reviewed"
    assert audit[-1]["actor"] == "staff:anna"
    r = client.post(f"/v1/letters/{lid}/review/discard-unmatched", headers=headers())
    assert r.status_code == 200
    assert r.json()["counts"]["undecided"] == 0
    r = client.post(f"/v1/letters/{lid}/review/bulk/{bulk_id}/undo", headers=headers())
    assert r.status_code == 200, r.text
    assert r.json()["counts"]["assigned"] == 3
    again = client.post(f"/v1/letters/{lid}/review/accept-safe", headers=headers())
    assert again.status_code == 422  # nothing safe to accept: a clear error, nothing changed


def test_the_cached_letter_sees_what_another_process_wrote(env, tmp_path):
    """Two service instances on one event store (e.g. API replica and consumer): no stale letter, no lost write."""
    from smartpost_letters.application import LettersApplication, LetterService, event_store_env

    client, app, _ = env
    lid, _, parts = _review_letter(client, app, count=3)
    assert client.get(f"/v1/letters/{lid}", headers=headers()).json()["counts"]["discarded"] == 0
    other_app = LettersApplication(event_store_env(app.state.settings.resolved_event_store_url()))
    other = LetterService(other_app)
    from smartpost_letters.application import CommandContext

    other.discard_part(CommandContext("acc-1", "staff:bernd"), uuid.UUID(lid), part_id=parts[0].part_id)
    assert client.get(f"/v1/letters/{lid}", headers=headers()).json()["counts"]["discarded"] == 1
    # A command on the stale cached copy conflicts in the store, is retried on the fresh state, nothing is lost.
    other.discard_part(CommandContext("acc-1", "staff:bernd"), uuid.UUID(lid), part_id=parts[1].part_id)
    r = client.post(f"/v1/letters/{lid}/parts/{parts[2].part_id}/discard", headers=headers())
    assert r.json()["counts"]["discarded"] == 3
    other_app.close()


def test_letters_rebuilt_from_a_snapshot_taken_in_memory_equal_the_cached_ones(tmp_path):
    from smartpost_letters.application import CommandContext, LettersApplication, LetterService, event_store_env

    settings = Settings(data_dir=str(tmp_path), log_json=False, snapshot_interval=3)
    app = create_app(settings, store=MemoryStore())
    client = TestClient(app)
    lid, _, parts = _review_letter(client, app, count=4)
    service = app.state.service
    for p in parts:
        service.discard_part(CommandContext("acc-1", "staff:anna"), uuid.UUID(lid), part_id=p.part_id)
    cached = client.get(f"/v1/letters/{lid}", headers=headers()).json()
    fresh_app = LettersApplication(event_store_env(settings.resolved_event_store_url()), snapshot_interval=3)
    assert list(fresh_app.snapshots.get(uuid.UUID(lid)))  # snapshots were taken
    fresh = LetterService(fresh_app).get_letter("acc-1", uuid.UUID(lid))
    from smartpost_letters.schemas import LetterOut

    assert LetterOut.of(fresh).model_dump(mode="json") == cached
    fresh_app.close()
    app.state.event_app.close()


def test_upload_checks_every_file_and_reports_all_problems_at_once_in_german(env, tmp_path):
    """Issue #15 finding 6: encrypted, empty and corrupt files are found at upload, all in one answer."""
    client, _, store = env
    lid = make_letter(client)["letter_id"]
    corrupt = b"%PDF-1.7\n" + b"\x00garbage" * 50
    files = [
        ("file", ("gut.pdf", PDF, "application/pdf")),
        ("file", ("geschuetzt.pdf", tiny_pdf(1, password="geheim"), "application/pdf")),
        ("file", ("leer.pdf", b"", "application/pdf")),
        ("file", ("kaputt.pdf", corrupt, "application/pdf")),
        ("file", ("ohne-seiten.pdf", tiny_pdf(0), "application/pdf")),
    ]
    r = client.post(f"/v1/letters/{lid}/documents", files=files, data={"role": "split"}, headers=headers())
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "upload_rejected"
    assert [(p["filename"], p["code"]) for p in body["problems"]] == [
        ("geschuetzt.pdf", "encrypted"),
        ("leer.pdf", "empty_file"),
        ("kaputt.pdf", "corrupt"),
        ("ohne-seiten.pdf", "no_pages"),
    ]
    assert "verschlüsselt" in body["detail"]
    assert "beschädigt" in body["detail"]
    text = json.dumps(body, ensure_ascii=False)
    assert "/tmp" not in text
    assert str(tmp_path) not in text
    # Nothing of a rejected upload is attached or stored.
    assert client.get(f"/v1/letters/{lid}", headers=headers()).json()["documents"] == []
    assert store.list("accounts/") == []


def test_several_good_files_in_one_upload_are_attached_once_each(env):
    client, _, _ = env
    lid = make_letter(client)["letter_id"]
    files = [("file", (f"teil{i}.pdf", tiny_pdf(i + 1), "application/pdf")) for i in range(3)]
    r = client.post(f"/v1/letters/{lid}/documents", files=files, data={"role": "split"}, headers=headers(command="u1"))
    assert r.status_code == 201, r.text
    assert [d["filename"] for d in r.json()["documents"]] == ["teil0.pdf", "teil1.pdf", "teil2.pdf"]
    again = client.post(
        f"/v1/letters/{lid}/documents", files=files, data={"role": "split"}, headers=headers(command="u1")
    )
    assert again.status_code == 201
    assert len(again.json()["documents"]) == 3
