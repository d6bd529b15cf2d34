"""Upload checks: is an uploaded file a PDF the splitter can work with? Checked at upload, not at split time.

Every problem of a file is found in one pass (empty, too large, not a PDF, damaged, encrypted, without pages), so
staff see all of them at once. Messages are German and name only the file as staff uploaded it: never a server
path or a library's exception text (those go to the log).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pikepdf

from smartpost_shared.logging import get_logger

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
    try:
        with pikepdf.open(io.BytesIO(data)) as pdf:
            encrypted = pdf.is_encrypted
            pages = len(pdf.pages)
    except pikepdf.PasswordError:
        return [_encrypted(filename)]
    except (pikepdf.PdfError, ValueError, OSError) as exc:
        log.info("upload.corrupt_pdf", filename=filename, error=str(exc)[:300])
        return [
            UploadProblem(
                filename,
                "corrupt",
                f"{label} ist beschädigt und kann nicht gelesen werden. Bitte das Dokument neu exportieren.",
            )
        ]
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
