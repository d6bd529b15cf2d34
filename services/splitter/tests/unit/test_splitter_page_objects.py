"""Cutting a batch by page object ids (memory bounded by the batch) gives the same parts as the full page walk.

The trees are written object by object, in the shapes exports use: flat (ReportLab, Word), nested, attributes
inherited from /Pages nodes (LibreOffice puts /MediaBox and /Resources on the root, direct or indirect), and the
irregular ones that must keep the full walk (a page listed twice, a wrong /Parent, a loop, a page without /Type).
"""

from __future__ import annotations

import io
from concurrent.futures import Future
from typing import TYPE_CHECKING

import pikepdf
import pypdfium2 as pdfium
import pytest
from splitter_hostile_corpus import FONT, RawPdf, _text, page_tree_loop

from smartpost_splitter.adapters import pdf as pdf_adapter
from smartpost_splitter.adapters import scan as scan_adapter
from smartpost_splitter.adapters.pdf import (
    CutJob,
    NotPlainError,
    PartWriter,
    cut_parts,
    inspect_source,
    plain_page_objects,
)
from smartpost_splitter.adapters.sandbox import _heap_trimmer
from smartpost_splitter.limits import Budgets

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

A4 = "[0 0 595 842]"
A5 = "[0 0 420 595]"


def _page_lines(n: int) -> list[str]:
    return [f"Herrn Max Mustermann {n}", f"Kontakt-Nr.: K-{n:06d}", f"Seite {n}"]


