"""German UI text: state names, split rules, print options and the translation of service errors.

The services answer in English with a machine-readable ``code``; staff read German. The gateway shows a German
sentence and a support number; the service's own (English) detail goes to the log under that number.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal

from smartpost_shared.logging import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable

    from smartpost_gateway.adapters.http import ServiceError

log = get_logger(__name__)
LOCALE = "de_DE"
BERLIN = ZoneInfo("Europe/Berlin")

LETTER_STATUS = {
    "draft": "Entwurf",
    "splitting": "Wird aufgeteilt",
    "assigning": "Wird zugeordnet",
    "in_review": "In Prüfung",
    "reviewed": "Geprüft, bereit zur Freigabe",
    "released": "Im Kundenportal freigegeben",
    "print_ordered": "Freigegeben, Briefversand beauftragt",
    "deleted": "Gelöscht",
}

# A result of this letter could not be passed on to the next service (e.g. the message was refused): the relay keeps
# it and retries, /readyz and the log name it; staff must know that waiting does not help.
PUBLISH_STUCK = (
    "Ein Zwischenergebnis dieses Serienbriefs kann nicht weitergegeben werden. Es geht nichts verloren, aber "
    "Warten hilft nicht: Bitte wenden Sie sich an den technischen Support (Details stehen im Protokoll des Dienstes)."
)

BULK_ACTIONS = {
    "discard_unmatched": "Alle nicht zuordenbaren verworfen",
    "accept_safe": "Sichere Vorschläge übernommen",
    "defer_property": "Liegenschaft zurückgestellt",
}

DOCUMENT_STATUS = {
    "uploaded": "Hochgeladen",
    "splitting": "Wird aufgeteilt",
    "split": "Aufgeteilt",
    "failed": "Fehlgeschlagen",
}

ASSIGNMENT_STATUS = {
    "assigned": "Zugeordnet",
    "needs_review": "Bitte prüfen",
    "unmatched": "Nicht zugeordnet",
    "discarded": "Verworfen",
}

SPLIT_STRATEGIES = {
    "auto": (
        "Vorschlag von SmartPost",
        (
            "SmartPost probiert beim Hochladen die Regeln Anschriftfeld (Form A und B), erste Seite („Seite 1 von“), "
            "Kontaktnummer, Trennseite, leere Trennseiten und feste Seitenzahl an der Datei aus und wählt die "
            "stimmigste: jeder Brief mit genau einer Anschrift und höchstens einer Kontaktnummer, Seitenzählung "
            "beginnt bei jedem Brief neu, plausible Seitenzahlen. Die Begründung wird angezeigt; die Regel lässt "
            "sich danach unter „Trennregel ändern“ anpassen."
        ),
    ),
    "address_block": (
        "Anschriftfeld (DIN 5008)",
        (
            "Ein neuer Brief beginnt auf einer Seite mit einer Anschrift im Sichtfenster, wenn sich die Anschrift "
            "gegenüber dem vorigen Brief ändert – oder wenn die Seite wie eine erste Seite aussieht (Seitenzählung "
            "beginnt neu, z. B. „Seite 1 von 3“ oder „- 1 -“, oder ohne Seitenzahl eine Anrede wie „Sehr geehrte“). "
            "Folgeseiten, die die Anschrift wiederholen („Seite 2 von 3“), bleiben beim Brief."
        ),
    ),
    "first_page": (
        "Erste Seite bestimmen",
        (
            "Jede Seite, die den angegebenen Text enthält (z. B. „Seite 1 von“), beginnt einen neuen Brief. "
            "Oder eine Musterseite: jede Seite, deren Briefkopf (obere 10 cm) der Musterseite genügend ähnelt, "
            "beginnt einen neuen Brief. Seiten vor der ersten erkannten Seite werden zur Prüfung gemeldet."
        ),
    ),
    "identifier": (
        "Kennung (z. B. Kontakt-Nr.)",
        (
            "Ein neuer Brief beginnt auf einer Seite, deren Kennung (regulärer Ausdruck) sich von der vorigen "
            "unterscheidet; Seiten ohne Kennung gehören zum laufenden Brief. Zwei Briefe mit derselben Kennung "
            "direkt hintereinander werden zu einem."
        ),
    ),
    "keyword": (
        "Trennwort",
        (
            "Jede Seite mit diesem Text (z. B. „Trennseite“) trennt die Briefe und wird entfernt; steht auf ihr "
            "eine Anschrift, gilt sie für den folgenden Brief, wenn dieser selbst keine hat."
        ),
    ),
    "blank_separator": ("Leere Trennseiten", "Jede Seite ohne Text und ohne Bild trennt die Briefe und wird entfernt."),
    "fixed_pages": (
        "Feste Seitenzahl",
        "Alle n Seiten beginnt ein neuer Brief; ist die Seitenzahl kein Vielfaches von n, ist der letzte kürzer.",
    ),
}

RECIPIENT_GROUPS = {"owners": "Eigentümer", "tenants": "Mieter"}

CHANNEL = {"post": "Postalisch", "online": "Online"}

RECIPIENT_FILTER = {
    "all": "Alle Empfänger",
    "post_preference": "Nur Kontakte mit Präferenz „Postalisch“",
    "not_registered": "Nur Kontakte ohne Portal-Registrierung",
    "not_viewed": "Nur Kontakte, die das Dokument nicht geöffnet haben",
}

REGISTERED = {
    "none": "Kein Einschreiben",
    "einwurf": "Einschreiben Einwurf",
    "uebergabe": "Einschreiben (Übergabe)",
    "eigenhaendig": "Einschreiben eigenhändig",
}

ENVELOPE = {"DL": "DIN lang (DL)", "C4": "C4 (ungefalzt)"}

WAITING_FOR = {
    "splitter": "die Aufteilung der PDF-Dateien in Einzelbriefe",
    "assignment": "die Zuordnung der Empfänger",
    "print-dispatch": "den Briefversand-Dienst",
}

MAILPIECE_STATUS = {
    "created": "Angelegt",
    "validating": "Wird geprüft",
    "action_required": "Aktion erforderlich",
    "submitted": "Übergeben an Dienstleister",
    "printing": "Im Druck",
    "sent": "Versendet",
    "delivered": "Zugestellt",
    "undeliverable": "Unzustellbar",
    "cancelled": "Storniert",
}

SPLIT_FAILURE = {
    "not_a_pdf": "Die Datei ist kein PDF.",
    "empty_file": "Die Datei ist leer.",
    "corrupt": "Das PDF ist beschädigt und kann nicht gelesen werden.",
    "encrypted": "Das PDF ist verschlüsselt oder passwortgeschützt. Bitte ein ungeschütztes PDF hochladen.",
    "no_pages": "Das PDF enthält keine Seiten.",
    "needs_ocr": "Das PDF enthält keinen lesbaren Text (Scan ohne Texterkennung).",
    "no_letter_found": "Mit der gewählten Trennregel wurde kein Brief gefunden.",
    "invalid_rule": "Die Trennregel ist ungültig.",
    "source_missing": "Die hochgeladene Datei ist nicht mehr vorhanden.",
}

WARNING_CODES = {
    "contact_without_part": "Kontakt der Liegenschaft ohne Dokument",
    "duplicate_assignment": "Kontakt erhält mehrere Einzelbriefe",
    "part_needs_review": "Zuordnung unsicher, bitte prüfen",
    "part_unmatched": "Kein passender Kontakt gefunden",
    "unusual_page_count": "Ungewöhnliche Seitenzahl",
    "contract_ended": "Vertrag des Kontakts ist beendet",
    "contract_not_started": "Vertrag des Kontakts hat noch nicht begonnen",
    "missing_email": "Keine E-Mail-Adresse hinterlegt",
    "missing_postal_address": "Keine Postanschrift hinterlegt",
}

# Reasons and notes of the print-dispatch estimate, in German where known (unknown ones are shown as they come).
PRINT_TEXT = {
    "prefers online delivery": "möchte Dokumente online erhalten",
    "registered in the portal": "ist im Kundenportal registriert",
    "opened in the portal": "hat das Dokument im Portal bereits geöffnet",
    "a cover page (one more sheet) is added where the address is not in the window": (
        "Wo die Anschrift nicht im Sichtfenster steht, wird ein Deckblatt (ein Blatt mehr) vorangestellt."
    ),
}


def print_text(text: str) -> str:
    if text in PRINT_TEXT:
        return PRINT_TEXT[text]
    if text.startswith("a cover page (one more sheet) is added"):
        return (
            "Wo die Anschrift nicht im Sichtfenster des Versanddienstleisters steht, wird ein Deckblatt (ein Blatt "
            "mehr) vorangestellt. Die Schätzung prüft dafür je Dokument einen Brief; eine Anschrift, die von den "
            "Stammdaten abweicht, fällt erst beim Erstellen der Druckdateien auf."
        )
    match = re.match(r"final selection after (\d+) working days", text)
    if match:
        return (
            f"Endgültige Auswahl nach {match.group(1)} Werktagen: bis dahin im Portal geöffnete Briefe werden "
            "nicht gedruckt."
        )
    return text


SERVICE_NAMES = {
    "letters": "Serienbrief-Dienst",
    "assignment": "Zuordnungs-Dienst",
    "print-dispatch": "Briefversand-Dienst",
    "portal-publisher": "Kundenportal-Dienst",
    "notifier": "E-Mail-Dienst",
}

FIELD_LABELS = {
    "title": "Titel",
    "document_type_id": "Dokumententyp",
    "recipient_groups": "Empfängerkreis",
    "property_id": "Liegenschaft",
    "reason": "Begründung",
    "dispatch_date": "Versanddatum",
    "contact_id": "Kontakt",
}

# (pattern in the service's English detail, German sentence); first match wins.
_DETAIL_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"not a PDF", re.IGNORECASE), "Die Datei ist kein PDF."),
    (re.compile(r"file is empty", re.IGNORECASE), "Die Datei ist leer."),
    (re.compile(r"larger than", re.IGNORECASE), "Die Datei ist zu groß."),
    (
        re.compile(r"neither assigned nor discarded", re.IGNORECASE),
        "Freigabe nicht möglich: Es gibt noch Einzelbriefe, die weder einem Kontakt zugeordnet noch verworfen sind.",
    ),
    (
        re.compile(r"have no contract \(property and unit\)", re.IGNORECASE),
        (
            "Noch nicht fertig zugeordnet: Bei liegenschaftsübergreifenden Briefen braucht jeder Einzelbrief den "
            "Vertrag des Empfängers (Liegenschaft und Einheit). Bitte bei den markierten Einzelbriefen „Vertrag "
            "wählen“."
        ),
    ),
    (
        re.compile(r"at least one part must be assigned", re.IGNORECASE),
        "Mindestens ein Einzelbrief muss einem Kontakt zugeordnet sein.",
    ),
    (re.compile(r"review has not been confirmed", re.IGNORECASE), "Die Endkontrolle ist noch nicht abgeschlossen."),
    (
        re.compile(r"property.*(required|needs)|needs a property|requires a property", re.IGNORECASE),
        "Bitte eine Liegenschaft wählen oder „Liegenschaftsübergreifender Versand“ ankreuzen.",
    ),
    (
        re.compile(r"billing period needs both|period_start and period_end go together", re.IGNORECASE),
        "Bitte für den Abrechnungszeitraum Beginn und Ende angeben (oder beide Felder leer lassen).",
    ),
    (re.compile(r"billing period ends before", re.IGNORECASE), "Der Abrechnungszeitraum endet vor seinem Beginn."),
    (re.compile(r"dispatch date lies in the past", re.IGNORECASE), "Das Versanddatum liegt in der Vergangenheit."),
    (re.compile(r"already ordered", re.IGNORECASE), "Der Briefversand wurde bereits beauftragt."),
    (re.compile(r"recipient group", re.IGNORECASE), "Bitte mindestens einen Empfängerkreis wählen."),
    (
        re.compile(r"nested at most (\d+) levels", re.IGNORECASE),
        "Dokumententypen haben höchstens fünf Ebenen. Bitte eine höhere Ebene wählen.",
    ),
    (
        re.compile(r"document type named .* already exists", re.IGNORECASE),
        "Auf dieser Ebene gibt es diesen Dokumententyp schon.",
    ),
    (re.compile(r"title", re.IGNORECASE), "Bitte einen Titel angeben."),
    (re.compile(r"attach at least", re.IGNORECASE), "Bitte zuerst mindestens ein Anschreiben (PDF) hochladen."),
]

_CODE_TEXT = {
    "not_found": "Nicht gefunden (oder kein Zugriff).",
    "version_conflict": "Der Serienbrief wurde inzwischen geändert. Bitte die Seite neu laden und erneut versuchen.",
    "release_blocked": "Freigabe nicht möglich.",
    "illegal_transition": "Dieser Schritt ist im aktuellen Zustand des Serienbriefs nicht möglich.",
    "invalid_letter": "Die Angaben zum Serienbrief sind unvollständig oder widersprüchlich.",
    "invalid_document": "Das Dokument kann so nicht verarbeitet werden.",
    "source_erased": (
        "Die hochgeladene Datei wurde wegen einer Datenschutz-Löschung entfernt und kann nicht erneut getrennt "
        "werden. Bitte laden Sie die Datei neu hoch."
    ),
    "invalid_part": "Dieser Einzelbrief kann so nicht geändert werden.",
    "invalid_document_type": "Der Dokumententyp ist ungültig.",
    "storage_unavailable": "Der Dateispeicher ist gerade nicht erreichbar. Bitte später erneut versuchen.",
}


@dataclass(frozen=True)
class UiError:
    """An error as staff see it: a German sentence and a support number.

    ``detail`` (the service's technical, English answer) is logged with ``support_id`` and never shown.
    """

    message: str
    detail: str = ""
    support_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])


def translate(error: ServiceError) -> UiError:
    ui = _translate(error)
    log.warning(
        "gateway.service_error",
        support_id=ui.support_id,
        service=error.service,
        status=error.status,
        code=error.code,
        detail=error.detail,
        shown=ui.message,
    )
    return ui


def _translate(error: ServiceError) -> UiError:  # noqa: PLR0911 - one answer per kind of error
    service = SERVICE_NAMES.get(error.service, error.service)
    if error.unavailable and error.status == 503 and not error.code:
        return UiError(f"Der {service} ist gerade nicht erreichbar. Bitte später erneut versuchen.", error.detail)
    if error.status == 401:
        return UiError(f"Der {service} hat die Anfrage nicht angenommen (Anmeldung).", error.detail)
    if error.code == "upload_rejected":
        return UiError(error.detail)  # the letters service's upload checks answer in German for staff
    for pattern, sentence in _DETAIL_PATTERNS:
        if pattern.search(error.detail):
            return UiError(sentence, error.detail)
    if error.code in _CODE_TEXT:
        return UiError(_CODE_TEXT[error.code], error.detail)
    if error.code == "validation_error":
        fields = [label for key, label in FIELD_LABELS.items() if key in error.detail]
        if fields:
            return UiError("Bitte prüfen: " + ", ".join(fields) + ".", error.detail)
        return UiError("Die Eingaben sind ungültig.", error.detail)
    if error.status == 404:
        return UiError(_CODE_TEXT["not_found"], error.detail)
    return UiError(f"Der {service} meldet einen Fehler (HTTP {error.status}).", error.detail)


def scope_label(scope: str, property_name: str | None) -> str:
    if scope == "cross_property":
        return "liegenschaftsübergreifend"
    return property_name or "–"


def de_datetime(value: str | None, *, seconds: bool = False) -> str:
    """ISO date or timestamp from a service in German format; timestamps with a zone in German local time (Babel)."""
    if not value:
        return "–"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    if len(value) <= len("2026-01-01"):
        return format_date(parsed.date(), "dd.MM.yyyy", locale=LOCALE)
    pattern = "dd.MM.yyyy HH:mm:ss" if seconds else "dd.MM.yyyy HH:mm"
    if parsed.tzinfo is None:
        return format_datetime(parsed, pattern, locale=LOCALE)
    return format_datetime(parsed, pattern, tzinfo=BERLIN, locale=LOCALE)


def euro(cents: float | None) -> str:
    """Cents as German money, e.g. 123456 -> '1.234,56 €' (Babel; non-breaking space before the sign)."""
    if cents is None:
        return "–"
    return str(format_currency(cents / 100, "EUR", locale=LOCALE))


_EVIDENCE_ACTIONS = {
    "reassign": "von Hand zugeordnet",
    "unassign": "Zuordnung von Hand aufgehoben",
    "discard": "verworfen",
}


def evidence_text(text: str, staff_name: Callable[[str], str] | None = None) -> str:
    """Evidence of an assignment in German (the letters service records manual decisions in English)."""
    match = re.fullmatch(r"manual (reassign|unassign|discard) by (.+)", text)
    if match:
        who = staff_name(match.group(2)) if staff_name else match.group(2)
        return f"{_EVIDENCE_ACTIONS[match.group(1)]} von {who}"
    return text


def de_number(value: float, digits: int = 0) -> str:
    """1234.5 -> '1.234,5' (German grouping and decimal comma, Babel)."""
    return str(
        format_decimal(round(value, digits), format="#,##0" + ("." + "0" * digits if digits else ""), locale=LOCALE)
    )


# --- the Verlauf (audit log) as sentences ---------------------------------------------------------------------

SYSTEM_ACTORS = {"system", "splitter", "assignment", "letters", "print-dispatch", "portal-publisher", "smartpost"}


@dataclass(frozen=True)
class AuditNames:
    """What the sentences need to name people and places (all lookups fall back to something German)."""

    staff_name: Callable[[str], str]
    contact_name: Callable[[str | None], str]
    property_name: Callable[[str | None], str]
    unit_label: Callable[[str | None], str]
    part_number: Callable[[str | None], int | None]


def _who(actor: str, names: AuditNames) -> str:
    if not actor or actor.lower() in SYSTEM_ACTORS or ":" in actor:
        return "SmartPost"
    return names.staff_name(actor)


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _part(part_id: str | None, names: AuditNames) -> str:
    number = names.part_number(part_id)
    return f"Einzelbrief {number}" if number else "einen Einzelbrief"


def _place(details: dict[str, Any], names: AuditNames) -> str:
    bits = []
    if details.get("unit_id"):
        bits.append(names.unit_label(details["unit_id"]))
    if details.get("property_id"):
        bits.append(names.property_name(details["property_id"]))
    return f" ({', '.join(bits)})" if bits else ""


def audit_sentence(entry: dict[str, Any], names: AuditNames) -> str:  # noqa: C901, PLR0911, PLR0912 - one per action
    """One line of the Verlauf, e.g. „Anna Muster hat Einzelbrief 3 Jürgen Weiß zugeordnet (WE 02, Parkallee 7).“."""
    action = str(entry.get("action", ""))
    d: dict[str, Any] = entry.get("details") or {}
    who = _who(str(entry.get("actor", "")), names)
    if action == "created":
        scope = (
            "liegenschaftsübergreifend"
            if d.get("scope") == "cross_property"
            else names.property_name(d.get("property_id"))
        )
        return f"{who} hat den Serienbrief „{d.get('title', '')}“ angelegt ({scope})."
    if action == "document_attached":
        document = d.get("document") or {}
        return f"{who} hat die Datei „{document.get('filename', 'PDF')}“ hochgeladen."
    if action == "document_changed":
        return f"{who} hat die Trennregel eines Dokuments geändert."
    if action == "document_removed":
        return f"{who} hat ein Dokument entfernt."
    if action == "documents_reordered":
        return f"{who} hat die Reihenfolge der Dokumente geändert."
    if action == "split_started":
        return f"{who} hat das Aufteilen gestartet."
    if action == "split_recorded":
        parts = len(d.get("parts") or [])
        pages = _count(int(d.get("page_count") or 0), "Seite", "Seiten")
        return f"Das Dokument wurde aufgeteilt: {pages}, {_count(parts, 'Einzelbrief', 'Einzelbriefe')}."
    if action == "split_failed":
        failure = d.get("failure") or {}
        reason = SPLIT_FAILURE.get(str(failure.get("reason_code", "")), "Grund siehe Details.")
        return f"Das Aufteilen ist fehlgeschlagen: {reason}"
    if action == "reopened":
        return f"{who} hat den Serienbrief zur Bearbeitung wieder geöffnet."
    if action == "assignments_recorded":
        assignments = d.get("assignments") or []
        assigned = sum(1 for a in assignments if a.get("status") == "assigned")
        review = sum(1 for a in assignments if a.get("status") == "needs_review")
        text = "Zuordnungsvorschlag erhalten" if not d.get("is_correction") else "Korrektur bestätigt"
        return f"{text}: {_count(assigned, 'Einzelbrief', 'Einzelbriefe')} zugeordnet, {review} zur Prüfung."
    if action == "assignments_deferred":
        return "Die Zuordnung wartet, bis die Stammdaten vollständig sind."
    if action == "part_corrected":
        part = _part(d.get("part_id"), names)
        kind = d.get("action")
        if kind == "reassign":
            return f"{who} hat {part} {names.contact_name(d.get('contact_id'))} zugeordnet{_place(d, names)}."
        if kind == "unassign":
            return f"{who} hat die Zuordnung von {part} aufgehoben."
        if kind == "discard":
            return f"{who} hat {part} verworfen."
        return f"{who} hat {part} geändert."
    if action == "review_confirmed":
        return f"{who} hat die Prüfung abgeschlossen."
    if action == "released":
        items = len(d.get("items") or [])
        mail = " und die Empfänger per E-Mail benachrichtigt" if d.get("notify_by_email") else ""
        return f"{who} hat {_count(items, 'Einzelbrief', 'Einzelbriefe')} im Kundenportal freigegeben{mail}."
    if action == "print_order_placed":
        items = len(d.get("items") or [])
        return f"{who} hat den Briefversand für {_count(items, 'Einzelbrief', 'Einzelbriefe')} beauftragt."
    if action == "items_revoked":
        items = len(d.get("item_ids") or [])
        reason = f" Begründung: {d['reason']}" if d.get("reason") else ""
        unit = f" für {names.unit_label(d['unit_id'])}" if d.get("unit_id") else ""
        return f"{who} hat {_count(items, 'Einzelbrief', 'Einzelbriefe')}{unit} widerrufen.{reason}"
    if action == "deleted":
        reason = f" Begründung: {d['reason']}" if d.get("reason") else ""
        return f"{who} hat den Serienbrief gelöscht.{reason}"
    if action == "mailpiece_status_recorded":
        mailpiece = d.get("mailpiece") or {}
        status = MAILPIECE_STATUS.get(str(mailpiece.get("status", "")), "neuer Stand")
        contact = names.contact_name(mailpiece.get("contact_id")) if mailpiece.get("contact_id") else "einen Empfänger"
        return f"Briefversand an {contact}: {status}."
    if action == "item_viewed":
        return "Ein Empfänger hat seinen Einzelbrief im Kundenportal geöffnet."
    return f"{who} hat den Serienbrief geändert."


def audit_record(entry: dict[str, Any]) -> str:
    """The technical record behind the sentence (readable umlauts, indented)."""
    return json.dumps(entry, ensure_ascii=False, indent=2, sort_keys=True, default=str)


def paper_status(mailpiece: dict[str, Any] | None) -> str:
    """What revoking a released letter means for its paper copy (revocation never stops a print job by itself)."""
    if not mailpiece:
        return "Für diesen Brief ist kein Papierversand beauftragt."
    status = str(mailpiece.get("status", ""))
    label = MAILPIECE_STATUS.get(status, "unbekannter Stand")
    if status in {"created", "validating", "action_required"}:
        return (
            f"Der Papierbrief ist beauftragt, aber noch nicht beim Druckdienstleister (Stand: {label}). Der Widerruf "
            "hält ihn nicht an; er kann im Briefversand-Dienst noch storniert werden."
        )
    if status in {"submitted", "printing"}:
        return (
            f"Der Papierbrief liegt bereits beim Druckdienstleister (Stand: {label}). Der Widerruf hält ihn nicht an; "
            "ob er noch gestoppt werden kann, entscheidet der Dienstleister."
        )
    if status in {"sent", "delivered"}:
        return f"Der Papierbrief ist bereits verschickt (Stand: {label}) und lässt sich nicht mehr aufhalten."
    return f"Der Papierbrief wurde nicht zugestellt (Stand: {label})."


def mailpiece_of(letter: dict[str, Any], item: dict[str, Any]) -> dict[str, Any] | None:
    """The paper mailpiece that carries ``item`` (by item id, else by contact), if a print order exists."""
    order = letter.get("print_order") or {}
    pieces = list(order.get("mailpieces") or [])
    for piece in pieces:
        if item.get("item_id") in (piece.get("item_ids") or []):
            return dict(piece)
    for piece in pieces:
        if piece.get("contact_id") == item.get("contact_id") and not piece.get("item_ids"):
            return dict(piece)
    return None


def today_berlin() -> date:
    """Today in the German calendar (dispatch dates are German dates)."""
    return datetime.now(BERLIN).date()
