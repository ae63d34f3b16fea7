"""Resource-name templates: parse into ids, format back, refuse what does not fit."""

from __future__ import annotations

import pytest

from services.runtime.errors import InvalidArgument
from services.runtime.names import DEVICE, MESSAGE, USER, NameTemplate


def test_round_trip():
    assert DEVICE.parse("users/u-1/devices/d-2", "device") == ("u-1", "d-2")
    assert DEVICE.format("u-1", "d-2") == "users/u-1/devices/d-2"
    assert USER.parse_id("users/me", "name") == "me"
    assert NameTemplate("a/{x}/b/{y}/c/{z}").format("1", "2", "3") == "a/1/b/2/c/3"


@pytest.mark.parametrize("bad", ["", "users/", "users/a/b", "user/x", "users/a b",
                                 "users/" + "x" * 65, "users/x/", "/users/x", "users/ü"])
def test_refusals_name_the_field(bad):
    with pytest.raises(InvalidArgument) as e:
        USER.parse(bad, "parent")
    assert e.value.reason == "INVALID_NAME"
    assert e.value.field_violations == [("parent", "must look like users/{user}")]
    assert USER.match(bad) is None


def test_the_offending_value_is_cut_in_the_message():
    with pytest.raises(InvalidArgument) as e:
        MESSAGE.parse("x" * 10_000, "name")
    assert len(e.value.message) < 300