def flat(pages: int = 12, *, wrong_parent_at: int | None = None) -> bytes:
    """Every page carries its own attributes; one /Pages node (ReportLab, Word).

    ``wrong_parent_at``: that page names the catalog as its /Parent (qpdf repairs that in memory only).
    """
    pdf = RawPdf()
    catalog, tree = pdf.reserve(), pdf.reserve()
    font = pdf.add(FONT)
    kids = []
    for n in range(pages):
        content = pdf.stream(_text(_page_lines(n)), flate_layers=1)
        parent = catalog if n == wrong_parent_at else tree
        kids.append(
            pdf.add(
                f"<< /Type /Page /Parent {parent} 0 R /MediaBox {A4} /Resources << /Font << /F1 {font} 0 R >> >> "
                f"/Contents {content} 0 R >>"
            )
        )
    pdf.set(tree, f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>")
    pdf.set(catalog, f"<< /Type /Catalog /Pages {tree} 0 R >>")
    return pdf.build(catalog)


def nested(
    pages: int = 12, *, fan: int = 3, inherit: str = "", leaf_box: bool = True, resources_extra: str = ""
) -> bytes:
    """A root over intermediate /Pages nodes of ``fan`` pages each.

    ``inherit``: "" (nothing inherited), "root-direct" (LibreOffice: direct /MediaBox and /Resources on the root),
    "root-indirect" (the same as indirect objects), "levels" (/Resources on the root, /MediaBox A5 and /Rotate 90 on
    every second intermediate node, a page-level /MediaBox overriding it on the first page of each node).
    """
    pdf = RawPdf()
    catalog, root = pdf.reserve(), pdf.reserve()
    font = pdf.add(FONT)
    resources = f"<< {resources_extra}/Font << /F1 {font} 0 R >> >>"
    nodes: list[int] = []
    for start in range(0, pages, fan):
        node = pdf.reserve()
        kids = []
        for n in range(start, min(start + fan, pages)):
            content = pdf.stream(_text(_page_lines(n)), flate_layers=1)
            own = ""
            if not inherit:
                own = f"/MediaBox {A4} /Resources {resources} "
            elif inherit == "levels" and n == start:
                own = f"/MediaBox {A4} "
            elif leaf_box and inherit != "levels":
                own = ""
            kids.append(pdf.add(f"<< /Type /Page /Parent {node} 0 R {own}/Contents {content} 0 R >>"))
        extra = ""
        if inherit == "levels" and len(nodes) % 2 == 1:
            extra = f"/MediaBox {A5} /Rotate 90 "
        pdf.set(
            node,
            f"<< /Type /Pages /Parent {root} 0 R {extra}/Kids [{' '.join(f'{k} 0 R' for k in kids)}] "
            f"/Count {len(kids)} >>",
        )
        nodes.append(node)
    root_extra = ""
    if inherit == "root-direct":
        root_extra = f"/MediaBox {A4} /Resources {resources} "
    elif inherit == "root-indirect":
        box, res = pdf.add(A4), pdf.add(resources)
        root_extra = f"/MediaBox {box} 0 R /Resources {res} 0 R "
    elif inherit == "levels":
        root_extra = f"/MediaBox {A4} /Resources {resources} "
    pdf.set(
        root,
        f"<< /Type /Pages {root_extra}/Kids [{' '.join(f'{n} 0 R' for n in nodes)}] /Count {pages} >>",
    )
    pdf.set(catalog, f"<< /Type /Catalog /Pages {root} 0 R >>")
    return pdf.build(catalog)


def many_fonts_on_the_root(pages: int = 6, fonts: int = 30) -> bytes:
    """One direct /Resources on the root naming 30 fonts; page n uses only /F<n>: each page gets pruned."""
    pdf = RawPdf()
    catalog, root = pdf.reserve(), pdf.reserve()
    names = " ".join(
        f"/F{i} {pdf.add(f'<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Name /F{i} >>')} 0 R"
        for i in range(fonts)
    )
    kids = []
    for n in range(pages):
        ops = f"BT /F{n} 11 Tf 60 780 Td (Kontakt-Nr.: K-{n:06d} Schrift F{n}) Tj ET".encode()
        content = pdf.stream(ops, flate_layers=1)
        kids.append(pdf.add(f"<< /Type /Page /Parent {root} 0 R /Contents {content} 0 R >>"))
    pdf.set(
        root,
        f"<< /Type /Pages /MediaBox {A4} /Resources << /Font << {names} >> >> "
        f"/Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {pages} >>",
    )
    pdf.set(catalog, f"<< /Type /Catalog /Pages {root} 0 R >>")
    return pdf.build(catalog)


def page_listed_twice() -> bytes:
    """The first page object stands twice in /Kids (qpdf makes a copy of it, an object the file does not have)."""
    data = flat(4)  # objects: 1 catalog, 2 tree, 3 font, then content and page in turns: pages are 5, 7, 9, 11
    twice = data.replace(b"/Kids [5 0 R 7 0 R", b"/Kids [5 0 R 5 0 R", 1)
    assert twice != data
    return twice


def wrong_parent() -> bytes:
    return flat(3, wrong_parent_at=1)


def page_without_type() -> bytes:
    return flat(3).replace(b"<< /Type /Page /Parent", b"<< /Parent", 1)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(data)
    return path


def _pages_of(part: bytes) -> list[tuple[str, tuple[float, float], int]]:
    """Text, size and rotation of every page as a reader shows them."""
    doc = pdfium.PdfDocument(part)
    try:
        out = []
        for page in doc:
            textpage = page.get_textpage()
            out.append((textpage.get_text_range().strip(), page.get_size(), page.get_rotation()))
            textpage.close()
            page.close()
        return out
    finally:
        doc.close()


def _full_and_batch(path: Path, ranges: list[tuple[int, int]]) -> tuple[list[bytes], list[bytes]]:
    objects = plain_page_objects(path, len(pikepdf.open(path).pages))
    assert objects is not None
    full = PartWriter(path, [])
    try:
        want = [full.write(first, last)[0] for first, last in ranges]
    finally:
        full.close()
    got = []
    for first, last in ranges:  # one batch per part: the smallest batches, the most re-opening
        batch = PartWriter(path, [], {i: objects[i] for i in range(first, last + 1)})
        try:
            got.append(batch.write(first, last)[0])
        finally:
            batch.close()
    return want, got


PAIRS = [(0, 1), (2, 4), (5, 5), (6, 8), (9, 11)]

EXACT: dict[str, Callable[[], bytes]] = {"flat": flat, "nested": nested}
INHERITED: dict[str, Callable[[], bytes]] = {
    "root-direct": lambda: nested(inherit="root-direct"),
    "root-indirect": lambda: nested(inherit="root-indirect"),
    "levels": lambda: nested(inherit="levels"),
}


@pytest.mark.parametrize("shape", sorted(EXACT))
def test_a_batch_cuts_byte_identical_parts_when_nothing_is_inherited(tmp_path: Path, shape: str) -> None:
    want, got = _full_and_batch(_write(tmp_path, shape, EXACT[shape]()), PAIRS)
    assert got == want


@pytest.mark.parametrize("shape", sorted(INHERITED))
def test_a_batch_gives_every_page_what_it_inherits(tmp_path: Path, shape: str) -> None:
    """Inherited attributes: the same pages for a reader (text, size, rotation) as the full walk."""
    want, got = _full_and_batch(_write(tmp_path, shape, INHERITED[shape]()), PAIRS)
    assert [_pages_of(part) for part in got] == [_pages_of(part) for part in want]
    seen = [page for part in got for page in _pages_of(part)]
    assert all(f"K-{n:06d}" in text for n, (text, _, _) in enumerate(seen)), seen  # fonts came along
    if shape == "levels":  # the nearest ancestor wins, a page's own value hides it
        sizes = {n: (size, rotation) for n, (_, size, rotation) in enumerate(seen)}  # size as shown, i.e. rotated
        assert sizes[3] == ((842.0, 595.0), 90)  # own /MediaBox A4, /Rotate of node 2
        assert sizes[4] == ((595.0, 420.0), 90)  # /MediaBox A5 and /Rotate of node 2
        assert sizes[6] == ((595.0, 842.0), 0)  # node 3 carries nothing: the root's A4


def test_pruning_one_page_never_takes_resources_from_another(tmp_path: Path) -> None:
    """Thirty fonts inherited from one direct dictionary: each page is pruned to its own font, and every page of a
    batch still finds its font (a shared copy pruned for page 1 would leave page 2 blank)."""
    path = _write(tmp_path, "fonts", many_fonts_on_the_root())
    objects = plain_page_objects(path, 6)
    assert objects is not None
    writer = PartWriter(path, [], dict(enumerate(objects)))
    try:
        parts = [writer.write(n, n)[0] for n in range(6)]
    finally:
        writer.close()
    for n, part in enumerate(parts):
        [(text, _, _)] = _pages_of(part)
        assert f"Schrift F{n}" in text
        with pikepdf.open(io.BytesIO(part)) as cut:
            assert set(cut.pages[0].Resources.Font.keys()) == {f"/F{n}"}


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("page listed twice", page_listed_twice),
        ("wrong parent", wrong_parent),
        ("page tree loop", page_tree_loop),
        ("page without type", page_without_type),
    ],
)
def test_irregular_trees_keep_the_full_walk(tmp_path: Path, name: str, make: Callable[[], bytes]) -> None:
    path = _write(tmp_path, name.replace(" ", "-"), make())
    try:
        count = len(pikepdf.open(path).pages)
    except pikepdf.PdfError:
        count = 0
    assert plain_page_objects(path, count) is None


