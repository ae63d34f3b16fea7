"""The plaintext format and its padding."""

import json

import pytest

from clients.sdk import plaintext as pt
from clients.sdk.crypto.senderkey import Distribution
from clients.sdk.errors import ContentError, UnsupportedContent

MID = "6f1c2a3b-0000-4000-8000-000000000001"
SAMPLES = [
    pt.Text("hello ✓ 👋"),
    pt.Edit(MID, "hello, corrected"),
    pt.Reaction(MID, "👍"),
    pt.Reaction(MID, "👍", remove=True),
    pt.Delete(MID),
    pt.SenderKey("conversations/x", Distribution(7, 3, bytes(range(32)), bytes(32))),
    pt.SenderKeyRequest("conversations/x", "users/u/devices/d", 7),
]


@pytest.mark.parametrize("content", SAMPLES, ids=lambda c: type(c).__name__)
def test_round_trip(content):
    assert pt.decode(pt.encode(content)) == content


def test_versioned_json_inside():
    raw = pt.unpad(pt.encode(pt.Text("hi")))
    assert json.loads(raw) == {"v": 1, "kind": "text", "body": "hi"}


def test_padding_hides_small_lengths_and_buckets_large_ones():
    sizes = {len(pt.encode(pt.Text("x" * n))) for n in range(1, 200)}
    assert sizes == {pt.MIN_PADDED}  # every short message is the same size
    big = [len(pt.encode(pt.Text("y" * n))) for n in range(1000, 9000, 7)]
    assert len(set(big)) < len(big) / 20  # few distinct sizes...
    for n, size in zip(range(1000, 9000, 7), big, strict=True):
        assert size <= (n + 40) * 1.13  # ...at a bounded cost (Padmé: at most ~12%)


def test_padme_values():
    assert [pt.padme(n) for n in (1, 2, 9, 100, 1000, 1025, 65536)] == \
        [1, 2, 10, 104, 1024, 1088, 65536]  # Padmé paper, §4


@pytest.mark.parametrize("data", [b"", b"\x00" * 10, b"abc", b"abc\x80\x01"])
def test_bad_padding(data):
    with pytest.raises(ContentError):
        pt.unpad(data)


def _raw(obj) -> bytes:
    return pt.pad(json.dumps(obj).encode())


def test_newer_versions_and_kinds_are_unsupported_not_malformed():
    with pytest.raises(UnsupportedContent, match="newer"):
        pt.decode(_raw({"v": 2, "kind": "text", "body": "x"}))
    with pytest.raises(UnsupportedContent, match="poll"):
        pt.decode(_raw({"v": 1, "kind": "poll"}))
    # Unknown extra fields are fine (forward compatible).
    assert pt.decode(_raw({"v": 1, "kind": "text", "body": "x", "future": 1})) == pt.Text("x")


@pytest.mark.parametrize("obj", [
    [1, 2], {"kind": "text", "body": "x"}, {"v": 1, "kind": "text"},
    {"v": 1, "kind": "text", "body": 5}, {"v": 1, "kind": "edit", "target": "nope", "body": "x"},
    {"v": 1, "kind": "react", "target": MID, "emoji": "x", "remove": "yes"},
    {"v": 1, "kind": "sender_key", "conversation": "c", "chainId": -1, "iteration": 0,
     "chainKey": "", "signingKey": ""},
    {"v": 1, "kind": "sender_key", "conversation": "c", "chainId": 1, "iteration": 0,
     "chainKey": "!!", "signingKey": ""},
])
def test_malformed(obj):
    with pytest.raises(ContentError):
        pt.decode(_raw(obj))


def test_not_json_at_all():
    with pytest.raises(ContentError):
        pt.decode(pt.pad(b"\xff\xfe binary"))


def test_limits():
    with pytest.raises(ContentError, match="empty"):
        pt.encode(pt.Text("   "))
    with pytest.raises(ContentError, match="longer"):
        pt.encode(pt.Text("x" * (pt.MAX_BODY_CHARS + 1)))
    with pytest.raises(ContentError):
        pt.encode(pt.Reaction(MID, ""))
    assert len(pt.encode(pt.Text("€" * pt.MAX_BODY_CHARS))) <= pt.MAX_PADDED
