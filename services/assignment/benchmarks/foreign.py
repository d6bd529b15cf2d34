# ruff: noqa: E501, FBT003, C901 - report formatting and scenario code
"""The accuracy benchmark on ERP-like layouts the matcher was not written for (see layouts.py).

    .venv/bin/python services/assignment/benchmarks/accuracy.py --layouts [--seeds 1 2 3 4 5] [--only F]

Per layout and seed: a generated account (numeric property numbers, 30 % named properties), a property-scope run
(owner and tenant statements of 12 properties) and a cross-property run (owners of the whole account, sorted by
name as owner lists are), every letter rendered as page text, split by the splitter's "Anschriftfeld" rule and
evidence patterns, and matched. Prints per layout and scope, over the seeds: parts, automatic share (and the
lowest seed), wrong automatic assignments, review letters without the right contact in the top 3, split errors;
then the same per trap over every layout and seed.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import random
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

from corpus import Corpus, Truth, build_account
from layouts import LAYOUTS, LETTER_DATE, PERIOD, UNTUNED_LAYOUT, Layout, LetterDoc, build_letters, render
from layouts_untuned import UNTUNED_IJ

from smartpost_assignment.domain.matching import AccountIndex, LetterContext, Matcher, MatchIndex, roles_for_groups
from smartpost_shared.contracts.common import LetterScope, SplitRule, SplitStrategy
from smartpost_shared.contracts.documents import AssignmentStatus, PartAssignment, SplitPart
from smartpost_splitter.domain import Segmenter, plan_from_rule
from smartpost_splitter.pages import CompiledPlan, PageFacts, address_from_zone, context_lines

SPLIT_ERROR = "split error (letters merged or cut)"
# Letters that must go to review whatever the layout: a duplicate contact, an addressee missing from master data,
# a printed number that belongs to someone else. "assignable" below means every other letter.
MUST_NOT_AUTO = ("duplicate contact", "missing from master data", "misprinted number (another owner's)")


def split_and_truth(
    layout: Layout, docs: list[LetterDoc], rng: random.Random, letter_id: str
) -> tuple[list[SplitPart], dict[str, Truth], int]:
    """Render, split with the splitter's text rules, and give every part the truth of the letter it holds."""
    rendered = render(rng, layout, docs)
    plan = plan_from_rule(SplitRule(strategy=SplitStrategy.ADDRESS_BLOCK, address_form=layout.address_form))
    compiled = CompiledPlan.of(plan)
    segmenter = Segmenter(plan)
    segments = []
    for i, page in enumerate(rendered.pages):
        address = address_from_zone("\n".join(page.zone), "") if page.zone else ()
        marker = compiled.marker(page.text, address, "")
        identifiers, property_refs, unit_refs = compiled.evidence_of(page.text)
        facts = PageFacts(
            index=i, width_pt=595.28, height_pt=841.89, text_chars=len(page.text), marker=marker,
            address_lines=address, identifiers=identifiers, property_refs=property_refs, unit_refs=unit_refs,
            context_lines=context_lines(page.text, address) if address else (),
        )  # fmt: skip
        segments += segmenter.feed(facts)
    segments += segmenter.finish()
    ends = [*rendered.starts[1:], len(rendered.pages)]
    parts: list[SplitPart] = []
    truth: dict[str, Truth] = {}
    started_docs = set()
    for n, segment in enumerate(segments):
        ev = segment.evidence()
        part = SplitPart(
            part_id=f"{letter_id}-{n}", index=n, first_page=segment.first + 1, last_page=segment.last + 1,
            page_count=segment.page_count, storage_key=f"{letter_id}/{n}.pdf",
            sha256=hashlib.sha256(f"{letter_id}{n}".encode()).hexdigest(), size_bytes=1,
            address_lines=list(ev.address_lines), identifiers=list(ev.identifiers),
            property_refs=list(ev.property_refs), unit_refs=list(ev.unit_refs),
            context_lines=list(ev.context_lines),
        )  # fmt: skip
        k = bisect.bisect_right(rendered.starts, segment.first) - 1
        exact = rendered.starts[k] == segment.first and ends[k] - 1 == segment.last
        if exact:
            truth[part.part_id] = docs[k].truth
            started_docs.add(k)
        else:
            truth[part.part_id] = Truth(frozenset(), None, None, SPLIT_ERROR)
        parts.append(part)
    lost = len(docs) - len(started_docs)
    return parts, truth, lost


