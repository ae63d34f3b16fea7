import json

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from gateway.errors import DETAILS_TRAILER, from_rpc_error, gateway_error, http_status

C = grpc.StatusCode


@pytest.mark.parametrize(
    ("code", "http"),
    [
        (C.INVALID_ARGUMENT, 400),
        (C.UNAUTHENTICATED, 401),
        (C.PERMISSION_DENIED, 403),
        (C.NOT_FOUND, 404),
        (C.ALREADY_EXISTS, 409),
        (C.ABORTED, 409),
        (C.RESOURCE_EXHAUSTED, 429),
        (C.FAILED_PRECONDITION, 400),
        (C.UNIMPLEMENTED, 501),
        (C.UNAVAILABLE, 503),
        (C.DEADLINE_EXCEEDED, 504),
        (C.CANCELLED, 499),
        (C.UNKNOWN, 500),
        (C.INTERNAL, 500),
        (C.DATA_LOSS, 500),
        (C.OUT_OF_RANGE, 500),
    ],
)
def test_status_table(code, http):
    assert http_status(code) == http


def rpc_error(code, details, trailers=()):
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailers), details=details
    )


def test_rich_details_come_from_the_trailer():
    st = status_pb2.Status(code=C.INVALID_ARGUMENT.value[0], message="rich message")
    st.details.add().Pack(error_details_pb2.ErrorInfo(reason="BAD_NAME", domain="zynk.dev",
                                                      metadata={"k": "v"}))
    bad = error_details_pb2.BadRequest()
    bad.field_violations.add(field="name", description="too short")
    st.details.add().Pack(bad)
    err, original = from_rpc_error(
        rpc_error(C.INVALID_ARGUMENT, "plain", [(DETAILS_TRAILER, st.SerializeToString())])
    )
    body = json.loads(err.body())
    assert err.http_status == 400 and original == "plain"
    assert body["code"] == 3 and body["message"] == "rich message"
    assert body["details"] == [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "BAD_NAME",
         "domain": "zynk.dev", "metadata": {"k": "v"}},
        {"@type": "type.googleapis.com/google.rpc.BadRequest",
         "fieldViolations": [{"field": "name", "description": "too short"}]},
    ]


def test_retry_info_sets_retry_after_on_429():
    st = status_pb2.Status(code=8, message="slow down")
    st.details.add().Pack(error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=2, nanos=100)))
    err, _ = from_rpc_error(
        rpc_error(C.RESOURCE_EXHAUSTED, "x", [(DETAILS_TRAILER, st.SerializeToString())])
    )
    assert err.http_status == 429 and err.headers["retry-after"] == "3"


def test_plain_error_has_empty_details_and_keeps_message():
    err, _ = from_rpc_error(rpc_error(C.NOT_FOUND, "no such user"))
    assert json.loads(err.body()) == {"code": 5, "message": "no such user", "details": []}


@pytest.mark.parametrize("code", [C.UNKNOWN, C.INTERNAL, C.DATA_LOSS])
def test_internal_errors_do_not_leak(code):
    err, original = from_rpc_error(rpc_error(code, "Exception calling application: secret"))
    assert err.http_status == 500 and "secret" not in err.body().decode()
    assert original.endswith("secret")


def test_transport_errors_get_a_generic_message():
    err, _ = from_rpc_error(rpc_error(
        C.UNAVAILABLE, "failed to connect to all addresses; last error: ipv4:10.0.0.7:8001"))
    assert err.http_status == 503 and "10.0.0.7" not in err.body().decode()


def test_garbage_trailer_is_ignored():
    err, _ = from_rpc_error(rpc_error(C.NOT_FOUND, "gone", [(DETAILS_TRAILER, b"\xff\xff\xff")]))
    assert json.loads(err.body())["message"] == "gone"


def test_unresolvable_detail_types_are_dropped():
    st = status_pb2.Status(code=5, message="m")
    st.details.add(type_url="type.googleapis.com/not.a.Type", value=b"x")
    trailer = [(DETAILS_TRAILER, st.SerializeToString())]
    err, _ = from_rpc_error(rpc_error(C.NOT_FOUND, "m", trailer))
    assert json.loads(err.body())["details"] == []


def test_gateway_error_shape():
    err = gateway_error(400, C.INVALID_ARGUMENT, "UNKNOWN_FIELD", "no field x", field="x")
    assert json.loads(err.body()) == {
        "code": 3,
        "message": "no field x",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "UNKNOWN_FIELD",
             "domain": "zynk.dev"},
            {"@type": "type.googleapis.com/google.rpc.BadRequest",
             "fieldViolations": [{"field": "x", "description": "no field x"}]},
        ],
    }
