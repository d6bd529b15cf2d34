"""Events prove their producer: an Ed25519 signature over the message body, checked against the topic's producer.

Every service signs what it publishes with its own key (``SMARTPOST_KAFKA_SIGNING_KEY``); every consumer knows the
public keys of the producers (``SMARTPOST_KAFKA_TRUSTED_PRODUCERS``, JSON ``{"letters": ["<base64>", ...]}``; a list,
so a key can be rotated by trusting old and new for a while) and accepts a message on a topic only when it is signed
by the producer that the topic registry names for that topic. The signature travels in Kafka headers, so the body
(the envelope contract) is unchanged; it covers the exact bytes of the body, so nothing in it can be altered.
A message without a valid signature goes to the dead-letter topic with the reason; a replayed valid message is a
duplicate event id, which every consumer already ignores.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

if TYPE_CHECKING:
    from collections.abc import Iterable

    from smartpost_shared.settings import KafkaSettings

SIGNATURE_HEADER = "smartpost-signature"


class EventSigner:
    def __init__(self, private_key: str) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(private_key))

    def sign(self, body: bytes) -> str:
        return base64.b64encode(self._key.sign(body)).decode()

    def headers(self, body: bytes) -> dict[str, str]:
        return {SIGNATURE_HEADER: self.sign(body)}


@dataclass
class EventVerifier:
    trusted_producers: dict[str, list[str]]
    _keys: dict[str, list[Ed25519PublicKey]] = field(init=False)
    # Per producer, the key that verified its last message: tried first. A producer with several trusted keys (a
    # rotation, or master data from the ERP and from the assignment service's importer) otherwise cost a failed
    # verification (~0.13 ms) for most messages: 15,000 imported events, four consumers, 8 s of CPU.
    _preferred: dict[str, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._keys = {
            producer: [Ed25519PublicKey.from_public_bytes(base64.b64decode(k)) for k in keys]
            for producer, keys in self.trusted_producers.items()
        }

    def problem(self, producer: str, body: bytes, signature: str | bytes | None) -> str | None:
        """Why ``body`` is not a message of ``producer`` (None when it is)."""
        keys = self._keys.get(producer)
        if not keys:
            return f"no trusted key for producer {producer!r}"
        if not signature:
            return "unsigned message"
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            return "malformed signature"
        first = self._preferred.get(producer, 0) % len(keys)
        for index in (first, *(i for i in range(len(keys)) if i != first)):
            try:
                keys[index].verify(raw, body)
            except InvalidSignature:
                continue
            self._preferred[producer] = index
            return None
        return f"signature does not match producer {producer!r}"


@dataclass(frozen=True)
class EventSecurity:
    signer: EventSigner | None
    verifier: EventVerifier

    @classmethod
    def from_settings(cls, settings: KafkaSettings) -> EventSecurity:
        key = settings.signing_key.get_secret_value() if settings.signing_key else None
        return cls(EventSigner(key) if key else None, EventVerifier(dict(settings.trusted_producers)))


def signature_of(headers: Iterable[tuple[str, bytes]] | None) -> bytes | None:
    for name, value in headers or ():
        if name == SIGNATURE_HEADER:
            return value
    return None


def main() -> None:
    """``python -m smartpost_shared.event_signing keygen <producer>``: a new signing key and its public key."""
    import json  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from smartpost_shared.identity import generate_keypair  # noqa: PLC0415

    if len(sys.argv) != 3 or sys.argv[1] != "keygen":
        sys.exit("usage: python -m smartpost_shared.event_signing keygen <producer>")
    private, public = generate_keypair()
    print(f"SMARTPOST_KAFKA_SIGNING_KEY={private}")  # noqa: T201 - CLI output
    print(f"# trusted producers entry: {json.dumps({sys.argv[2]: [public]})}")  # noqa: T201


if __name__ == "__main__":
    main()
