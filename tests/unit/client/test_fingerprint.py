"""Safety numbers."""

import hashlib

import pytest

from clients.sdk.crypto.fingerprint import fingerprint, format_safety_number, safety_number

pytestmark = pytest.mark.timeout(30)
A_KEYS = [bytes(range(32)), bytes(range(1, 33))]
B_KEYS = [bytes([0xAB]) * 32]


def test_symmetric_and_sixty_digits():
    ab = safety_number("users/a", A_KEYS, "users/b", B_KEYS)
    ba = safety_number("users/b", B_KEYS, "users/a", A_KEYS)
    assert ab == ba and len(ab) == 60 and ab.isdigit()


def test_follows_the_documented_construction():
    keys = b"".join(sorted(A_KEYS))
    h = hashlib.sha512(b"\x00\x00" + keys + b"users/a").digest()
    for _ in range(5200):
        h = hashlib.sha512(h + keys).digest()
    expected = "".join(str(int.from_bytes(h[i:i + 5], "big") % 100000).zfill(5)
                       for i in range(0, 30, 5))
    assert fingerprint("users/a", A_KEYS) == expected


def test_stable_across_runs_and_key_order():
    # Pinned: a change here would break every user's verified contacts.
    assert fingerprint("users/a", A_KEYS) == fingerprint("users/a", list(reversed(A_KEYS)))
    assert fingerprint("users/b", B_KEYS) == "340750086805934522082230183479"


def test_any_key_or_id_change_changes_the_number():
    base = safety_number("users/a", A_KEYS, "users/b", B_KEYS)
    assert safety_number("users/a", A_KEYS[:1], "users/b", B_KEYS) != base  # device gone
    assert safety_number("users/a", A_KEYS, "users/b", [bytes(32)]) != base  # new key
    assert safety_number("users/a", A_KEYS, "users/c", B_KEYS) != base


def test_format():
    text = format_safety_number("0123456789" * 6)
    assert text.splitlines() == ["01234 56789 01234 56789"] * 3


def test_no_keys_is_an_error():
    with pytest.raises(ValueError):
        fingerprint("users/a", [])
