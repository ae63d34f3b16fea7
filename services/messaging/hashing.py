"""Message.content_hash, exactly as the contract defines it, and the per-envelope digests a
recipient uses to recompute it (GetMessage's envelope_digests)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable


@dataclasses.dataclass(frozen=True, slots=True)
class EnvelopeDigest:
    recipient_device: str  # users/{uuid}/devices/{uuid}
    type: int  # EnvelopeType
    ciphertext_sha256: bytes


def digest(recipient_device: str, envelope_type: int, ciphertext: bytes) -> EnvelopeDigest:
    return EnvelopeDigest(recipient_device, envelope_type, hashlib.sha256(ciphertext).digest())


def ordered(digests: Iterable[EnvelopeDigest]) -> list[EnvelopeDigest]:
    """Ascending recipient_device (byte order of the UTF-8 name): content_hash order."""
    return sorted(digests, key=lambda d: d.recipient_device.encode())


def pairwise_content_hash(digests: Iterable[EnvelopeDigest]) -> bytes:
    """SHA-256 over the envelopes in ascending recipient_device order, each contributing
    SHA-256(recipient_device UTF-8) || one byte EnvelopeType || SHA-256(ciphertext)."""
    h = hashlib.sha256()
    for d in ordered(digests):
        if not 0 <= d.type <= 255:
            raise ValueError("envelope type does not fit in one byte")
        h.update(hashlib.sha256(d.recipient_device.encode()).digest())
        h.update(bytes((d.type,)))
        h.update(d.ciphertext_sha256)
    return h.digest()


def sender_key_content_hash(ciphertext: bytes) -> bytes:
    return hashlib.sha256(ciphertext).digest()
