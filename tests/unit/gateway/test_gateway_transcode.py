import dataclasses
import json

import pytest
from google.protobuf import timestamp_pb2

from gateway.path_template import PathTemplate
from gateway.routes import collect_routes, load_files
from gateway.transcode import TranscodeError, Transcoder


@pytest.fixture(scope="module")
def tc(gwtest):
    """Transcoder by (method name, binding)."""
    routes = collect_routes(load_files([gwtest.module]))
    return {(r.method.name, r.binding): Transcoder(r) for r in routes}


def build(tc, method, path=None, query=b"", body=None, binding=0):
    return tc[(method, binding)].build_request(path or {}, query, body)


def test_path_variables_and_nested_field_path(tc):
    msg = build(tc, "GetThing", {"name": "shelves/s/things/t"})
    assert msg.name == "shelves/s/things/t"
    msg = build(tc, "UpdateThing", {"thing.name": "shelves/s/things/t"},
                body=b'{"title": "x", "name": "ignored"}')
    assert msg.thing.name == "shelves/s/things/t"  # the path wins over the body
    assert msg.thing.title == "x"


def test_body_field_plus_query(tc):
    msg = build(tc, "CreateThing", {"parent": "shelves/s"}, b"thingId=t1&validate_only=true",
                b'{"title": "T", "size": "12", "color": "COLOR_RED", "labels": ["a"]}')
    assert (msg.parent, msg.thing_id, msg.validate_only) == ("shelves/s", "t1", True)
    assert (msg.thing.title, msg.thing.size, msg.thing.color, list(msg.thing.labels)) == (
        "T", 12, 1, ["a"],
    )


def test_body_star_accepts_both_name_styles(tc):
    a = build(tc, "ArchiveThing", {"name": "shelves/s/things/t"},
              body=b'{"reason": "r", "ttl": "2s"}')
    assert (a.name, a.reason, a.ttl.seconds) == ("shelves/s/things/t", "r", 2)
    b = build(tc, "Search", binding=2,
              body=b'{"min_size": "5", "pageSize": 3, "include_archived": true}')
    assert (b.min_size, b.page_size, b.include_archived) == (5, 3, True)


def test_empty_body_means_no_body(tc):
    assert build(tc, "ArchiveThing", {"name": "n"}, body=b"").reason == ""
    assert not build(tc, "CreateThing", {"parent": "p"}, body=b" ").HasField("thing")
    assert not build(tc, "CreateThing", {"parent": "p"}, body=b"null").HasField("thing")


