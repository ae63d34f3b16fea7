"""Monthly partitions ahead of time, on throwaway partitioned tables in real PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import pytest

from services.runtime.partitions import (
    PartitionMaintainer,
    ensure_monthly_partitions,
    month_start,
)
from tests.support.postgres import fresh_schema, open_test_database

pytestmark = pytest.mark.timeout(60)

MESSAGES = """CREATE TABLE messages (
    id UUID NOT NULL,
    conversation_id UUID NOT NULL,
    ciphertext BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at)"""


@pytest.fixture
async def db(postgres_url):
    d = await open_test_database(postgres_url)
    await d.execute(MESSAGES)
    yield d
    await d.close()


async def partitions(db, table: str = "messages") -> dict[str, str]:
    rows = await db.fetch(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass($1)"
        " ORDER BY c.relname", table)
    return {r["relname"]: r["bound"] for r in rows}


def test_month_arithmetic():
    assert month_start(dt.date(2026, 11, 25)) == dt.date(2026, 11, 1)
    assert month_start(dt.date(2026, 11, 25), 2) == dt.date(2027, 1, 1)
    assert month_start(dt.date(2026, 1, 31), -1) == dt.date(2025, 12, 1)
    assert month_start(dt.date(2026, 12, 1), 13) == dt.date(2028, 1, 1)


async def test_creates_the_months_ahead_once(db):
    today = dt.date(2026, 11, 25)
    created = await ensure_monthly_partitions(db, "messages", months_ahead=2, today=today)
    assert created == ["messages_2026_11", "messages_2026_12", "messages_2027_01"]
    bounds = await partitions(db)
    assert list(bounds) == created
    assert "FROM ('2026-12-01 00:00:00+00') TO ('2027-01-01 00:00:00+00')" in \
        bounds["messages_2026_12"]
    # Idempotent: a second run (or another replica) finds nothing to do.
    assert await ensure_monthly_partitions(db, "messages", months_ahead=2, today=today) == []
    # A month later, only the new month is added.
    later = await ensure_monthly_partitions(db, "messages", months_ahead=2,
                                            today=dt.date(2026, 12, 3))
    assert later == ["messages_2027_02"]


async def test_rows_land_in_their_month_and_uncovered_months_fail_loudly(db):
    await ensure_monthly_partitions(db, "messages", months_ahead=1,
                                    today=dt.date(2026, 11, 25))
    insert = ("INSERT INTO messages VALUES (gen_random_uuid(), gen_random_uuid(), '\\x00', $1)"
              " RETURNING tableoid::regclass::text")
    utc = dt.UTC
    assert (await db.fetchval(insert, dt.datetime(2026, 11, 30, 23, 59, 59, tzinfo=utc))
            ).endswith("messages_2026_11")
    assert (await db.fetchval(insert, dt.datetime(2026, 12, 1, tzinfo=utc))
            ).endswith("messages_2026_12")
    with pytest.raises(asyncpg.CheckViolationError, match="no partition"):
        await db.fetchval(insert, dt.datetime(2027, 1, 1, tzinfo=utc))


async def test_replicas_running_at_once_create_each_partition_once(postgres_url):
    schema = fresh_schema()
    replicas = [await open_test_database(postgres_url, schema=schema) for _ in range(4)]
    try:
        await replicas[0].execute(MESSAGES)
        results = await asyncio.gather(*[
            ensure_monthly_partitions(d, "messages", months_ahead=5,
                                      today=dt.date(2026, 11, 1)) for d in replicas])
        created = sorted(name for r in results for name in r)
        assert len(created) == 6 and len(set(created)) == 6
        assert len(await partitions(replicas[0])) == 6
    finally:
        for d in replicas:
            await d.close()


async def test_epoch_and_timestamp_keys(db):
    await db.execute("CREATE TABLE events_s (at DOUBLE PRECISION NOT NULL)"
                     " PARTITION BY RANGE (at)")
    await db.execute("CREATE TABLE events_ms (at BIGINT NOT NULL) PARTITION BY RANGE (at)")
    await db.execute("CREATE TABLE events_ts (at TIMESTAMP NOT NULL) PARTITION BY RANGE (at)")
    today = dt.date(2026, 11, 2)
    with pytest.raises(ValueError, match="needs unit"):
        await ensure_monthly_partitions(db, "events_s", today=today)
    await ensure_monthly_partitions(db, "events_s", months_ahead=0, unit="epoch_s", today=today)
    await ensure_monthly_partitions(db, "events_ms", months_ahead=0, unit="epoch_ms",
                                    today=today)
    await ensure_monthly_partitions(db, f"{db.schema}.events_ts", months_ahead=0, today=today)
    nov, dec = 1793491200, 1796083200  # 2026-11-01 and 2026-12-01, 00:00 UTC
    assert (await partitions(db, "events_s"))["events_s_2026_11"] == \
        f"FOR VALUES FROM ('{nov}') TO ('{dec}')"
    assert (await partitions(db, "events_ms"))["events_ms_2026_11"] == \
        f"FOR VALUES FROM ('{nov}000') TO ('{dec}000')"
    assert (await partitions(db, "events_ts"))["events_ts_2026_11"] == \
        "FOR VALUES FROM ('2026-11-01 00:00:00') TO ('2026-12-01 00:00:00')"
    with pytest.raises(ValueError, match="for number keys"):
        await ensure_monthly_partitions(db, "events_ts", unit="epoch_s", today=today)


async def test_refuses_what_it_cannot_partition(db):
    await db.execute("CREATE TABLE plain (at TIMESTAMPTZ)")
    await db.execute("CREATE TABLE by_list (k TEXT) PARTITION BY LIST (k)")
    for table in ("plain", "by_list", "missing"):
        with pytest.raises(ValueError):
            await ensure_monthly_partitions(db, table)
    with pytest.raises(ValueError, match=">= 0"):
        await ensure_monthly_partitions(db, "messages", months_ahead=-1)


async def test_the_maintainer_ensures_on_start_and_then_periodically(db):
    maintainer = PartitionMaintainer(db, ["messages"], months_ahead=1, every_s=0.05)
    await maintainer.start()
    now = dt.datetime.now(dt.UTC).date()
    expected = {f"messages_{month_start(now, i):%Y_%m}" for i in range(2)}
    assert set(await partitions(db)) == expected
    # Someone drops next month's partition; the next periodic run puts it back.
    nxt = f"messages_{month_start(now, 1):%Y_%m}"
    await db.execute(f'DROP TABLE "{nxt}"')
    for _ in range(100):
        if nxt in await partitions(db):
            break
        await asyncio.sleep(0.02)
    await maintainer.stop()
    assert set(await partitions(db)) == expected
