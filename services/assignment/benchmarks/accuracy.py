# ruff: noqa: E501, C901, PLR0912, FBT003 - report formatting and scenario code
"""Accuracy and speed of the matcher on a generated account with ground truth (see corpus.py for the noise).

    .venv/bin/python services/assignment/benchmarks/accuracy.py [--seed 7] [--properties 350] [--units 30]

Prints, for the property scope and the cross-property scope: precision of automatic assignments (a wrong one is
a data breach; target 100 %), the share assigned automatically (target >= 95 %), whether every flagged part has
the right contact among its top 3 candidates, a breakdown per difficulty, and the time to match 2,500 parts
against the whole account (target < 5 s), in memory and including loading the read model from SQLite.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from corpus import LETTER_DATE, UNNAMED_PROPERTY_RATE, Corpus, Truth, build_account, make_part, missing_person_part
from sqlalchemy import insert

from smartpost_assignment.domain.matching import (
    AccountIndex,
    LetterContext,
    Matcher,
    MatchIndex,
    roles_for_groups,
)
from smartpost_shared.contracts.common import LetterScope
from smartpost_shared.contracts.documents import AssignmentStatus, PartAssignment, SplitPart
from smartpost_shared.db import make_engine
from smartpost_shared.masterdata import (
    MasterDataReader,
    contacts,
    contracts,
    create_masterdata_tables,
    properties,
    units,
)


@dataclass
class Letter:
    context: LetterContext
    parts: list[SplitPart]
    truth: dict[str, Truth]


def letter_parts(
    rng: random.Random,
    corpus: Corpus,
    letter_id: str,
    role: str,
    unit_ids: list[str],
    *,
    missing_rate: float = 0.01,
    unnamed_rate: float = UNNAMED_PROPERTY_RATE,
) -> tuple[list[SplitPart], dict[str, Truth]]:
    snap = corpus.snapshot
    parts: list[SplitPart] = []
    truth: dict[str, Truth] = {}
    by_unit: dict[str, list[str]] = defaultdict(list)
    for c in snap.contracts:
        if c.role == role and c.valid_on(LETTER_DATE) and c.contact_id not in corpus.duplicate_of:
            by_unit[c.unit_id].append(c.contact_id)
    owner_units: dict[str, set[str]] = defaultdict(set)
    for c in snap.contracts:
        if c.role == role and c.valid_on(LETTER_DATE):
            owner_units[c.contact_id].add(c.property_id)
    changed = {u for u, owners in corpus.owners_by_unit.items() if len(owners) > 1 and role == "owner"}
    duplicated = set(corpus.duplicate_of.values())
    for unit_id in unit_ids:
        contact_ids = [c for c in by_unit.get(unit_id, []) if not snap.contacts[c].archived]
        if not contact_ids:
            continue
        unit = snap.units[unit_id]
        groups = [contact_ids] if len(contact_ids) > 1 and rng.random() < 0.3 else [[c] for c in contact_ids]
        for group in groups:
            index = len(parts)
            eheleute = len(group) > 1
            part = make_part(
                rng, corpus, letter_id, index, group, unit_id, eheleute=eheleute, unnamed_rate=unnamed_rate
            )
            dups = {d for d, o in corpus.duplicate_of.items() if o in group}
            if eheleute:
                category = "co-owners, one letter"
            elif group[0] in duplicated:
                category = "duplicate contact"
            elif unit_id in changed:
                category = "owner change"
            elif len(owner_units[group[0]]) > 1:
                category = "contact in several properties"
            elif snap.contacts[group[0]].company:
                category = "company"
            elif len(contact_ids) > 1:
                category = "co-owners, own letters"
            else:
                category = "plain"
            truth[part.part_id] = Truth(frozenset(group) | dups, unit.property_id, unit_id, category)
            parts.append(part)
            if rng.random() < missing_rate:
                missing = missing_person_part(rng, letter_id, len(parts))
                truth[missing.part_id] = Truth(frozenset(), None, None, "missing from master data")
                parts.append(missing)
    return parts, truth


@dataclass
class Tally:
    parts: int = 0
    with_truth: int = 0
    auto: int = 0
    auto_correct: int = 0
    auto_wrong_contact: int = 0
    auto_wrong_unit: int = 0
    flagged_with_truth: int = 0
    flagged_top3: int = 0
    must_not_auto: int = 0
    must_not_auto_violations: int = 0


def evaluate(results: dict[str, PartAssignment], truth: dict[str, Truth]) -> tuple[Tally, dict[str, Tally]]:
    total = Tally()
    per: dict[str, Tally] = defaultdict(Tally)
    for part_id, t in truth.items():
        a = results[part_id]
        for tally in (total, per[t.category]):
            tally.parts += 1
            # An "Eheleute" letter may go to either spouse (both are owners of the unit); duplicates and missing
            # contacts must never be assigned automatically.
            forbidden = t.category in ("duplicate contact", "missing from master data")
            if forbidden:
                tally.must_not_auto += 1
            if t.contact_ids:
                tally.with_truth += 1
            if a.status is AssignmentStatus.ASSIGNED:
                tally.auto += 1
                if forbidden:
                    tally.must_not_auto_violations += 1
                if a.contact_id not in t.contact_ids:
                    tally.auto_wrong_contact += 1
                elif (a.property_id, a.unit_id) != (t.property_id, t.unit_id):
                    tally.auto_wrong_unit += 1
                else:
                    tally.auto_correct += 1
            elif t.contact_ids:
                tally.flagged_with_truth += 1
                if {c.contact_id for c in a.candidates[:3]} & t.contact_ids:
                    tally.flagged_top3 += 1
    return total, per


def pct(a: int, b: int) -> str:
    return f"{100.0 * a / b:6.2f} %" if b else "     - "


def report(name: str, total: Tally, per: dict[str, Tally], seconds: float) -> None:
    print(f"\n== {name}: {total.parts} parts, matched in {seconds:.2f} s ==")
    print(
        f"precision (auto assignments to the right contact, property and unit): {pct(total.auto_correct, total.auto)}"
    )
    print(
        f"  wrong contact auto-assigned: {total.auto_wrong_contact}   right contact, wrong unit: {total.auto_wrong_unit}"
    )
    print(
        f"automatic: {pct(total.auto, total.parts)} of all parts; recall {pct(total.auto_correct, total.with_truth)} of parts whose contact exists"
    )
    print(
        f"flagged for review with the right contact in the top 3: {pct(total.flagged_top3, total.flagged_with_truth)} ({total.flagged_top3}/{total.flagged_with_truth})"
    )
    print(
        f"parts that must never be automatic (duplicate contacts, contacts missing from master data): {total.must_not_auto}, auto-assigned anyway: {total.must_not_auto_violations}"
    )
    print(f"  {'category':32} {'parts':>6} {'auto':>9} {'wrong':>6} {'top3 of flagged':>16}")
    for category, t in sorted(per.items(), key=lambda kv: -kv[1].parts):
        print(
            f"  {category:32} {t.parts:6d} {pct(t.auto, t.parts):>9} {t.auto_wrong_contact + t.auto_wrong_unit:6d} "
            f"{pct(t.flagged_top3, t.flagged_with_truth):>16}"
        )


def run_letters(corpus: Corpus, letters: list[Letter]) -> tuple[dict[str, PartAssignment], dict[str, Truth], float]:
    results: dict[str, PartAssignment] = {}
    truth: dict[str, Truth] = {}
    started = time.perf_counter()
    account = AccountIndex(corpus.snapshot)
    for letter in letters:
        matcher = Matcher(MatchIndex(corpus.snapshot, letter.context, account))
        for part in letter.parts:
            results[part.part_id] = matcher.assign(part)
        truth.update(letter.truth)
    return results, truth, time.perf_counter() - started


def sqlite_load_seconds(corpus: Corpus) -> float:
    snap = corpus.snapshot
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.sqlite3")
        create_masterdata_tables(engine)
        with engine.begin() as conn:
            conn.execute(insert(properties), [vars(p) for p in snap.properties.values()])
            conn.execute(insert(units), [vars(u) for u in snap.units.values()])
            rows = []
            for c in snap.contacts.values():
                row = dict(vars(c))
                row["extra_lines"] = "[]"
                rows.append(row)
            conn.execute(insert(contacts), rows)
            conn.execute(insert(contracts), [vars(c) for c in snap.contracts])
        started = time.perf_counter()
        with engine.connect() as conn:
            loaded = MasterDataReader(conn).snapshot(snap.account_id)
        seconds = time.perf_counter() - started
        assert len(loaded.contacts) == len(snap.contacts)
        engine.dispose()
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--properties", type=int, default=350)
    parser.add_argument("--units", type=int, default=30)
    parser.add_argument("--property-letters", type=int, default=60, help="properties that get owner + tenant letters")
    parser.add_argument("--cross-parts", type=int, default=2500)
    parser.add_argument(
        "--unnamed-property-rate",
        type=float,
        default=UNNAMED_PROPERTY_RATE,
        help="share of letters whose page names no property (the rest name it by number and/or address)",
    )
    parser.add_argument("--layouts", action="store_true", help="the foreign ERP layouts (foreign.py) instead")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--only", help="only layouts whose name starts with this")
    parser.add_argument("--reasons", action="store_true", help="with --layouts: why assignable letters went to review")
    args = parser.parse_args()
    if args.layouts:
        import foreign  # noqa: PLC0415 - needs the splitter package, only for this mode

        foreign.main(args.seeds, args.only, properties=120, units=20, property_letters=12, reasons=args.reasons)
        return
    unnamed = args.unnamed_property_rate
    rng = random.Random(args.seed)
    corpus = build_account(
        rng, account_id="bench", properties=args.properties, units_per_property=args.units, extra_contacts=1200
    )
    snap = corpus.snapshot
    roles = Counter(c.role for c in snap.contracts)
    print(
        f"account: {len(snap.properties)} properties, {len(snap.units)} units, {len(snap.contacts)} contacts "
        f"({len(corpus.duplicate_of)} imported twice), {len(snap.contracts)} contracts ({roles['owner']} owner, {roles['tenant']} tenant)"
    )

    # Property scope: owner and tenant letters for a sample of properties.
    letters: list[Letter] = []
    for prop_id in rng.sample(sorted(snap.properties), args.property_letters):
        unit_ids = sorted(u for u, unit in snap.units.items() if unit.property_id == prop_id)
        for group, role in (("owners", "owner"), ("tenants", "tenant")):
            letter_id = f"{prop_id}-{role}"
            context = LetterContext(
                "bench", letter_id, LetterScope.PROPERTY, prop_id, roles_for_groups([group]), False, LETTER_DATE
            )
            parts, truth = letter_parts(rng, corpus, letter_id, role, unit_ids, unnamed_rate=unnamed)
            letters.append(Letter(context, parts, truth))
    results, truth, seconds = run_letters(corpus, letters)
    total, per = evaluate(results, truth)
    report(f"property scope ({len(letters)} letters)", total, per, seconds)

    # Cross-property scope: one letter to owners all over the account.
    all_units = sorted(snap.units)
    cross_id = "cross-owners"
    parts, truth = letter_parts(rng, corpus, cross_id, "owner", all_units, unnamed_rate=unnamed)
    keep = sorted(rng.sample(range(len(parts)), min(args.cross_parts, len(parts))))
    parts = [parts[i] for i in keep]
    truth = {p.part_id: truth[p.part_id] for p in parts}
    context = LetterContext(
        "bench", cross_id, LetterScope.CROSS_PROPERTY, None, roles_for_groups(["owners"]), False, LETTER_DATE
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    index = MatchIndex(snap, context)
    index_seconds = time.perf_counter() - started
    matcher = Matcher(index)
    cross_results = {p.part_id: matcher.assign(p) for p in parts}
    cross_seconds = time.perf_counter() - started
    cross_cpu = time.process_time() - cpu_started
    total, per = evaluate(cross_results, truth)
    report(
        f"cross-property scope ({len(parts)} parts, {len(index.profiles)} candidate contacts)",
        total,
        per,
        cross_seconds,
    )

    several = [p for p in parts if truth[p.part_id].category == "contact in several properties"]
    for label, group in (
        ("names the property", [p for p in several if p.property_refs]),
        ("names no property", [p for p in several if not p.property_refs]),
    ):
        auto = sum(1 for p in group if cross_results[p.part_id].status is AssignmentStatus.ASSIGNED)
        print(f"  contact in several properties, page {label}: {auto}/{len(group)} automatic ({pct(auto, len(group))})")
    print(
        f"  (pages naming no property: {100 * unnamed:.0f} %; the rest name it by number, number + address or address)"
    )

    load = sqlite_load_seconds(corpus)
    print(
        f"\nspeed: {len(parts)} parts against {len(snap.contacts)} contacts: index {index_seconds:.2f} s + matching "
        f"{cross_seconds - index_seconds:.2f} s = {cross_seconds:.2f} s in memory; loading the read model from SQLite "
        f"{load:.2f} s; total {cross_seconds + load:.2f} s wall clock, matching CPU time {cross_cpu:.2f} s (target < 5 s)"
    )


if __name__ == "__main__":
    main()
