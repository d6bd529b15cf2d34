"""PDF work that runs inside the sandbox (see :mod:`.sandbox`): input checks, cutting and sanitising parts.

Every function here that takes a path reads an uploaded document and is therefore only ever called in a sandbox
worker process (``resource.setrlimit`` limits, wall-clock budget), never in the service process.

Tuning follows /work/shared/docs/pdf-performance.md: the source is opened once per worker, its page list is
materialised once (``pdf.pages[a:b]`` is O(n) per slice), and parts are saved without recompressing streams.
Page scanning itself (pypdfium2) lives in :mod:`smartpost_splitter.adapters.scan`.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pikepdf
import pypdfium2 as pdfium

from smartpost_shared.contracts.documents import SplitFailureReason
from smartpost_splitter.adapters.scan import _document as _pdfium_document
from smartpost_splitter.adapters.scan import grey_png, release_document, render_thumbnail, thumbnail_of
from smartpost_splitter.domain import Failure
from smartpost_splitter.limits import Budgets, page_too_large, too_deeply_nested, too_many_pages, too_much_data

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = [
    "CutJob",
    "CutResult",
    "OutputBudgetError",
    "PartWriter",
    "PdfRejectedError",
    "SourceReport",
    "cut_parts",
    "grey_png",
    "inspect_source",
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


@dataclass(frozen=True)
class SourceReport:
    page_count: int
    stream_bytes: int = 0
    # Active content of the document as a whole that no part carries (German labels, e.g. "JavaScript").
    removed: tuple[str, ...] = ()


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


def inspect_source(path: str, label: str, budgets: Budgets) -> SourceReport:  # noqa: C901 - one branch per reason
    """Reject what cannot be split before any work: empty, not a PDF, corrupt, encrypted, no pages, over budget.

    Junk before ``%PDF-`` is accepted as qpdf and pdfium accept it (the header anywhere in the first 1,024 bytes).
    """
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
    """Cuts parts from one source: opened once, page list materialised once, streams copied as stored."""

    def __init__(self, source: Path, attachments: list[Path]) -> None:
        self.path = str(source)
        self.attachments = tuple(str(a) for a in attachments)
        self._source = pikepdf.open(source)
        self._pages = list(self._source.pages)
        self._attachments = [pikepdf.open(p) for p in attachments]
        self._attachment_pages = [list(a.pages) for a in self._attachments]
        self._pruned: set[int] = set()

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
                out.pages.extend(self._pages[first : last + 1])
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
) -> list[CutResult]:
    """Sandbox task: write the parts of ``jobs`` as files into ``out_dir``; thumbnails where asked."""
    results: list[CutResult] = []
    written = 0
    try:
        writer = _writer(source, attachments)
        for job in jobs:
            data, removed = writer.write(job.first, job.last)
            written += len(data)
            if written > stored_budget_left:
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
    finally:
        if last:
            release_writer()
            release_document()
    return results
