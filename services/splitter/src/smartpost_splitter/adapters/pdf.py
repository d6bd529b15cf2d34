"""PDF work that runs inside the sandbox (see :mod:`.sandbox`): input checks, cutting and sanitising parts.

Every function here that takes a path reads an uploaded document and is therefore only ever called in a sandbox
worker process (``resource.setrlimit`` limits, wall-clock budget), never in the service process.

Tuning follows /work/shared/docs/pdf-performance.md: parts are saved without recompressing streams. Memory: qpdf
keeps every object it has parsed until the document is closed, and listing the pages of a 10,000-page source parses
every page (~40 MB). When the page tree is plain (see :func:`plain_page_objects`), a cut batch therefore opens the
source without walking it and reaches its pages by object number (:class:`PartWriter` with ``page_objects``): the
memory of a batch is that of its own pages, and the parts are byte-identical to those of a full walk. Otherwise the
source is opened once per worker with its whole page list (``pdf.pages[a:b]`` is O(n) per slice).
Page scanning itself (pypdfium2) lives in :mod:`smartpost_splitter.adapters.scan`.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pikepdf
import pypdfium2 as pdfium

from smartpost_shared.vocabulary import SplitFailureReason
from smartpost_splitter.adapters.scan import _document as _pdfium_document
from smartpost_splitter.adapters.scan import grey_png, release_document, render_thumbnail, thumbnail_of
from smartpost_splitter.domain import Failure
from smartpost_splitter.limits import Budgets, page_too_large, too_deeply_nested, too_many_pages, too_much_data

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

__all__ = [
    "CutJob",
    "CutResult",
    "NotPlainError",
    "ObjGen",
    "OutputBudgetError",
    "PartWriter",
    "PdfRejectedError",
    "SourceReport",
    "cut_parts",
    "grey_png",
    "inspect_source",
    "plain_page_objects",
    "thumbnail_of",
]


class PdfRejectedError(Exception):
    """The file cannot be split; ``failure`` says why in words staff understand."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.reason)
        self.failure = failure

    def __reduce__(self) -> tuple[Any, ...]:  # travels from the sandbox worker to the service process
        return (PdfRejectedError, (self.failure,))


class OutputBudgetError(Exception):
    """The parts written so far exceed the stored-bytes budget of the document."""

    def __init__(self, stored: int) -> None:
        super().__init__(stored)
        self.stored = stored


ObjGen = tuple[int, int]  # (object number, generation) of a PDF object


@dataclass(frozen=True)
class SourceReport:
    page_count: int
    stream_bytes: int = 0
    # Active content of the document as a whole that no part carries (German labels, e.g. "JavaScript").
    removed: tuple[str, ...] = ()
    # The pages' object ids in page order when the page tree is plain (:func:`plain_page_objects`), else None.
    page_objects: tuple[ObjGen, ...] | None = None


# ----------------------------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------------------------

# A file system path (two or more segments, e.g. /tmp/splitter-1-x/source.pdf); PDF names like /Pages stay.
_PATHLIKE = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.@+~-]+){2,}[\\/]?")


def clean_detail(text: str, path: Path | str | None, label: str) -> str:
    """A qpdf/pdfium message without server paths (the temporary file becomes the document's name)."""
    if path is not None:
        text = text.replace(str(path), label)
    return _PATHLIKE.sub("…", text)


def _short(exc: BaseException, path: Path | str | None, label: str) -> str:
    text = str(exc).strip().splitlines()
    return clean_detail((text[-1] if text else type(exc).__name__)[:200], path, label)


def inspect_source(path: str, label: str, budgets: Budgets) -> SourceReport:
    """Reject what cannot be split before any work: empty, not a PDF, corrupt, encrypted, no pages, over budget.

    Junk before ``%PDF-`` is accepted as qpdf and pdfium accept it (the header anywhere in the first 1,024 bytes).
    The report names the pages' object ids when the page tree is plain (:func:`plain_page_objects`), asked only after
    the checks' own open document is gone, so that the two never sit in memory together.
    """
    report = _check_source(path, label, budgets)
    return replace(report, page_objects=plain_page_objects(Path(path), report.page_count))