def make_context(letter_id: str, scope: LetterScope, property_id: str | None, group: str) -> LetterContext:
    kwargs = {}
    if "period_start" in {f.name for f in dataclasses.fields(LetterContext)}:
        kwargs = {"period_start": PERIOD[0], "period_end": PERIOD[1]}
    return LetterContext(
        "bench", letter_id, scope, property_id, roles_for_groups([group]), False, LETTER_DATE, **kwargs
    )  # type: ignore[arg-type]


@dataclass
class Row:
    parts: int = 0
    auto: int = 0
    wrong: int = 0
    flagged: int = 0
    flagged_not_top3: int = 0
    split_errors: int = 0
    lost_letters: int = 0
    must_not: int = 0
    auto_assignable: int = 0


# Why assignable letters went to review: (scope, trap) -> reason (numbers masked) -> count. Printed with --reasons.
REASONS: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
_NUMBERS = re.compile(r"\d+(?:[.,]\d+)?")


def note_reasons(scope: str, a: PartAssignment, t: Truth) -> None:
    if a.status is AssignmentStatus.ASSIGNED or t.category in MUST_NOT_AUTO or not t.contact_ids:
        return
    for reason in a.evidence or ["(no reason)"]:
        REASONS[scope, t.category][_NUMBERS.sub("#", reason.split(":")[0] if "Dublette" in reason else reason)] += 1


def tally(row: Row, a: PartAssignment, t: Truth) -> None:
    row.parts += 1
    if t.category == SPLIT_ERROR:
        row.split_errors += 1
    if t.category in MUST_NOT_AUTO:
        row.must_not += 1
    elif a.status is AssignmentStatus.ASSIGNED:
        row.auto_assignable += 1
    if a.status is AssignmentStatus.ASSIGNED:
        row.auto += 1
        if (
            a.contact_id not in t.contact_ids
            or (a.property_id, a.unit_id) != (t.property_id, t.unit_id)
            or t.category in ("duplicate contact", "missing from master data")
        ):
            row.wrong += 1
    elif t.contact_ids:
        row.flagged += 1
        if not {c.contact_id for c in a.candidates[:3]} & t.contact_ids:
            row.flagged_not_top3 += 1


def pct(a: int, b: int) -> str:
    return f"{100.0 * a / b:6.2f}" if b else "   -  "


def run_layout(
    layout: Layout, seed: int, properties: int, units: int, property_letters: int
) -> dict[str, tuple[Row, dict[str, Row]]]:
    rng = random.Random(seed)
    corpus: Corpus = build_account(
        rng, account_id="bench", properties=properties, units_per_property=units, extra_contacts=400,
        numeric_refs=True, named_rate=0.3,
    )  # fmt: skip
    snap = corpus.snapshot
    account = AccountIndex(snap)
    build = getattr(layout, "build_letters", build_letters)  # layouts I and J record the contacts behind each window
    out: dict[str, tuple[Row, dict[str, Row]]] = {}
    # Property scope.
    total, per = Row(), defaultdict(Row)
    for prop_id in rng.sample(sorted(snap.properties), property_letters):
        unit_ids = sorted(u for u, unit in snap.units.items() if unit.property_id == prop_id)
        for group, role in (("owners", "owner"), ("tenants", "tenant")):
            letter_id = f"{prop_id}-{role}"
            docs = build(rng, corpus, role, unit_ids, period=PERIOD, order_by_name=False)
            parts, truth, lost = split_and_truth(layout, docs, rng, letter_id)
            matcher = Matcher(MatchIndex(snap, make_context(letter_id, LetterScope.PROPERTY, prop_id, group), account))
            total.lost_letters += lost
            matcher.note_document(parts)
            for part in parts:
                a = matcher.assign(part)
                note_reasons("property", a, truth[part.part_id])
                tally(total, a, truth[part.part_id])
                tally(per[truth[part.part_id].category], a, truth[part.part_id])
    out["property"] = (total, per)
    # Cross-property scope: owners of every unit, sorted by name.
    total, per = Row(), defaultdict(Row)
    docs = build(rng, corpus, "owner", sorted(snap.units), period=PERIOD, order_by_name=True)
    parts, truth, lost = split_and_truth(layout, docs, rng, "cross")
    matcher = Matcher(MatchIndex(snap, make_context("cross", LetterScope.CROSS_PROPERTY, None, "owners"), account))
    total.lost_letters += lost
    matcher.note_document(parts)
    for part in parts:
        a = matcher.assign(part)
        note_reasons("cross", a, truth[part.part_id])
        tally(total, a, truth[part.part_id])
        tally(per[truth[part.part_id].category], a, truth[part.part_id])
    out["cross"] = (total, per)
    return out


