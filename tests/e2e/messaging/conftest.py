"""End-to-end messaging as clients see it: real SDK clients doing real X3DH/Double Ratchet and
sender-key encryption against the whole embedded mesh through the gateway (REST + WebSocket),
and raw HTTP for what a misbehaving client might send."""

from tests.e2e.client.conftest import make_client, server  # noqa: F401
