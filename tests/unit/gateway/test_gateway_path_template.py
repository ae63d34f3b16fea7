import pytest

from gateway.path_template import (
    PathDecodeError,
    PathTemplate,
    PathTemplateError,
    decode_variable,
    normalize_path,
)


@pytest.mark.parametrize(
    ("template", "segments", "verb", "variables"),
    [
        ("/api/v1/users:lookup", ("api", "v1", "users"), "lookup", []),
        ("/v1/things", ("v1", "things"), None, []),
        ("/v1/{name}", ("v1", "*"), None, [("name", 1, 2, False)]),
        ("/v1/{name=*}", ("v1", "*"), None, [("name", 1, 2, False)]),
        ("/v1/{name=users/*}", ("v1", "users", "*"), None, [("name", 1, 3, True)]),
        (
            "/api/v1/{name=users/*/devices/*}:revoke",
            ("api", "v1", "users", "*", "devices", "*"),
            "revoke",
            [("name", 2, 6, True)],
        ),
        ("/v1/{name=**}", ("v1", "**"), None, [("name", 1, 2, True)]),
        (
            "/v1/{device.name=users/*/devices/*}",
            ("v1", "users", "*", "devices", "*"),
            None,
            [("device.name", 1, 5, True)],
        ),
        (
            "/v1/{parent=shelves/*}/things/{thing_id}",
            ("v1", "shelves", "*", "things", "*"),
            None,
            [("parent", 1, 3, True), ("thing_id", 4, 5, False)],
        ),
        ("/v1/*/x/**", ("v1", "*", "x", "**"), None, []),
        (
            "/v1/{name=users/*/devices/*/prekeyStatus}",
            ("v1", "users", "*", "devices", "*", "prekeyStatus"),
            None,
            [("name", 1, 6, True)],
        ),
    ],
)
def test_parse(template, segments, verb, variables):
    t = PathTemplate.parse(template)
    assert t.segments == segments
    assert t.verb == verb
    assert [(v.name, v.start, v.end, v.multi_segment) for v in t.variables] == variables
    assert str(t) == template


@pytest.mark.parametrize(
    "template",
    [
        "",
        "v1/things",  # no leading slash
        "/v1/{name",  # unclosed
        "/v1/{name=users/{id}}",  # nested
        "/v1/**/things",  # ** not last
        "/v1/{a}/{a}",  # bound twice
        "/v1/{a}/{a.b}",  # prefix bound twice
        "/v1//things",  # empty segment
        "/v1/things:",  # empty verb
        "/v1/{1abc}",  # bad identifier
        "/v1/{name=}",  # empty pattern
        "/v1/things/",  # trailing slash
        "/v1/a:b/c",  # verb must be last
    ],
)
def test_parse_rejects_invalid(template):
    with pytest.raises(PathTemplateError):
        PathTemplate.parse(template)


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("/api/v1/users:lookup", "/api/v1/users:lookup", {}),
        ("/v1/{name=users/*}", "/v1/users/42", {"name": "users/42"}),
        (
            "/api/v1/{name=users/*/devices/*}:revoke",
            "/api/v1/users/u1/devices/d1:revoke",
            {"name": "users/u1/devices/d1"},
        ),
        ("/v1/{name=**}", "/v1/a/b/c", {"name": "a/b/c"}),
        ("/v1/{name=shelves/**}:undelete", "/v1/shelves/x/y:undelete", {"name": "shelves/x/y"}),
        (
            "/v1/{device.name=users/*/devices/*}",
            "/v1/users/1/devices/2",
            {"device.name": "users/1/devices/2"},
        ),
        (
            "/v1/{parent=shelves/*}/things/{id}",
            "/v1/shelves/s/things/t",
            {"parent": "shelves/s", "id": "t"},
        ),
        ("/v1/{name=users/*}", "/v1/users/a:b", {"name": "users/a:b"}),  # no verb: ':' is data
    ],
)
def test_match(template, path, expected):
    assert PathTemplate.parse(template).match(path) == expected


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("/api/v1/users:lookup", "/api/v1/users"),  # verb missing
        ("/api/v1/users:lookup", "/api/v1/users:other"),
        ("/api/v1/users:lookup", "/api/v1/users%3Alookup"),  # an escaped ':' is not a verb
        ("/v1/{name=users/*}", "/v1/users"),
        ("/v1/{name=users/*}", "/v1/users/a/b"),  # * is one segment
        ("/v1/{name=users/*}", "/v1/groups/a"),
        ("/v1/{name=users/*}", "/v1/users/"),  # empty segment
        ("/v1/{name}", "/v2/x"),
        ("/v1/{name=**}", "/v1"),
        ("/api/v1/{name=users/*/devices/*}:revoke", "/api/v1/users/u/devices/d"),
    ],
)
def test_no_match(template, path):
    assert PathTemplate.parse(template).match(path) is None


def test_single_segment_variable_decodes_everything():
    t = PathTemplate.parse("/v1/keys/{key}")
    assert t.match("/v1/keys/a%2Fb%20c%3Ad") == {"key": "a/b c:d"}
    assert t.match("/v1/keys/caf%C3%A9") == {"key": "café"}


def test_multi_segment_variable_keeps_encoded_slash():
    t = PathTemplate.parse("/v1/{name=**}")
    assert t.match("/v1/a/b%2fc/%41%20") == {"name": "a/b%2Fc/A "}
    t = PathTemplate.parse("/v1/{name=users/*}")
    assert t.match("/v1/users/x%2Fy") == {"name": "users/x%2Fy"}


def test_unreserved_escapes_match_literals():
    assert PathTemplate.parse("/v1/users:lookup").match("/v1/%75sers:lookup") == {}


@pytest.mark.parametrize("path", ["/v1/keys/%zz", "/v1/keys/%4", "/v1/keys/%C3%28"])
def test_malformed_escapes_raise(path):
    with pytest.raises(PathDecodeError):
        PathTemplate.parse("/v1/keys/{key}").match(path)


def test_normalize_and_decode_helpers():
    assert normalize_path("/a/%7e%2f%3a") == "/a/~%2F%3A"
    assert normalize_path("/plain") == "/plain"
    assert decode_variable("a%2Fb", multi_segment=False) == "a/b"
    assert decode_variable("a%2Fb%25", multi_segment=True) == "a%2Fb%"


def test_specificity_orders_literals_first_and_verbs_first():
    a = PathTemplate.parse("/v1/{name=**}")
    b = PathTemplate.parse("/v1/things/{id}")
    c = PathTemplate.parse("/v1/things/special")
    d = PathTemplate.parse("/v1/things/{id}:do")
    ordered = sorted([a, b, c, d], key=lambda t: t.specificity)
    assert [t.template for t in ordered] == [
        "/v1/things/special", "/v1/things/{id}:do", "/v1/things/{id}", "/v1/{name=**}",
    ]


def test_shape_ignores_variable_names():
    assert PathTemplate.parse("/v1/{a=users/*}").shape == PathTemplate.parse("/v1/users/{b}").shape
    assert PathTemplate.parse("/v1/{a}").shape != PathTemplate.parse("/v1/{a}:x").shape
