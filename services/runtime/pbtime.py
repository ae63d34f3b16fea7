"""Times as the services keep them (float seconds; None where there is none) to the
google.protobuf Timestamp and Duration of the contracts (None leaves the field unset)."""

from __future__ import annotations

from google.protobuf import duration_pb2, timestamp_pb2


def timestamp(seconds: float | None) -> timestamp_pb2.Timestamp | None:
    if seconds is None:
        return None
    out = timestamp_pb2.Timestamp()
    out.FromNanoseconds(int(round(seconds * 1e9)))
    return out


def duration(seconds: float | None) -> duration_pb2.Duration | None:
    if seconds is None:
        return None
    out = duration_pb2.Duration()
    out.FromNanoseconds(int(round(seconds * 1e9)))
    return out