def test_the_input_check_reports_the_page_objects_of_a_plain_tree(tmp_path: Path) -> None:
    path = _write(tmp_path, "flat", flat(5))
    report = inspect_source(str(path), "flat.pdf", Budgets())
    with pikepdf.open(path) as pdf:
        assert report.page_objects == tuple(page.obj.objgen for page in pdf.pages)
    irregular = inspect_source(str(_write(tmp_path, "twice", page_listed_twice())), "twice.pdf", Budgets())
    assert irregular.page_objects is None


def test_ids_that_do_not_hold_fall_back_to_the_full_walk(tmp_path: Path) -> None:
    """A batch whose ids name no page (e.g. a tree that changed) is cut by the full walk, with the same result."""
    path = _write(tmp_path, "flat", flat(4))
    with pytest.raises(NotPlainError):
        PartWriter(path, [], {0: (3, 0), 1: (4, 0)})  # 3 0 R is the font, 4 0 R a content stream
    jobs = (CutJob(0, 0, 1, need_thumbnail=False), CutJob(1, 2, 3, need_thumbnail=False))
    good = cut_parts(str(path), (), jobs, str(tmp_path), 60, 10**9, True)
    good_hashes = [r.sha256 for r in good]
    bogus = {0: (3, 0), 1: (4, 0), 2: (3, 0), 3: (4, 0)}
    fallback = cut_parts(str(path), (), jobs, str(tmp_path), 60, 10**9, True, bogus)
    assert [r.sha256 for r in fallback] == good_hashes


def test_a_batch_leaves_no_document_open_in_the_worker(tmp_path: Path) -> None:
    """With page ids, the worker holds neither qpdf's nor pdfium's document after the batch (memory per batch)."""
    path = _write(tmp_path, "flat", flat(4))
    objects = plain_page_objects(path, 4)
    assert objects is not None
    jobs = (CutJob(0, 0, 1, need_thumbnail=True), CutJob(1, 2, 3, need_thumbnail=False))
    results = cut_parts(str(path), (), jobs, str(tmp_path), 60, 10**9, False, dict(enumerate(objects)))
    assert results[0].thumbnail is not None
    assert pdf_adapter._WORKER_WRITER is None
    assert scan_adapter._WORKER_DOC is None
    # without ids the writer stays open for the next batch of the same document, as before
    cut_parts(str(path), (), jobs, str(tmp_path), 60, 10**9, False)
    assert pdf_adapter._WORKER_WRITER is not None
    pdf_adapter.release_writer()


def test_attachments_follow_every_part_in_a_batch(tmp_path: Path) -> None:
    path = _write(tmp_path, "flat", flat(4))
    attachment = _write(tmp_path, "beilage", nested(2, fan=2, inherit="root-direct"))
    objects = plain_page_objects(path, 4)
    assert objects is not None
    full = PartWriter(path, [attachment])
    batch = PartWriter(path, [attachment], {i: objects[i] for i in (2, 3)})
    try:
        assert batch.write(2, 3)[0] == full.write(2, 3)[0]
    finally:
        full.close()
        batch.close()