def add(into: Row, row: Row) -> None:
    for f in dataclasses.fields(Row):
        setattr(into, f.name, getattr(into, f.name) + getattr(row, f.name))


def main(
    seeds: list[int], only: str | None, properties: int, units: int, property_letters: int, *, reasons: bool = False
) -> None:
    layouts = [
        layout for layout in (*LAYOUTS, UNTUNED_LAYOUT, *UNTUNED_IJ) if only is None or layout.name.startswith(only)
    ]
    if only is None:
        layouts = list(LAYOUTS)  # the untuned layout G runs only when asked for (--only G)
    print(f"foreign layouts: {len(layouts)} layouts x seeds {seeds}; account {properties} properties x {units} units")
    print("split rule: Anschriftfeld (form per layout); billing period 2024 given to the matcher when it supports it")
    traps: dict[str, dict[str, Row]] = {"property": defaultdict(Row), "cross": defaultdict(Row)}
    header = f"{'layout':28} {'scope':8} {'parts':>6} {'auto %':>7} {'min seed':>8} {'assignable auto %':>17} {'wrong':>5} {'rev!top3':>8} {'split err':>9} {'lost':>4}"
    print(header)
    started = time.perf_counter()
    for layout in layouts:
        sums = {"property": Row(), "cross": Row()}
        mins = {"property": 100.0, "cross": 100.0}
        for seed in seeds:
            result = run_layout(layout, seed, properties, units, property_letters)
            for scope, (total, per) in result.items():
                add(sums[scope], total)
                mins[scope] = min(mins[scope], 100.0 * total.auto / max(total.parts, 1))
                for trap, row in per.items():
                    add(traps[scope][trap], row)
        for scope, row in sums.items():
            print(
                f"{layout.name:28} {scope:8} {row.parts:6d} {pct(row.auto, row.parts):>7} {mins[scope]:8.2f} "
                f"{pct(row.auto_assignable, row.parts - row.must_not):>17} {row.wrong:5d} "
                f"{row.flagged_not_top3:8d} {row.split_errors:9d} {row.lost_letters:4d}"
            )
    print(f"\nper trap, all layouts and seeds ({time.perf_counter() - started:.0f} s):")
    print(f"{'trap':40} {'scope':8} {'parts':>6} {'auto %':>7} {'wrong':>5} {'rev!top3':>8}")
    for scope, per in traps.items():
        for trap, row in sorted(per.items(), key=lambda kv: -kv[1].parts):
            print(
                f"{trap:40} {scope:8} {row.parts:6d} {pct(row.auto, row.parts):>7} {row.wrong:5d} {row.flagged_not_top3:8d}"
            )
    if reasons:
        print("\nwhy assignable letters went to review (reasons per letter, numbers masked):")
        for (scope, trap), counter in sorted(REASONS.items()):
            print(f"  {scope:8} {trap}")
            for reason, n in counter.most_common(6):
                print(f"    {n:5d}  {reason[:150]}")
