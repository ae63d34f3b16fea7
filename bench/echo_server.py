"""The baseline of the gRPC ratio: a bare grpc.aio server whose one method returns the
SendMessageRequest it received (same message, same size, no interceptors, no storage).

    python -m bench.echo_server PORT"""

from __future__ import annotations

import asyncio
import sys

import grpc

from zynk.messaging.v1 import messaging_pb2

METHOD = "/bench.Echo/Echo"


async def echo(request, context):
    return request


async def main(port: int) -> None:
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(
        echo, request_deserializer=messaging_pb2.SendMessageRequest.FromString,
        response_serializer=messaging_pb2.SendMessageRequest.SerializeToString)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler}),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