def test_the_sandbox_can_return_freed_memory_to_the_system() -> None:
    trim = _heap_trimmer()
    assert trim is not None  # glibc (the images are Debian-based): workers give a closed document's memory back
    assert trim(0) in (0, 1)


def test_finished_sandbox_tasks_are_not_kept_by_a_running_split() -> None:
    """A finished task's future holds its result (page facts of a whole range): a split keeps only running ones."""
    from smartpost_splitter.application import _Run

    done: Future[int] = Future()
    done.set_result(1)
    running: Future[int] = Future()
    run = _Run.__new__(_Run)
    run.in_flight = [done, running]
    newer: Future[int] = Future()
    run.track(newer)
    assert run.in_flight == [running, newer]


def test_a_deeply_nested_inherited_attribute_is_cut_the_old_way(tmp_path: Path) -> None:
    """An inherited /Resources nested 200 levels deep is not copied page by page: the batch falls back."""
    deep = "/Deep " + "<< /X " * 200 + "1" + " >>" * 200 + " "
    path = _write(tmp_path, "deep", nested(4, fan=2, inherit="root-direct", resources_extra=deep))
    count = len(pikepdf.open(path).pages)
    objects = plain_page_objects(path, count)
    assert objects is not None
    with pytest.raises(NotPlainError):
        PartWriter(path, [], {0: objects[0]})
    jobs = (CutJob(0, 0, 1, need_thumbnail=False),)
    assert cut_parts(str(path), (), jobs, str(tmp_path), 60, 10**9, True, {0: objects[0], 1: objects[1]})


# -- found by review: what the shortcut must hand to the full walk --------------------------------------------------


def _root_inherits(root_extra: str, page_own: str = "", pages: int = 2) -> bytes:
    """Pages inheriting /MediaBox and /Resources from the root; the first page carries ``page_own`` too."""
    pdf = RawPdf()
    catalog, root = pdf.reserve(), pdf.reserve()
    font = pdf.add(FONT)
    kids = []
    for n in range(pages):
        content = pdf.stream(_text(_page_lines(n)))
        own = page_own.replace("FONT", f"{font} 0 R") if n == 0 else ""
        kids.append(pdf.add(f"<< /Type /Page /Parent {root} 0 R {own}/Contents {content} 0 R >>"))
    pdf.set(
        root,
        f"<< /Type /Pages /MediaBox {A4} /Resources << /Font << /F1 {font} 0 R >> {root_extra}>> "
        f"/Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {pages} >>",
    )
    pdf.set(catalog, f"<< /Type /Catalog /Pages {root} 0 R >>")
    return pdf.build(catalog)


def _cut_both_ways(tmp_path: Path, name: str, data: bytes, pages: int) -> tuple[list[str], list[str]]:
    path = _write(tmp_path, name, data)
    objects = plain_page_objects(path, pages)
    assert objects is not None
    jobs = (CutJob(0, 0, pages - 1, need_thumbnail=False),)
    full = cut_parts(str(path), (), jobs, str(tmp_path), 60, 10**9, True)
    batch = cut_parts(str(path), (), jobs, str(tmp_path), 60, 10**9, True, dict(enumerate(objects)))
    return [r.sha256 for r in full], [r.sha256 for r in batch]


def test_a_huge_inherited_value_is_not_copied_into_every_page(tmp_path: Path) -> None:
    """A direct array of 30,000 numbers in the root's /Resources: copied per page it would make every part (and the
    worker's memory) grow with pages x size; beyond the copy budget the batch is cut by the full walk."""
    big = "/ProcSet [" + " ".join(["0"] * 30_000) + "] "
    full, batch = _cut_both_ways(tmp_path, "huge", _root_inherits(big, pages=20), 20)
    assert batch == full


def test_a_name_qpdf_cannot_copy_by_hand_falls_back(tmp_path: Path) -> None:
    """A non-UTF-8 key (/F#E9) in an inherited dictionary: pikepdf cannot rebuild it, the full walk cuts it."""
    full, batch = _cut_both_ways(tmp_path, "odd-name", _root_inherits("/ExtGState << /G#FF << /CA 1 >> >> "), 2)
    assert batch == full


@pytest.mark.parametrize(
    "page_own",
    [
        "/MediaBox [/X 0 595 842] ",  # invalid, covered by the root's valid one in the real tree
        "/MediaBox [0 0 595 842 0] ",
    ],
)
def test_a_page_qpdf_would_repair_only_in_the_rewritten_tree_falls_back(tmp_path: Path, page_own: str) -> None:
    full, batch = _cut_both_ways(tmp_path, "repair", _root_inherits("", page_own), 2)
    assert batch == full
