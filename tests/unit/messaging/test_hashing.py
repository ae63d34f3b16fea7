"""Message.content_hash exactly as the contract defines it, computed here independently."""

from __future__ import annotations

import hashlib

from services.messaging.hashing import (
    EnvelopeDigest,
    digest,
    ordered,
    pairwise_content_hash,
    sender_key_content_hash,
)

A = "users/a/devices/1"
B = "users/b/devices/2"
C = "users/B/devices/3"  # upper case sorts before lower case in byte order


def reference(envelopes: list[tuple[str, int, bytes]]) -> bytes:
    """The contract's words: SHA-256 over the envelopes in ascending recipient_device order,
    each SHA-256(recipient_device UTF-8) || one byte EnvelopeType || SHA-256(ciphertext)."""
    out = b""
    for name, kind, ct in sorted(envelopes, key=lambda e: e[0].encode()):
        out += hashlib.sha256(name.encode()).digest() + bytes([kind]) + hashlib.sha256(ct).digest()
    return hashlib.sha256(out).digest()


def test_pairwise_hash_matches_the_definition():
    envs = [(B, 2, b"for b"), (A, 1, b"for a"), (C, 2, b"for C")]
    got = pairwise_content_hash(digest(n, t, ct) for n, t, ct in envs)
    assert got == reference(envs)
    assert len(got) == 32


def test_pairwise_hash_ignores_request_order_but_not_content():
    envs = [(A, 1, b"x"), (B, 2, b"y")]
    h = pairwise_content_hash(digest(*e) for e in envs)
    assert h == pairwise_content_hash(digest(*e) for e in reversed(envs))
    assert h != pairwise_content_hash(digest(*e) for e in [(A, 2, b"x"), (B, 2, b"y")])
    assert h != pairwise_content_hash(digest(*e) for e in [(A, 1, b"x"), (B, 2, b"z")])
    assert h != pairwise_content_hash(digest(*e) for e in [(A, 1, b"x")])


def test_digests_are_listed_in_content_hash_order():
    ds = [digest(B, 2, b"1"), digest(A, 2, b"2"), digest(C, 2, b"3")]
    assert [d.recipient_device for d in ordered(ds)] == [C, A, B]
    assert ds[0] == EnvelopeDigest(B, 2, hashlib.sha256(b"1").digest())


def test_sender_key_hash_is_the_ciphertext_sha256():
    assert sender_key_content_hash(b"group") == hashlib.sha256(b"group").digest()