def _check_source(path: str, label: str, budgets: Budgets) -> SourceReport:  # noqa: C901 - one branch per reason
    source = Path(path)
    size = source.stat().st_size
    if size == 0:
        raise PdfRejectedError(Failure(SplitFailureReason.EMPTY_FILE, f"„{label}“ ist leer (0 Byte)."))
    with source.open("rb") as fh:
        head = fh.read(1024)
    if b"%PDF-" not in head:
        raise PdfRejectedError(
            Failure(SplitFailureReason.NOT_A_PDF, f"„{label}“ ist keine PDF-Datei (Dateiinhalt ist kein PDF).")
        )
    try:
        with pikepdf.open(source) as pdf:
            if pdf.is_encrypted:
                raise PdfRejectedError(_encrypted(label))
            try:
                report = _inspect_open(pdf, label, budgets)
            except pikepdf.PdfError as exc:
                if any("nested" in w.lower() for w in pdf.get_warnings()):
                    raise PdfRejectedError(too_deeply_nested(label)) from exc
                raise
    except pikepdf.PasswordError as exc:
        raise PdfRejectedError(_encrypted(label)) from exc
    except RecursionError as exc:
        raise PdfRejectedError(too_deeply_nested(label)) from exc
    except pikepdf.PdfError as exc:
        if "nested" in str(exc).lower() or too_deep(source):
            raise PdfRejectedError(too_deeply_nested(label)) from exc
        raise PdfRejectedError(
            Failure(
                SplitFailureReason.CORRUPT,
                f"„{label}“ ist beschädigt und konnte nicht repariert werden ({_short(exc, source, label)}). "
                "Bitte das Dokument neu exportieren.",
            )
        ) from exc
    try:
        doc = pdfium.PdfDocument(str(source))
    except pdfium.PdfiumError as exc:
        raise PdfRejectedError(
            Failure(
                SplitFailureReason.CORRUPT,
                f"„{label}“ ist beschädigt und nicht lesbar ({_short(exc, source, label)}).",
            )
        ) from exc
    try:
        if len(doc) != report.page_count:
            raise PdfRejectedError(
                Failure(
                    SplitFailureReason.CORRUPT,
                    f"„{label}“ ist beschädigt: die Seitenzahl ist nicht eindeutig ({report.page_count} bzw. "
                    f"{len(doc)}).",
                )
            )
    finally:
        doc.close()
    return report


# Page attributes a page inherits from its /Pages ancestors (ISO 32000-1, 7.7.3.4).
INHERITABLE = ("/Resources", "/MediaBox", "/CropBox", "/Rotate")
MAX_TREE_DEPTH = 64


def plain_page_objects(path: Path, page_count: int) -> tuple[ObjGen, ...] | None:
    """The object ids of the pages in page order, if the page tree is plain; None if it is not.

    Plain: qpdf read it without a warning; every node is a ``/Pages`` dictionary and every leaf a ``/Page``
    dictionary, each listed once, each with the node it hangs in as its ``/Parent`` (so a page's ``/Parent`` chain
    is its path in the tree, along which a cut batch finds the attributes the page inherits); the leaves are exactly
    qpdf's own page list. Only then may a cut batch take pages by object number and get the same pages as a full
    walk; anything else (repaired, shared or odd trees) keeps the full walk.
    """
    try:
        with pikepdf.open(path, inherit_page_attributes=False) as pdf:
            leaves = _plain_leaves(pdf)
            if leaves is None or len(leaves) != page_count:
                return None
            if [page.obj.objgen for page in pdf.pages] != leaves or pdf.get_warnings():
                return None
            return tuple(leaves)
    except (pikepdf.PdfError, RecursionError, ValueError, TypeError, KeyError):
        return None