def test_query_parameters_of_every_kind(tc):
    q = (
        "query=hi+there&pageSize=5&minSize=9007199254740993&max_size=18446744073709551615"
        "&includeArchived=TRUE&color=COLOR_GREEN&tags=a&tags=b&colors=1&colors=COLOR_GREEN"
        "&ids=1&ids=-2&filter.owner=bob&filter.range.lo=3&filter.color=2"
        "&createdAfter=2024-01-02T03:04:05Z&maxAge=1.5s&readMask=title,createTime"
        "&minRating=4&starred=false&score=1.25&weight=0.5&token=AAE%3D&offset=-7&flags=42"
    )
    m = build(tc, "Search", query=q.encode())
    assert m.query == "hi there" and m.page_size == 5
    assert m.min_size == 9007199254740993 and m.max_size == 2**64 - 1
    assert m.include_archived is True and m.color == 2
    assert list(m.tags) == ["a", "b"] and list(m.colors) == [1, 2] and list(m.ids) == [1, -2]
    assert (m.filter.owner, m.filter.range.lo, m.filter.color) == ("bob", 3, 2)
    assert m.created_after == timestamp_pb2.Timestamp(seconds=1704164645)
    assert (m.max_age.seconds, m.max_age.nanos) == (1, 500_000_000)
    assert list(m.read_mask.paths) == ["title", "create_time"]
    assert m.min_rating.value == 4 and m.HasField("starred") and m.starred.value is False
    assert (m.score, m.weight, m.token, m.offset, m.flags) == (1.25, 0.5, b"\x00\x01", -7, 42)


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "reason", "field"),
    [
        ("CreateThing", {"parent": "p"}, b"", b"{not json", "MALFORMED_JSON", None),
        ("CreateThing", {"parent": "p"}, b"", b"\xff\xfe", "MALFORMED_JSON", None),
        ("CreateThing", {"parent": "p"}, b"", b'{"title": 1, "title": 2}', "MALFORMED_JSON", None),
        ("CreateThing", {"parent": "p"}, b"", b'{"titel": "x"}', "UNKNOWN_FIELD", "thing.titel"),
        ("CreateThing", {"parent": "p"}, b"", b'{"title": 5}', "INVALID_FIELD_VALUE",
         "thing.title"),
        ("CreateThing", {"parent": "p"}, b"", b'{"size": "big"}', "INVALID_FIELD_VALUE",
         "thing.size"),
        ("CreateThing", {"parent": "p"}, b"", b'{"size": "99999999999999999999"}',
         "INVALID_FIELD_VALUE", "thing.size"),
        ("CreateThing", {"parent": "p"}, b"", b'{"color": "COLOR_BLUE"}', "INVALID_FIELD_VALUE",
         "thing.color"),
        ("CreateThing", {"parent": "p"}, b"", b'{"labels": "a"}', "INVALID_FIELD_VALUE",
         "thing.labels"),
        ("CreateThing", {"parent": "p"}, b"", b'"x"', "INVALID_BODY", None),
        ("ArchiveThing", {"name": "n"}, b"", b"[1, 2]", "INVALID_BODY", None),
        ("ArchiveThing", {"name": "n"}, b"", b'{"ttl": 5}', "INVALID_FIELD_VALUE", "ttl"),
        ("ArchiveThing", {"name": "n"}, b"", b'{"nope": 1}', "UNKNOWN_FIELD", "nope"),
        ("ArchiveThing", {"name": "n"}, b"reason=x", b"{}", "INVALID_QUERY_PARAMETER", "reason"),
        ("Search", {}, b"pageSiz=1", None, "UNKNOWN_FIELD", "pageSiz"),
        ("Search", {}, b"pageSize=abc", None, "INVALID_FIELD_VALUE", "pageSize"),
        ("Search", {}, b"pageSize=1&pageSize=2", None, "INVALID_QUERY_PARAMETER", "pageSize"),
        ("Search", {}, b"includeArchived=yes", None, "INVALID_FIELD_VALUE", "includeArchived"),
        ("Search", {}, b"color=PURPLE", None, "INVALID_FIELD_VALUE", "color"),
        ("Search", {}, b"filter=x", None, "INVALID_QUERY_PARAMETER", "filter"),
        ("Search", {}, b"query.x=1", None, "INVALID_QUERY_PARAMETER", "query.x"),
        ("Search", {}, b"createdAfter=yesterday", None, "INVALID_FIELD_VALUE", "createdAfter"),
        ("Search", {"parent": "shelves/s"}, b"parent=x", None, "INVALID_QUERY_PARAMETER",
         "parent"),
        ("UpdateThing", {"thing.name": "n"}, b"thing.title=x", b"{}", "INVALID_QUERY_PARAMETER",
         "thing.title"),
    ],
)
def test_bad_input_is_a_transcode_error(tc, method, path, query, body, reason, field):
    binding = 1 if method == "Search" and path else 0
    with pytest.raises(TranscodeError) as e:
        build(tc, method, path, query, body, binding=binding)
    assert e.value.reason == reason
    assert e.value.field == field
    assert e.value.message


def test_response_is_proto3_json(gwtest, tc):
    pb2 = gwtest.pb2
    thing = pb2.Thing(
        name="shelves/s/things/t", size=2**40, color=pb2.COLOR_RED, views=2**63,
        create_time=timestamp_pb2.Timestamp(seconds=1700000000), payload=b"\x00\x01",
        attributes={"k": "v"},
    )
    out = json.loads(tc[("GetThing", 0)].encode_response(thing))
    assert out == {
        "name": "shelves/s/things/t", "size": "1099511627776", "color": "COLOR_RED",
        "views": "9223372036854775808", "createTime": "2023-11-14T22:13:20Z",
        "payload": "AAE=", "attributes": {"k": "v"},
    }  # title, labels, archived are at their defaults: omitted


def test_response_body_selects_a_field(gwtest, tc):
    t = tc[("ListLabels", 0)]
    assert json.loads(t.encode_response(gwtest.pb2.Thing(labels=["x", "y"]))) == ["x", "y"]
    assert json.loads(t.encode_response(gwtest.pb2.Thing())) == []


def test_invalid_rules_fail_at_startup(gwtest):
    base = next(
        r for r in collect_routes(load_files([gwtest.module])) if r.method.name == "GetThing"
    )
    assert Transcoder(base).request_class is gwtest.pb2.GetThingRequest
    with pytest.raises(ValueError, match="no field"):
        Transcoder(dataclasses.replace(base, template=PathTemplate.parse("/v1/{nam}")))
    with pytest.raises(ValueError, match="no field"):
        Transcoder(dataclasses.replace(base, body="nope"))
    with pytest.raises(ValueError, match="no field"):
        Transcoder(dataclasses.replace(base, response_body="nope"))
    update = next(
        r for r in collect_routes(load_files([gwtest.module])) if r.method.name == "UpdateThing"
    )
    with pytest.raises(ValueError, match="singular scalar"):
        Transcoder(dataclasses.replace(update, template=PathTemplate.parse("/v1/{thing}")))
