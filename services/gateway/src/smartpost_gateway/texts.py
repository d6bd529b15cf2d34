"""German UI text: state names, split rules, print options and the translation of service errors.

The services answer in English with a machine-readable ``code``; staff read German. The gateway shows a German
sentence for what it recognises and always keeps the service's own detail underneath, so nothing is hidden.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smartpost_gateway.adapters.http import ServiceError

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
    "address_block": (
        "Anschriftfeld (DIN 5008)",
        "Ein neuer Brief beginnt auf jeder Seite mit einer Anschrift im Sichtfenster.",
    ),
    "first_page": (
        "Erste Seite bestimmen",
        (
            "Wählen Sie eine Musterseite: Seiten, die ihr ähnlich sehen, beginnen einen neuen Brief. "
            "Alternativ ein Text, der nur auf ersten Seiten steht."
        ),
    ),
    "identifier": (
        "Kennung (z. B. Kontakt-Nr.)",
        "Ein neuer Brief beginnt, wenn sich die Kennung (regulärer Ausdruck) auf der Seite ändert.",
    ),
    "keyword": ("Trennwort", "Seiten mit diesem Text trennen die Briefe (z. B. eine Trennseite „Trennseite“)."),
    "blank_separator": ("Leere Trennseiten", "Leere Seiten trennen die Briefe."),
    "fixed_pages": ("Feste Seitenzahl", "Jeder Brief hat genau die angegebene Anzahl Seiten."),
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
        re.compile(r"at least one part must be assigned", re.IGNORECASE),
        "Mindestens ein Einzelbrief muss einem Kontakt zugeordnet sein.",
    ),
    (re.compile(r"review has not been confirmed", re.IGNORECASE), "Die Endkontrolle ist noch nicht abgeschlossen."),
    (
        re.compile(r"property.*(required|needs)|needs a property|requires a property", re.IGNORECASE),
        "Bitte eine Liegenschaft wählen oder „Liegenschaftsübergreifender Versand“ ankreuzen.",
    ),
    (re.compile(r"dispatch date lies in the past", re.IGNORECASE), "Das Versanddatum liegt in der Vergangenheit."),
    (re.compile(r"already ordered", re.IGNORECASE), "Der Briefversand wurde bereits beauftragt."),
    (re.compile(r"recipient group", re.IGNORECASE), "Bitte mindestens einen Empfängerkreis wählen."),
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
    "invalid_part": "Dieser Einzelbrief kann so nicht geändert werden.",
    "invalid_document_type": "Der Dokumententyp ist ungültig.",
    "storage_unavailable": "Der Dateispeicher ist gerade nicht erreichbar. Bitte später erneut versuchen.",
}


@dataclass(frozen=True)
class UiError:
    """An error as staff see it: a German sentence and the technical detail from the service."""

    message: str
    detail: str = ""


def translate(error: ServiceError) -> UiError:  # noqa: PLR0911 - one answer per kind of error
    service = SERVICE_NAMES.get(error.service, error.service)
    if error.unavailable and error.status == 503 and not error.code:
        return UiError(f"Der {service} ist gerade nicht erreichbar. Bitte später erneut versuchen.", error.detail)
    if error.status == 401:
        return UiError(f"Der {service} hat die Anfrage nicht angenommen (Anmeldung).", error.detail)
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
    """ISO timestamp from a service as German date and time (the services store UTC; shown as sent)."""
    if not value:
        return "–"
    match = re.match(r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2}):?(\d{2})?)?", value)
    if not match:
        return value
    year, month, day, hour, minute, second = match.groups()
    text = f"{day}.{month}.{year}"
    if hour:
        text += f" {hour}:{minute}" + (f":{second}" if seconds and second else "")
    return text


def euro(cents: float | None) -> str:
    if cents is None:
        return "–"
    value = f"{cents / 100:,.2f}"
    return value.replace(",", "X").replace(".", ",").replace("X", ".") + " €"
