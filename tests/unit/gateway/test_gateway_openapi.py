import importlib.util
import json
import pathlib

import pytest

from gateway import openapi
from gateway.docs import render_docs
from gateway.routes import load_files

ROOT = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def doc(gwtest):
    return openapi.build(openapi.files_from_image(gwtest.image))


def ops(doc):
    return {
        op["operationId"]: (method, path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
    }


def test_one_operation_per_binding_and_no_internal(doc):
    by_id = ops(doc)
    search = {"GwTestService_Search", "GwTestService_Search_1", "GwTestService_Search_2"}
    assert search <= set(by_id)
    assert by_id["GwTestService_Search_2"][:2] == ("post", "/api/v1/things:search")
    assert by_id["GwTestService_Search_1"][1] == "/api/v1/shelves/{shelvesId}/things:search"
    assert not any("InternalOnly" in i for i in by_id)
    assert doc["openapi"] == "3.1.0"
    assert [t["name"] for t in doc["tags"]] == ["GwTestService"]
    assert doc["tags"][0]["description"] == "Exercises the gateway's transcoding."


def test_paths_params_security_and_descriptions(doc):
    method, path, op = ops(doc)["GwTestService_CreateThing"]
    assert (method, path) == ("post", "/api/v1/shelves/{shelvesId}/things")
    params = {p["name"]: p for p in op["parameters"]}
    assert params["shelvesId"]["in"] == "path" and params["shelvesId"]["required"]
    assert params["thingId"] == {
        "name": "thingId", "in": "query", "schema": {"type": "string"},
        "description": "Client-chosen id.",
    }
    assert "thing" not in params and "parent" not in params
    assert op["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/gwtest.v1.Thing"
    }
    assert op["security"] == [{"bearer": []}]
    assert op["summary"].startswith("Creates a thing")
    assert op["responses"]["default"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/google.rpc.Status"
    }
    assert ops(doc)["GwTestService_Ping"][2]["security"] == []
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_query_params_cover_nested_repeated_and_wkt(doc):
    params = {p["name"]: p for p in ops(doc)["GwTestService_Search"][2]["parameters"]}
    assert params["minSize"]["schema"] == {"type": "string", "format": "int64"}
    assert params["tags"]["schema"] == {"type": "array", "items": {"type": "string"}}
    assert params["tags"]["explode"] is True
    assert params["filter.range.lo"]["schema"]["type"] == "integer"
    assert params["createdAfter"]["schema"]["format"] == "date-time"
    assert params["color"]["schema"] == {"$ref": "#/components/schemas/gwtest.v1.Color"}
    assert params["minRating"]["schema"]["type"] == ["integer", "null"]
    assert "filter" not in params


def test_body_schema_drops_path_bound_fields(doc):
    op = ops(doc)["GwTestService_UpdateThing"][2]
    body = op["requestBody"]["content"]["application/json"]["schema"]
    assert "name" not in body["properties"] and "title" in body["properties"]
    assert [p["name"] for p in op["parameters"]] == ["shelvesId", "thingsId", "updateMask"]
    archive = ops(doc)["GwTestService_ArchiveThing"][2]
    assert set(archive["requestBody"]["content"]["application/json"]["schema"]["properties"]) == {
        "reason", "ttl"
    }


def test_response_body_streaming_and_multi_segment(doc):
    labels = ops(doc)["GwTestService_ListLabels"][2]["responses"]["200"]["content"]
    assert labels["application/json"]["schema"] == {"type": "array", "items": {"type": "string"}}
    watch = ops(doc)["GwTestService_WatchThings"][2]["responses"]["200"]["content"]
    assert set(watch) == {"application/x-ndjson"}
    assert ops(doc)["GwTestService_GetBlob"][1] == "/api/v1/blobs/{blobsId}"


def test_schemas_follow_proto3_json(doc):
    thing = doc["components"]["schemas"]["gwtest.v1.Thing"]
    props = thing["properties"]
    assert thing["description"] == "A thing on a shelf."
    assert props["size"] == {"type": "string", "format": "int64"}
    assert props["views"] == {"type": "string", "format": "uint64"}
    assert props["createTime"] == {"type": "string", "format": "date-time", "readOnly": True}
    assert props["payload"]["contentEncoding"] == "base64"
    assert props["attributes"] == {"type": "object", "additionalProperties": {"type": "string"}}
    assert props["name"]["description"].startswith("Resource name")
    assert thing["required"] == ["title"]
    color = doc["components"]["schemas"]["gwtest.v1.Color"]
    assert color["enum"] == ["COLOR_UNSPECIFIED", "COLOR_RED", "COLOR_GREEN"]
    assert "Like a tomato." in color["description"]
    assert "google.rpc.Status" in doc["components"]["schemas"]
    # Only reachable types are emitted.
    assert "gwtest.v1.FailResponse" in doc["components"]["schemas"]
    assert "gwtest.v1.GetThingRequest" not in doc["components"]["schemas"]


def test_deterministic_and_order_independent(gwtest):
    files = openapi.files_from_image(gwtest.image)
    a = openapi.dump(openapi.build(files))
    b = openapi.dump(openapi.build(list(reversed(files))))
    assert a == b and a.endswith("\n")
    assert json.loads(a)["paths"]


def test_loaded_descriptors_give_the_same_operations(gwtest, doc):
    files = openapi.files_from_descriptors(load_files([gwtest.module]))
    from_loaded = openapi.build(files)
    assert set(ops(from_loaded)) == set(ops(doc))
    # CopyToProto has no source info, so no comments; the structure is otherwise the same.
    assert "description" not in from_loaded["components"]["schemas"]["gwtest.v1.Thing"]


def test_tools_openapi_write(gwtest, tmp_path):
    spec = importlib.util.spec_from_file_location("tools_openapi", ROOT / "tools" / "openapi.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "openapi.json"
    mod.write(gwtest.image, out)
    first = out.read_bytes()
    mod.write(gwtest.image, out)
    assert out.read_bytes() == first
    assert first.decode() == openapi.dump(openapi.build(openapi.files_from_image(gwtest.image)))


def test_docs_page_is_self_contained(doc):
    page = render_docs(doc)
    assert "GwTestService_Search_2" in page and "/api/v1/things:search" in page
    assert "gwtest.v1.Thing" in page and "A thing on a shelf." in page
    for external in ("<script", "<link", "src=", "http://", "https://", "@import"):
        assert external not in page
