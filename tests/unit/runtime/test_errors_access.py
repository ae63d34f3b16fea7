import grpc
from google.rpc import error_details_pb2

from services.runtime.access import Access, policy_for
from services.runtime.errors import InvalidArgument, NotFound


def test_invalid_argument_carries_error_info_and_field_violations():
    st = InvalidArgument("bad", field_violations=[("username", "too short")]).to_status()
    assert st.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    info = error_details_pb2.ErrorInfo()
    assert st.details[0].Unpack(info) and info.domain == "zynk.dev"
    br = error_details_pb2.BadRequest()
    assert st.details[1].Unpack(br)
    assert br.field_violations[0].field == "username"


def test_reason_defaults_and_overrides():
    assert NotFound("x").reason == "NOT_FOUND"
    assert NotFound("x", reason="USER_NOT_FOUND").reason == "USER_NOT_FOUND"


def test_access_comes_from_the_contract():
    import zynk.auth.v1.auth_pb2  # noqa: F401  (registers the descriptors)

    assert policy_for("/zynk.auth.v1.AuthService/Login").access is Access.PUBLIC
    assert policy_for("/zynk.auth.v1.AuthService/Register").access is Access.PUBLIC
    assert policy_for("/zynk.auth.v1.AuthService/Logout").access is Access.AUTHENTICATED
    assert policy_for("/zynk.auth.v1.AuthService/ClaimKeyBundles").access is Access.AUTHENTICATED
    # Not a Zynk contract: infrastructure, public, not validated.
    health = policy_for("/grpc.health.v1.Health/Check")
    assert health.access is Access.PUBLIC and not health.validate