def _plain_leaves(pdf: pikepdf.Pdf) -> list[ObjGen] | None:
    root = pdf.Root.get("/Pages")
    if not isinstance(root, pikepdf.Dictionary) or not root.is_indirect:
        return None
    leaves: list[ObjGen] = []
    seen: set[ObjGen] = {root.objgen}
    stack: list[tuple[pikepdf.Dictionary, Iterator[Any]]] = []
    node: pikepdf.Dictionary | None = root
    while node is not None or stack:
        if node is not None:
            kids = node.get("/Kids")
            if node.get("/Type") != "/Pages" or not isinstance(kids, pikepdf.Array) or len(stack) >= MAX_TREE_DEPTH:
                return None
            stack.append((node, iter(kids)))
            node = None
            continue
        parent, kids_left = stack[-1]
        kid = next(kids_left, None)
        if kid is None:
            stack.pop()
            continue
        if not isinstance(kid, pikepdf.Dictionary) or not kid.is_indirect or kid.objgen in seen:
            return None
        seen.add(kid.objgen)
        owner = kid.get("/Parent")
        if not isinstance(owner, pikepdf.Dictionary) or not owner.is_indirect or owner.objgen != parent.objgen:
            return None
        if kid.get("/Type") == "/Pages":
            node = kid
        elif kid.get("/Type") == "/Page" and "/Kids" not in kid:
            leaves.append(kid.objgen)
        else:
            return None
    return leaves


# qpdf drops objects nested deeper than 500 levels (and pdfium's limit is lower); nothing real comes close.
MAX_NESTING = 500
_STREAM_DATA = re.compile(rb"stream\r?\n.*?endstream", re.DOTALL)
_BRACKETS = re.compile(rb"\[|\]|<<|>>")


def too_deep(path: Path) -> bool:
    """Whether arrays/dictionaries in the file nest deeper than :data:`MAX_NESTING` (stream data skipped).

    Only asked after qpdf failed: it tells "deeply nested" apart from other damage.
    """
    data = _STREAM_DATA.sub(b"", path.read_bytes())
    depth = 0
    for match in _BRACKETS.finditer(data):
        token = match.group()
        depth += 1 if token in {b"[", b"<<"} else -1
        depth = max(depth, 0)
        if depth > MAX_NESTING:
            return True
    return False


def _inspect_open(pdf: pikepdf.Pdf, label: str, budgets: Budgets) -> SourceReport:
    pages = len(pdf.pages)
    if pages == 0:
        if any("nested" in w.lower() for w in pdf.get_warnings()):
            raise PdfRejectedError(too_deeply_nested(label))
        raise PdfRejectedError(Failure(SplitFailureReason.NO_PAGES, f"„{label}“ enthält keine Seiten."))
    if pages > budgets.max_pages:
        raise PdfRejectedError(too_many_pages(label, pages, budgets))
    for number, page in enumerate(pdf.pages, start=1):
        box = page.mediabox
        width, height = abs(float(box[2]) - float(box[0])), abs(float(box[3]) - float(box[1]))
        unit = float(page.obj.get("/UserUnit", 1) or 1)
        if max(width, height) * unit > budgets.max_page_side_pt:
            raise PdfRejectedError(page_too_large(label, number, width * unit, height * unit))
    stream_bytes = decoded_stream_bytes(pdf, budgets.max_stream_bytes)
    if stream_bytes > budgets.max_stream_bytes:
        raise PdfRejectedError(too_much_data(label, budgets))
    return SourceReport(page_count=pages, stream_bytes=stream_bytes, removed=document_active_content(pdf))


def _encrypted(label: str) -> Failure:
    return Failure(
        SplitFailureReason.ENCRYPTED,
        f"„{label}“ ist verschlüsselt bzw. passwort- oder schreibgeschützt. Bitte ohne Schutz exportieren "
        "und erneut hochladen.",
    )


def _filters(stream: pikepdf.Stream) -> list[str]:
    value = stream.get("/Filter")
    if value is None:
        return []
    if isinstance(value, pikepdf.Array):
        return [str(v) for v in value]
    return [str(value)]


