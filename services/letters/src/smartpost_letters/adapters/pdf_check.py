"""Upload checks: is an uploaded file a PDF the splitter can work with? Checked at upload, not at split time.

Every problem of a file is found in one pass (empty, too large, not a PDF, damaged, encrypted, without pages), so
staff see all of them at once. Messages are German and name only the file as staff uploaded it: never a server
path or a library's exception text (those go to the log).
"""

from __future__ import annotations

import multiprocessing
import resource
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pikepdf

from smartpost_shared.logging import get_logger

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

log = get_logger(__name__)

PDF_MAGIC = b"%PDF-"


@dataclass(frozen=True)
class UploadProblem:
    filename: str
    code: str  # empty_file, too_large, not_a_pdf, corrupt, encrypted, no_pages
    message: str  # German, for staff

    def as_dict(self) -> dict[str, str]:
        return {"filename": self.filename, "code": self.code, "message": self.message}


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB" if size >= 1024 * 1024 else f"{size} Byte"


def check_upload(data: bytes, filename: str, *, max_bytes: int) -> list[UploadProblem]:
    """All problems of one uploaded file (empty list: the file can be attached)."""
    label = f"„{filename}“"
    if not data:
        return [UploadProblem(filename, "empty_file", f"{label} ist leer (0 Byte).")]
    if len(data) > max_bytes:
        return [
            UploadProblem(
                filename, "too_large", f"{label} ist zu groß (höchstens {_megabytes(max_bytes)} je Datei erlaubt)."
            )
        ]
    if PDF_MAGIC not in data[:1024]:
        return [UploadProblem(filename, "not_a_pdf", f"{label} ist kein PDF (der Inhalt ist keine PDF-Datei).")]
    outcome = _read_in_sandbox(data)
    if outcome[0] == "encrypted":
        return [_encrypted(filename)]
    if outcome[0] != "ok":
        log.info("upload.unreadable_pdf", filename=filename, outcome=outcome[0], error=str(outcome[1])[:300])
        text = {
            "timeout": f"{label} lässt sich nicht in der erlaubten Zeit lesen (beschädigte oder manipulierte Datei).",
            "crashed": f"{label} hat das PDF-Leseprogramm zum Absturz gebracht (beschädigte oder manipulierte Datei).",
        }.get(outcome[0], f"{label} ist beschädigt und kann nicht gelesen werden.")
        return [UploadProblem(filename, "corrupt", f"{text} Bitte das Dokument neu exportieren.")]
    _, encrypted, pages = outcome
    problems: list[UploadProblem] = []
    if encrypted:
        problems.append(_encrypted(filename))
    if pages == 0:
        problems.append(UploadProblem(filename, "no_pages", f"{label} enthält keine Seiten."))
    return problems


def _encrypted(filename: str) -> UploadProblem:
    return UploadProblem(
        filename,
        "encrypted",
        f"„{filename}“ ist verschlüsselt bzw. passwort- oder schreibgeschützt. Bitte ohne Schutz exportieren "
        "und erneut hochladen.",
    )


# The upload is read only in a child process with limits (like the splitter's sandbox): a crafted file can make the
# reader loop, eat memory or abort, and none of that may reach the letters service.
SANDBOX_SECONDS = 30.0
SANDBOX_MEMORY_BYTES = 1024 * 1024 * 1024


def _read_in_sandbox(data: bytes) -> tuple[Any, ...]:
    """("ok", encrypted, pages), ("encrypted",), ("corrupt", why), ("timeout", why) or ("crashed", why)."""
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="smartpost-upload-") as folder:
        path = Path(folder) / "upload.pdf"
        path.write_bytes(data)
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_read_child, args=(str(path), send), daemon=True)
        child.start()
        send.close()
        try:
            if not receive.poll(SANDBOX_SECONDS):
                return ("timeout", f"no answer within {SANDBOX_SECONDS:.0f} s")
            result: tuple[Any, ...] = receive.recv()
        except EOFError:
            child.join(5)
            return ("crashed", f"reader exited with {child.exitcode}")
        else:
            return result
        finally:
            if child.is_alive():
                child.kill()
            child.join(5)
            receive.close()


def _read_child(path: str, send: Connection) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (SANDBOX_MEMORY_BYTES, SANDBOX_MEMORY_BYTES))
    cpu = int(SANDBOX_SECONDS)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    try:
        with pikepdf.open(path) as pdf:
            result: tuple[Any, ...] = ("ok", pdf.is_encrypted, len(pdf.pages))
    except pikepdf.PasswordError:
        result = ("encrypted",)
    except (pikepdf.PdfError, ValueError, OSError, RecursionError, MemoryError) as exc:
        result = ("corrupt", str(exc)[:300])
    send.send(result)
    send.close()
