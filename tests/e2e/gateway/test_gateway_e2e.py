"""The real gateway (uvicorn, 127.0.0.1) in front of an in-test grpc.aio service, over HTTP.

The service's contract (tests/protos/gwtest/v1/gwtest.proto) is compiled at test time, so this
also proves that an annotated RPC is exposed over REST without any gateway code change.
"""

import json
import uuid

import pytest

AUTH = {"authorization": "Bearer test-token"}


def error_of(resp, http, reason=None):
    assert resp.status_code == http, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"code", "message", "details"}
    assert isinstance(body["code"], int) and body["message"]
    assert "Traceback" not in resp.text
    if reason is not None:
        infos = [d for d in body["details"] if d["@type"].endswith("google.rpc.ErrorInfo")]
        assert infos and infos[0]["reason"] == reason and infos[0]["domain"] == "zynk.dev", body
    return body


# -- happy paths: every binding form -----------------------------------------------------------


async def test_get_multi_segment_template_and_proto3_json(client):
    r = await client.get("/api/v1/shelves/s1/things/t1", headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {
        "name": "shelves/s1/things/t1", "title": "A thing", "size": "1099511627776",
        "color": "COLOR_RED", "labels": ["a", "b"], "createTime": "2023-11-14T22:13:20Z",
        "attributes": {"k": "v"}, "payload": "AAE=", "views": "9223372036854775808",
    }
    uuid.UUID(r.headers["x-request-id"], version=4)


async def test_post_body_field_with_query_params(client):
    r = await client.post(
        "/api/v1/shelves/s1/things?thingId=t9&validate_only=true",
        json={"title": "T", "size": "5", "labels": ["x"], "create_time": None},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "shelves/s1/things/t9", "title": "T (validated)", "size": "5",
                        "labels": ["x"]}


async def test_patch_nested_field_path(client):
    r = await client.patch(
        "/api/v1/shelves/s1/things/t1?updateMask=title,labels",
        json={"title": "new", "name": "shelves/other/things/x"}, headers=AUTH,
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "shelves/s1/things/t1", "title": "new",
                        "labels": ["title", "labels"]}


async def test_custom_verb_with_body_star(client):
    r = await client.post("/api/v1/shelves/s1/things/t1:archive",
                          json={"reason": "old", "ttl": "3600s"}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "shelves/s1/things/t1", "title": "old", "size": "3600",
                        "archived": True}
    r = await client.post("/api/v1/shelves/s1/things/t1:archive", headers=AUTH)  # no body: {}
    assert r.status_code == 200 and r.json()["archived"] is True


async def test_double_wildcard_keeps_encoded_slash(client):
    r = await client.get("/api/v1/blobs/a/b/c%2Fd", headers=AUTH)
    assert r.status_code == 200 and r.json() == {"name": "blobs/a/b/c%2Fd"}


async def test_single_segment_variable_is_fully_decoded(client):
    r = await client.get("/api/v1/keys/a%2Fb%20c%C3%A9", headers=AUTH)
    assert r.status_code == 200 and r.json() == {"name": "a/b cé"}


async def test_query_params_of_many_types(client):
    params = [
        ("query", "hi there"), ("pageSize", "5"), ("minSize", "9007199254740993"),
        ("max_size", "18446744073709551615"), ("includeArchived", "true"),
        ("color", "COLOR_GREEN"), ("tags", "a"), ("tags", "b"), ("colors", "1"),
        ("colors", "COLOR_GREEN"), ("ids", "1"), ("ids", "-2"), ("filter.owner", "bob"),
        ("filter.range.lo", "3"), ("filter.color", "2"), ("createdAfter", "2024-01-02T03:04:05Z"),
        ("maxAge", "1.5s"), ("readMask", "title,createTime"), ("minRating", "4"),
        ("starred", "false"), ("score", "1.25"), ("weight", "0.5"), ("token", "AAE="),
        ("offset", "-7"), ("flags", "42"),
    ]
    r = await client.get("/api/v1/things:search", params=params, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json() == {"echo": {
        "query": "hi there", "pageSize": 5, "minSize": "9007199254740993",
        "maxSize": "18446744073709551615", "includeArchived": True, "color": "COLOR_GREEN",
        "tags": ["a", "b"], "colors": ["COLOR_RED", "COLOR_GREEN"], "ids": ["1", "-2"],
        "filter": {"owner": "bob", "range": {"lo": 3}, "color": "COLOR_GREEN"},
        "createdAfter": "2024-01-02T03:04:05Z", "maxAge": "1.500s",
        "readMask": "title,createTime", "minRating": 4, "starred": False, "score": 1.25,
        "weight": 0.5, "token": "AAE=", "offset": "-7", "flags": 42,
    }}


async def test_additional_bindings(client):
    r = await client.get("/api/v1/shelves/s7/things:search?query=x", headers=AUTH)
    assert r.json() == {"echo": {"parent": "shelves/s7", "query": "x"}}
    r = await client.post("/api/v1/things:search", json={"query": "y", "min_size": "3"},
                          headers=AUTH)
    assert r.json() == {"echo": {"query": "y", "minSize": "3"}}


async def test_response_body(client):
    r = await client.get("/api/v1/shelves/s1/things/t1/labels", headers=AUTH)
    assert r.status_code == 200 and r.json() == ["x", "y"]
    r = await client.get("/api/v1/shelves/s1/things/empty/labels", headers=AUTH)
    assert r.status_code == 200 and r.json() == []


async def test_server_streaming_as_ndjson(client):
    r = await client.get("/api/v1/shelves/s1/things:watch?count=3", headers=AUTH)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert lines == [{"name": "shelves/s1/things/0"},
                     {"name": "shelves/s1/things/1", "size": "1"},
                     {"name": "shelves/s1/things/2", "size": "2"}]


async def test_stream_error_after_messages_is_a_final_line(client):
    r = await client.get("/api/v1/shelves/s1/things:watch?count=2&failCode=9", headers=AUTH)
    assert r.status_code == 200
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert len(lines) == 3 and lines[-1] == {
        "error": {"code": 9, "message": "the stream broke", "details": []}
    }


async def test_stream_error_before_any_message_is_a_plain_error(client):
    r = await client.get("/api/v1/shelves/s1/things:watch?count=0&failCode=5", headers=AUTH)
    assert error_of(r, 404)["message"] == "the stream broke"


# -- access and metadata -----------------------------------------------------------------------


async def test_public_method_needs_no_token(client):
    r = await client.get("/api/v1/ping")
    assert r.status_code == 200 and r.json() == {"pong": "pong"}


async def test_other_methods_need_a_token(client):
    error_of(await client.get("/api/v1/shelves/s1/things/t1"), 401, "MISSING_CREDENTIALS")


async def test_internal_method_is_not_routed(client):
    error_of(await client.post("/api/v1/internal", json={}, headers=AUTH), 404, "ROUTE_NOT_FOUND")


async def test_metadata_is_forwarded(client):
    r = await client.get("/api/v1/echo/metadata",
                         headers={**AUTH, "x-request-id": "req-123", "cookie": "secret=1"})
    assert r.status_code == 200
    md = r.json()["metadata"]
    assert md["authorization"] == "Bearer test-token"
    assert md["x-request-id"] == "req-123" and r.headers["x-request-id"] == "req-123"
    assert md["x-forwarded-for"] == "127.0.0.1"
    assert "cookie" not in md


async def test_insane_request_id_is_replaced(client):
    r = await client.get("/api/v1/echo/metadata", headers={**AUTH, "x-request-id": "a b\tc;"})
    rid = r.headers["x-request-id"]
    uuid.UUID(rid, version=4)
    assert r.json()["metadata"]["x-request-id"] == rid


# -- upstream errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "http"),
    [(3, 400), (16, 401), (7, 403), (5, 404), (6, 409), (10, 409), (8, 429), (9, 400),
     (12, 501), (14, 503), (4, 504), (1, 499), (13, 500), (2, 500), (11, 500)],
)
async def test_status_mapping_through_the_wire(client, code, http):
    r = await client.post("/api/v1/fail", json={"code": code, "message": "m"}, headers=AUTH)
    body = error_of(r, http)
    assert body["code"] == code


async def test_rich_error_details(client):
    r = await client.post("/api/v1/fail", json={"code": 3, "message": "bad thing", "rich": True},
                          headers=AUTH)
    body = error_of(r, 400)
    assert body["message"] == "bad thing"
    types = [d["@type"].rsplit("/", 1)[1] for d in body["details"]]
    assert types == ["google.rpc.ErrorInfo", "google.rpc.BadRequest", "google.rpc.RetryInfo"]
    assert body["details"][0]["reason"] == "THING_INVALID"
    assert body["details"][0]["metadata"] == {"thing": "t1"}
    assert body["details"][1]["fieldViolations"] == [
        {"field": "thing.title", "description": "must not be empty"}
    ]


async def test_rate_limit_sets_retry_after(client):
    r = await client.post("/api/v1/fail", json={"code": 8, "message": "slow", "rich": True},
                          headers=AUTH)
    error_of(r, 429)
    assert r.headers["retry-after"] == "7"


async def test_crash_is_500_without_internals(client):
    r = await client.post("/api/v1/fail", json={"crash": True}, headers=AUTH)
    body = error_of(r, 500)
    assert body["message"] == "internal error"
    assert "boom" not in r.text and "secret" not in r.text and "/srv" not in r.text


async def test_upstream_not_found(client):
    r = await client.get("/api/v1/shelves/s1/things/missing", headers=AUTH)
    assert error_of(r, 404)["message"] == "shelves/s1/things/missing not found"


async def test_upstream_unavailable_is_503(dead_client):
    r = await dead_client.get("/api/v1/ping")
    body = error_of(r, 503)
    assert body["code"] == 14 and "127.0.0.1" not in r.text


# -- client mistakes: always a 4xx Status, never a 500 ----------------------------------------


async def test_malformed_json(client):
    r = await client.post("/api/v1/shelves/s1/things/t1:archive", content=b'{"reason": ',
                          headers={**AUTH, "content-type": "application/json"})
    error_of(r, 400, "MALFORMED_JSON")


async def test_wrong_json_types(client):
    r = await client.post("/api/v1/shelves/s1/things", json={"title": 5, "size": "x"},
                          headers=AUTH)
    body = error_of(r, 400, "INVALID_FIELD_VALUE")
    assert body["details"][1]["fieldViolations"][0]["field"] == "thing.title"
    r = await client.post("/api/v1/shelves/s1/things/t1:archive", json=["not", "an", "object"],
                          headers=AUTH)
    error_of(r, 400, "INVALID_BODY")


async def test_unknown_json_field(client):
    r = await client.post("/api/v1/shelves/s1/things", json={"titel": "typo"}, headers=AUTH)
    body = error_of(r, 400, "UNKNOWN_FIELD")
    assert body["details"][1]["fieldViolations"][0]["field"] == "thing.titel"


async def test_bad_query_params(client):
    error_of(await client.get("/api/v1/things:search?pageSiz=3", headers=AUTH), 400,
             "UNKNOWN_FIELD")
    error_of(await client.get("/api/v1/things:search?pageSize=big", headers=AUTH), 400,
             "INVALID_FIELD_VALUE")
    error_of(await client.get("/api/v1/things:search?minSize=1.5", headers=AUTH), 400,
             "INVALID_FIELD_VALUE")


async def test_oversize_body_by_content_length(client):
    big = b'{"reason": "' + b"x" * (70 * 1024) + b'"}'
    r = await client.post("/api/v1/shelves/s1/things/t1:archive", content=big,
                          headers={**AUTH, "content-type": "application/json"})
    error_of(r, 413, "PAYLOAD_TOO_LARGE")


async def test_oversize_chunked_body(client):
    async def chunks():
        yield b'{"reason": "'
        for _ in range(40):
            yield b"x" * 4096
        yield b'"}'

    r = await client.post("/api/v1/shelves/s1/things/t1:archive", content=chunks(),
                          headers={**AUTH, "content-type": "application/json"})
    error_of(r, 413, "PAYLOAD_TOO_LARGE")


async def test_wrong_content_type(client):
    r = await client.post("/api/v1/shelves/s1/things/t1:archive", content=b"reason=x",
                          headers={**AUTH, "content-type": "application/x-www-form-urlencoded"})
    error_of(r, 415, "UNSUPPORTED_MEDIA_TYPE")
    r = await client.post("/api/v1/shelves/s1/things/t1:archive", content=b"{}",
                          headers={**AUTH, "content-type": "application/json; charset=latin-1"})
    error_of(r, 415, "UNSUPPORTED_MEDIA_TYPE")


async def test_body_on_a_bodiless_route(client):
    r = await client.request("GET", "/api/v1/ping", json={"x": 1})
    error_of(r, 400, "UNEXPECTED_BODY")


async def test_unknown_route_and_wrong_method(client):
    error_of(await client.get("/api/v1/nope", headers=AUTH), 404, "ROUTE_NOT_FOUND")
    error_of(await client.get("/", headers=AUTH), 404, "ROUTE_NOT_FOUND")
    r = await client.delete("/api/v1/ping")
    error_of(r, 405, "METHOD_NOT_ALLOWED")
    assert r.headers["allow"] == "GET"


async def test_malformed_path_escape(client):
    error_of(await client.get("/api/v1/keys/%zz", headers=AUTH), 400, "MALFORMED_PATH")
    error_of(await client.get("/api/v1/keys/%C3%28", headers=AUTH), 400, "MALFORMED_PATH")


# -- health, readiness, OpenAPI, docs ----------------------------------------------------------


async def test_healthz(client):
    r = await client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


async def test_readyz(client, dead_client):
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "services": {"gwtest.v1.GwTestService": "SERVING"},
                        "checks": {"extra-check": True}, "notReady": []}
    r = await dead_client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["notReady"] == ["gwtest.v1.GwTestService"]


async def test_openapi_json_includes_the_test_routes(client):
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert "/api/v1/things:search" in doc["paths"]
    assert "/api/v1/internal" not in doc["paths"]
    get = doc["paths"]["/api/v1/shelves/{shelvesId}/things/{thingsId}"]["get"]
    assert get["operationId"] == "GwTestService_GetThing"
    assert get["description"] == "Gets a thing by resource name."  # comments from the image


async def test_docs_page(client):
    r = await client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "GwTestService_WatchThings" in r.text and "gwtest.v1.Thing" in r.text
    assert "<script" not in r.text and "https://" not in r.text
