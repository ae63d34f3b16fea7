"""The EventEnvelope (zynk.events.v1) a service writes to its outbox: the metadata every
event carries (a fresh event id, when it happened, which service produced it), its topic and
partition key, and the one payload."""

from __future__ import annotations

import random
import uuid

from services.runtime.pbtime import timestamp
from zynk.events.v1 import events_pb2

_ids = random.Random()  # seeded from os.urandom


def new_id() -> str:
    """A random (version 4) UUID for server-made ids (event ids, SystemEvent entries). They
    must be unique, not unpredictable, and os.urandom is a GIL hand-off on a busy path."""
    return str(uuid.UUID(int=_ids.getrandbits(128), version=4))


def envelope(producer: str, topic: str, key: str, occur_time: float,
             **payload) -> events_pb2.EventEnvelope:
    """`payload`: the envelope's one payload field, e.g. user_registered=UserRegistered(...)."""
    return events_pb2.EventEnvelope(
        metadata=events_pb2.EventMetadata(event_id=new_id(), occur_time=timestamp(occur_time),
                                          producer=producer),
        topic=topic, partition_key=key, **payload)