def _inflate(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decompress a zlib stream piece by piece (never more than 1 MB at once), stopping quietly on bad data."""
    decoder = zlib.decompressobj()
    try:
        for chunk in chunks:
            data = chunk
            while data and not decoder.eof:
                out = decoder.decompress(data, 1 << 20)
                if out:
                    yield out
                data = decoder.unconsumed_tail
            if decoder.eof:
                return
    except zlib.error:
        return


_IMAGE_COMPONENTS = {"/DeviceGray": 1, "/CalGray": 1, "/DeviceRGB": 3, "/CalRGB": 3, "/Lab": 3, "/DeviceCMYK": 4}


def _image_bytes(stream: pikepdf.Stream) -> int:
    """What decoding an image costs: width x height x components x bits per component (readers decode it all)."""
    try:
        width, height = int(stream.get("/Width", 0)), int(stream.get("/Height", 0))
        bits = int(stream.get("/BitsPerComponent", 8) or 8)
    except (TypeError, ValueError):
        return 0
    space = stream.get("/ColorSpace")
    components = _IMAGE_COMPONENTS.get(str(space), 4) if not isinstance(space, pikepdf.Array) else 4
    if stream.get("/ImageMask", False):
        components, bits = 1, 1
    return max(0, width) * max(0, height) * components * max(1, bits) // 8


def decoded_stream_bytes(pdf: pikepdf.Pdf, budget: int) -> int:
    """Sum of the decoded sizes of all streams, counted without holding them; stops early above ``budget``.

    Flate chains (the double-Flate bomb) are inflated piece by piece; images count their pixels; other filters
    are decoded by qpdf (bounded by the worker's address-space limit).
    """
    total = 0
    for obj in pdf.objects:
        if isinstance(obj, pikepdf.Stream):
            try:
                total += _stream_bytes(obj, budget - total)
            except (pikepdf.PdfError, UnicodeDecodeError, ValueError, RuntimeError):
                # a stream no reader can decode (seen in fuzzed files: qpdf's error text itself fails to decode)
                total += int(obj.get("/Length", 0) or 0) if isinstance(obj.get("/Length"), int) else 0
            if total > budget:
                break
    return total


def _stream_bytes(stream: pikepdf.Stream, budget: int) -> int:
    if stream.get("/Subtype") == "/Image":
        return _image_bytes(stream)
    filters = _filters(stream)
    if not filters:
        return int(stream.get("/Length", 0) or 0)
    if all(f == "/FlateDecode" for f in filters):
        pieces: Iterable[bytes] = [stream.read_raw_bytes()]
        for _ in filters:
            pieces = _inflate(pieces)
        total = 0
        for piece in pieces:
            total += len(piece)
            if total > budget:
                break
        return total
    if all(f in _CHEAP_FILTERS for f in filters):
        try:
            return len(stream.read_bytes())
        except pikepdf.PdfError:
            return len(stream.read_raw_bytes())
    return len(stream.read_raw_bytes())


_CHEAP_FILTERS = {"/FlateDecode", "/ASCIIHexDecode", "/ASCII85Decode", "/LZWDecode", "/RunLengthDecode"}


def document_active_content(pdf: pikepdf.Pdf) -> tuple[str, ...]:
    """Active content of the document catalogue (parts never carry it: they are built from the pages alone)."""
    root = pdf.Root
    found: list[str] = []
    if "/OpenAction" in root:
        found.append("Aktion beim Öffnen (/OpenAction)")
    if "/AA" in root:
        found.append("Dokumentaktionen (/AA)")
    names = root.get("/Names")
    if isinstance(names, pikepdf.Dictionary):
        if "/JavaScript" in names:
            found.append("JavaScript")
        if "/EmbeddedFiles" in names:
            found.append("eingebettete Dateien")
    form = root.get("/AcroForm")
    if isinstance(form, pikepdf.Dictionary) and "/XFA" in form:
        found.append("XFA-Formular")
    return tuple(found)


# ----------------------------------------------------------------------------------------------------------------
# Sanitising parts
# ----------------------------------------------------------------------------------------------------------------

# Actions that run code, start programs, send data or open other files; links (/URI, /GoTo, /Named) stay.
ACTIVE_ACTIONS = {
    "/JavaScript": "JavaScript",
    "/Launch": "Programmstart (/Launch)",
    "/SubmitForm": "Formularversand",
    "/ImportData": "Datenimport",
    "/ResetForm": "Formularaktion",
    "/GoToE": "Sprung in eingebettete Datei",
    "/GoToR": "Sprung in andere Datei",
    "/RichMediaExecute": "Multimedia-Aktion",
    "/Rendition": "Multimedia-Aktion",
    "/Movie": "Multimedia-Aktion",
    "/Sound": "Multimedia-Aktion",
    "/Hide": "Formularaktion",
}
# Annotations that carry files or players; they go entirely.
ACTIVE_ANNOTATIONS = {
    "/FileAttachment": "Dateianhang-Anmerkung",
    "/RichMedia": "Multimedia-Anmerkung",
    "/Screen": "Multimedia-Anmerkung",
    "/Movie": "Multimedia-Anmerkung",
    "/Sound": "Multimedia-Anmerkung",
    "/3D": "3D-Anmerkung",
}


def _action_is_active(action: Any, depth: int = 0) -> str | None:
    if not isinstance(action, pikepdf.Dictionary) or depth > 32:
        return None
    kind = str(action.get("/S", ""))
    if kind in ACTIVE_ACTIONS:
        return ACTIVE_ACTIONS[kind]
    follow = action.get("/Next")
    for nxt in follow if isinstance(follow, pikepdf.Array) else [follow]:
        found = _action_is_active(nxt, depth + 1)
        if found:
            return found
    return None


def sanitize(pdf: pikepdf.Pdf) -> Counter[str]:
    """Remove everything active from a part (pages copied from the upload); return what was removed, counted."""
    removed: Counter[str] = Counter()
    for page in pdf.pages:
        obj = page.obj
        if "/AA" in obj:
            del obj["/AA"]
            removed["Seitenaktionen (/AA)"] += 1
        if "/AF" in obj:
            del obj["/AF"]
            removed["eingebettete Dateien"] += 1
        annots = obj.get("/Annots")
        if isinstance(annots, pikepdf.Array):
            kept = pikepdf.Array()
            for annot in annots:
                subtype = str(annot.get("/Subtype", "")) if isinstance(annot, pikepdf.Dictionary) else ""
                if subtype in ACTIVE_ANNOTATIONS:
                    removed[ACTIVE_ANNOTATIONS[subtype]] += 1
                    continue
                kept.append(annot)
            if len(kept) != len(annots):
                obj["/Annots"] = kept
    # Everything else reachable from the part's pages (annotations, form fields and their parents, actions in
    # /Next chains, file specifications): a generic sweep over the part's own objects.
    for item in pdf.objects:
        if isinstance(item, (pikepdf.Dictionary, pikepdf.Stream)):
            _sweep(item, removed)
    return removed


def _sweep(obj: pikepdf.Dictionary | pikepdf.Stream, removed: Counter[str]) -> None:
    if "/AA" in obj:
        del obj["/AA"]
        removed["Aktionen (/AA)"] += 1
    for key in ("/A", "/PA"):
        action = obj.get(key)
        label = _action_is_active(action)
        if label:
            del obj[key]
            removed[label] += 1
    if "/JS" in obj:
        del obj["/JS"]
        removed["JavaScript"] += 1
    if "/EF" in obj:  # a file specification with an embedded file
        del obj["/EF"]
        removed["eingebettete Dateien"] += 1
    if "/XFA" in obj:
        del obj["/XFA"]
        removed["XFA-Formular"] += 1
    if str(obj.get("/S", "")) in ACTIVE_ACTIONS:
        # an action object reachable some other way (e.g. a link's /Next): make it inert
        for key in ("/F", "/Win", "/Mac", "/Unix", "/Fields", "/Next", "/T"):
            if key in obj:
                del obj[key]
        removed[ACTIVE_ACTIONS[str(obj.get("/S"))]] += 1
        obj["/S"] = pikepdf.Name("/GoTo")
        obj["/D"] = pikepdf.Array()


def removed_warning(removed: Iterable[str] | Counter[str]) -> str | None:
    """The German evidence line for a part (or document) from which active content was removed."""
    labels = sorted(set(removed))
    if not labels:
        return None
    return (
        "Aktive Inhalte entfernt (nicht im Brief enthalten): "
        + ", ".join(labels)
        + ". Bitte vor der Freigabe prüfen, ob der Brief vollständig ist."
    )


# ----------------------------------------------------------------------------------------------------------------
# Splitting
# ----------------------------------------------------------------------------------------------------------------


PRUNE_ABOVE_RESOURCES = 24


class PartWriter:
    """Cuts parts from one source, streams copied as stored.

    Without ``page_objects`` the source's whole page list is materialised once (the writer then serves every batch of
    the document in this worker). With ``page_objects`` (page index -> object id, from :func:`plain_page_objects`,
    only the pages of one batch) the source is opened without walking its page tree, and its root ``/Pages`` node is
    pointed at just these pages, in memory only: qpdf then parses, pushes attributes for and copies only them. A page
    that is not what the ids promise raises :class:`NotPlainError`; the caller falls back to the full walk.
    """

    def __init__(self, source: Path, attachments: list[Path], page_objects: Mapping[int, ObjGen] | None = None) -> None:
        self.path = str(source)
        self.attachments = tuple(str(a) for a in attachments)
        self.batch = page_objects is not None
        self._source = pikepdf.open(source, inherit_page_attributes=page_objects is None)
        try:
            self._pages = (
                self._batch_pages(page_objects) if page_objects is not None else dict(enumerate(self._source.pages))
            )
        except BaseException:
            self._source.close()
            raise
        self._attachments = [pikepdf.open(p) for p in attachments]
        self._attachment_pages = [list(a.pages) for a in self._attachments]
        self._pruned: set[int] = set()

    def _batch_pages(self, page_objects: Mapping[int, ObjGen]) -> dict[int, pikepdf.Page]:
        indexes = sorted(page_objects)
        objects = []
        budget = _CopyBudget(MAX_COPIED_PER_BATCH)
        for index in indexes:
            try:
                obj = self._source.get_object(page_objects[index])
            except (pikepdf.PdfError, ValueError, TypeError, KeyError) as exc:
                raise NotPlainError(f"page {index}: {exc}") from exc
            if not isinstance(obj, pikepdf.Dictionary) or obj.get("/Type") != "/Page" or "/Kids" in obj:
                raise NotPlainError(f"page {index}: object {page_objects[index]} is not a page")
            _push_inherited(obj, budget)
            objects.append(obj)
        root = self._source.Root.get("/Pages")
        if not isinstance(root, pikepdf.Dictionary):
            raise NotPlainError("no /Pages")
        root.Kids = pikepdf.Array(objects)
        root.Count = len(objects)
        for key in INHERITABLE:  # already on every page of the batch; left here, qpdf would push them once more
            if key in root:
                del root[key]
        listed = list(self._source.pages)
        if self._source.get_warnings():
            # qpdf "repaired" a page of the rewritten tree (e.g. an invalid /MediaBox that an ancestor's valid one
            # covered in the real tree): the full walk would not have changed it.
            raise NotPlainError("qpdf repaired a page of the batch")
        if [page.obj.objgen for page in listed] != [page_objects[i] for i in indexes]:
            raise NotPlainError("page list differs")
        return dict(zip(indexes, listed, strict=True))

    @property
    def attachment_page_count(self) -> int:
        return sum(len(p) for p in self._attachment_pages)

    def write(self, first: int, last: int) -> tuple[bytes, Counter[str]]:
        """Pages ``first``..``last`` (0-based, inclusive) plus every attachment, sanitised, as PDF bytes."""
        for index in range(first, last + 1):
            self._prune(index)
        out = pikepdf.Pdf.new()
        try:
            with warnings.catch_warnings():
                # pikepdf warns that form fields are not carried over: intended, parts carry no forms.
                warnings.simplefilter("ignore", pikepdf.exceptions.PageCopyWarning)
                out.pages.extend([self._pages[index] for index in range(first, last + 1)])
                for pages in self._attachment_pages:
                    out.pages.extend(pages)
            removed = sanitize(out)
            buffer = io.BytesIO()
            # deterministic_id: a re-run must produce byte-identical parts (same SHA-256 as the re-emitted event).
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", pikepdf.exceptions.PageCopyWarning)
                out.save(
                    buffer,
                    compress_streams=False,
                    object_stream_mode=pikepdf.ObjectStreamMode.generate,
                    deterministic_id=True,
                )
            return buffer.getvalue(), removed
        finally:
            out.close()

    def _prune(self, index: int) -> None:
        """Drop the resources page ``index`` does not use, if it names many (in memory; the upload is not saved).

        An export that writes one resource dictionary for the whole document (every image of 400 letters named on
        every page) would otherwise have all of it copied into every part: 4.3 MB became 1.68 GB. Pages with a
        handful of resources are left alone (parsing their content costs time and saves nothing).
        """
        if index in self._pruned:
            return
        self._pruned.add(index)
        page = self._pages[index]
        resources = page.obj.get("/Resources")
        if not isinstance(resources, pikepdf.Dictionary):
            return
        names = 0
        for kind in ("/XObject", "/Font", "/ExtGState", "/Pattern", "/Shading", "/ColorSpace", "/Properties"):
            group = resources.get(kind)
            if isinstance(group, pikepdf.Dictionary):
                names += len(group.keys())
        if names > PRUNE_ABOVE_RESOURCES:
            page.remove_unreferenced_resources()

    def close(self) -> None:
        for pdf in self._attachments:
            pdf.close()
        self._source.close()


@dataclass
class _CopyBudget:
    left: int

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise NotPlainError("inherited attributes too big to copy page by page")


# Objects copied for inherited direct values per batch. Typical: a few per page (a /MediaBox array, a /Resources
# dictionary naming a few fonts). A file whose root carries a huge direct value (100,000 numbers in an 8 KB upload)
# would otherwise be copied into every page: 10 MB parts, 2.5 GB of memory. Beyond the budget: the full walk.
MAX_COPIED_PER_BATCH = 20_000


def _push_inherited(page: pikepdf.Dictionary, budget: _CopyBudget) -> None:
    """Give ``page`` the attributes it inherits (the nearest ancestor's value), as qpdf's push down would.

    Unlike qpdf, which makes a shared direct value indirect (asking for a new object id makes qpdf parse the whole
    file: ~40 MB at 10,000 pages), each page gets its own copy of a direct array or dictionary: pruning one page's
    resources must never change another page's.
    """
    missing = [key for key in INHERITABLE if key not in page]
    node = page.get("/Parent")
    depth = 0
    while missing and isinstance(node, pikepdf.Dictionary):
        depth += 1
        if depth > MAX_TREE_DEPTH:
            raise NotPlainError("page tree deeper than expected")
        for key in [k for k in missing if k in node]:
            page[key] = _own_copy(node[key], budget)
            missing.remove(key)
        node = node.get("/Parent")


# Inherited resources nest a few levels (/Resources /Font /F1); deeper ones are cut the old way (full walk).
MAX_COPY_DEPTH = 32


def _own_copy(value: Any, budget: _CopyBudget, depth: int = 0) -> Any:
    """``value`` with every direct array and dictionary in it copied (indirect objects stay shared references)."""
    if depth > MAX_COPY_DEPTH:
        raise NotPlainError("inherited attribute nested too deeply")
    budget.spend()
    if isinstance(value, pikepdf.Object) and value.is_indirect:
        return value
    if isinstance(value, pikepdf.Array):
        return pikepdf.Array([_own_copy(item, budget, depth + 1) for item in value])
    if isinstance(value, pikepdf.Dictionary):
        return pikepdf.Dictionary({key: _own_copy(item, budget, depth + 1) for key, item in value.items()})
    return value


class NotPlainError(Exception):
    """The page ids of a plain page tree do not hold in this batch: cut it with the full walk instead."""


@dataclass(frozen=True)
class CutJob:
    index: int
    first: int  # 0-based source pages, inclusive
    last: int
    need_thumbnail: bool


@dataclass(frozen=True)
class CutResult:
    index: int
    path: str
    sha256: str
    size: int
    removed: tuple[str, ...]
    thumbnail: bytes | None


_WORKER_WRITER: PartWriter | None = None


def _writer(source: str, attachments: tuple[str, ...]) -> PartWriter:
    global _WORKER_WRITER  # noqa: PLW0603 - one open source per worker process, reused across its batches
    if _WORKER_WRITER is None or _WORKER_WRITER.path != source or _WORKER_WRITER.attachments != attachments:
        release_writer()
        _WORKER_WRITER = PartWriter(Path(source), [Path(a) for a in attachments])
    return _WORKER_WRITER


def release_writer() -> None:
    global _WORKER_WRITER  # noqa: PLW0603
    if _WORKER_WRITER is not None:
        _WORKER_WRITER.close()
        _WORKER_WRITER = None


def cut_parts(
    source: str,
    attachments: tuple[str, ...],
    jobs: tuple[CutJob, ...],
    out_dir: str,
    thumbnail_width: int,
    stored_budget_left: int,
    last: bool,
    page_objects: Mapping[int, ObjGen] | None = None,
) -> list[CutResult]:
    """Sandbox task: write the parts of ``jobs`` as files into ``out_dir``; thumbnails where asked.

    ``page_objects`` (the ids of the jobs' pages, from a plain page tree) lets the batch open only its own pages;
    the document is then closed again when the batch is done, so a worker's memory follows the batch, not the
    document. Whatever that shortcut cannot do (an id that names no page, a page qpdf would repair, an odd name, an
    inherited value too big to copy page by page), the full walk does as before, and fails as before on a broken
    file.
    """
    try:
        if page_objects:
            try:
                batch = PartWriter(Path(source), [Path(a) for a in attachments], page_objects)
            except MemoryError:
                raise
            except Exception:  # noqa: BLE001 - see the docstring: the full walk below
                batch = None
            if batch is not None:
                try:
                    return _cut(batch, source, jobs, out_dir, thumbnail_width, stored_budget_left)
                except (OutputBudgetError, MemoryError):
                    raise
                except Exception:  # noqa: BLE001, S110 - the full walk below cuts the same jobs again
                    pass
                finally:
                    batch.close()
                    release_document()
        return _cut(_writer(source, attachments), source, jobs, out_dir, thumbnail_width, stored_budget_left)
    finally:
        if last:
            release_writer()
            release_document()


def _cut(
    writer: PartWriter, source: str, jobs: tuple[CutJob, ...], out_dir: str, thumbnail_width: int, budget_left: int
) -> list[CutResult]:
    results: list[CutResult] = []
    written = 0
    for job in jobs:
        data, removed = writer.write(job.first, job.last)
        written += len(data)
        if written > budget_left:
            raise OutputBudgetError(written)
        path = Path(out_dir) / f"part-{job.index:05d}.pdf"
        path.write_bytes(data)
        thumbnail = (
            render_thumbnail(_pdfium_document(source), job.first, thumbnail_width) if job.need_thumbnail else None
        )
        results.append(
            CutResult(
                index=job.index,
                path=str(path),
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                removed=tuple(sorted(removed)),
                thumbnail=thumbnail,
            )
        )
    return results
