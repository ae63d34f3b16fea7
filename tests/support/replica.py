"""A replica of the auth service's contract for the channel tests, run as its own process so
that a test can kill it the way a machine or the OOM killer would (SIGKILL, mid-call).

    python -m tests.support.replica --port P --mode answer|hang

It serves zynk.auth.v1.AuthService's GetJwks (a read: the mesh's channels retry it) and
Register (a write: never retried) through the real runtime server (GrpcServer: health,
SO_REUSEPORT, the shared interceptor); every other method is UNIMPLEMENTED. It prints
`READY <port>` once serving and `CALL <method>` as each call arrives; in `hang` mode a call
never completes, so the test decides when the replica dies under it."""

from __future__ import annotations

import argparse
import asyncio

import grpc
from zynk.auth.v1 import auth_pb2

from services.runtime.interceptors import ServerInterceptor
from services.runtime.server import GrpcServer, ServiceSpec

AUTH = "zynk.auth.v1.AuthService"


def _say(line: str) -> None:
    print(line, flush=True)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=["answer", "hang"], required=True)
    args = ap.parse_args()
    forever = asyncio.Event()

    def handler(name: str, reply):
        async def call(request, context):
            _say(f"CALL {name}")
            if args.mode == "hang":
                await forever.wait()
            return reply

        return call

    handlers = {
        "GetJwks": grpc.unary_unary_rpc_method_handler(
            handler("GetJwks", auth_pb2.GetJwksResponse()),
            request_deserializer=auth_pb2.GetJwksRequest.FromString,
            response_serializer=auth_pb2.GetJwksResponse.SerializeToString),
        "Register": grpc.unary_unary_rpc_method_handler(
            handler("Register", auth_pb2.RegisterResponse()),
            request_deserializer=auth_pb2.RegisterRequest.FromString,
            response_serializer=auth_pb2.RegisterResponse.SerializeToString),
    }

    def register(server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(AUTH, handlers),))

    server = GrpcServer(ServiceSpec("auth", [AUTH], register),
                        ServerInterceptor(None, "replica-test-internal-credential"), 1 << 20)
    port = await server.start("127.0.0.1", args.port)
    _say(f"READY {port}")
    await forever.wait()


if __name__ == "__main__":
    asyncio.run(main())
