"""Inbox cursors and page tokens: opaque, bound to their device / request."""

from __future__ import annotations

import base64

import pytest

from services.messaging.cursors import (
    decode_cursor,
    decode_page_token,
    encode_cursor,
    encode_page_token,
    request_digest,
)
from services.runtime.errors import InvalidArgument


def test_cursor_round_trip_and_order():
    cursors = [encode_cursor("dev-1", seq) for seq in (1, 2, 10, 2**40)]
    assert [decode_cursor("dev-1", c) for c in cursors] == [1, 2, 10, 2**40]
    assert len(set(cursors)) == 4 and all(len(c) < 40 for c in cursors)


@pytest.mark.parametrize("cursor", ["", "x", "not base64 !!", "AAAA",
                                    base64.urlsafe_b64encode(b"\x02" + b"\x00" * 12).decode()])
def test_garbage_cursors_are_invalid_argument(cursor):
    with pytest.raises(InvalidArgument) as e:
        decode_cursor("dev-1", cursor)
    assert e.value.reason == "INVALID_CURSOR"


def test_a_cursor_of_another_device_is_refused():
    with pytest.raises(InvalidArgument) as e:
        decode_cursor("dev-2", encode_cursor("dev-1", 5))
    assert e.value.field_violations[0][0] == "cursor"
    with pytest.raises(InvalidArgument) as e:
        decode_cursor("dev-2", encode_cursor("dev-1", 5), "after_cursor")
    assert e.value.field_violations[0][0] == "after_cursor"


def test_page_tokens_are_bound_to_their_request():
    req = request_digest("messages", "conv", "dev", 0, 0, True)
    token = encode_page_token(req, [42])
    assert decode_page_token(token, req) == [42]
    other = request_digest("messages", "conv", "dev", 0, 0, False)
    for bad_req, bad_token in [(other, token), (req, token[:-2]), (req, "garbage"),
                               (req, encode_page_token(req, {"p": 1}))]:  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument) as e:
            decode_page_token(bad_token, bad_req)
        assert e.value.reason == "INVALID_PAGE_TOKEN"
