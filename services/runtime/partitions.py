"""Monthly range partitions created ahead of time (the seed's plan for `messages`).

A table declared `PARTITION BY RANGE (<time column>)` needs a partition for every month a
row can land in, or the insert fails. `ensure_monthly_partitions` creates the partitions
from `months_behind` months ago to `months_ahead` months from now (UTC) that do not exist
yet, named `<table>_YYYY_MM`. It is idempotent and safe to run from every replica at once
(a transaction-scoped advisory lock per table serialises them), so call it on start and
from a `PartitionMaintainer` every hour or so. Hand-written because the one tool that
does this (pg_partman) is a server extension we do not require.

The partition key may be `timestamptz`, `timestamp` or `date`; an epoch number column
(`bigint`, `double precision`, ...) works with `unit="epoch_s"` or `"epoch_ms"`. Keep the
key in the primary key (PostgreSQL requires it: `PRIMARY KEY (id, created_at)`)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from typing import Literal

from services.runtime import logging as zlog
from services.runtime.postgres import LOCK_PARTITIONS, PostgresDatabase

log = zlog.get("partitions")

Unit = Literal["auto", "epoch_s", "epoch_ms"]

_TIME_TYPES = {"timestamp with time zone", "timestamp without time zone", "date"}
_NUMBER_TYPES = {"smallint", "integer", "bigint", "numeric", "real", "double precision"}
# Creating a partition locks the parent briefly; never queue behind a long transaction
# (and make every insert queue behind us): give up and try again on the next run.
_DDL_LOCK_TIMEOUT_MS = 5000


def month_start(day: dt.date, offset: int = 0) -> dt.date:
    """The first day of the month `offset` months after `day`'s month."""
    index = day.year * 12 + day.month - 1 + offset
    return dt.date(index // 12, index % 12 + 1, 1)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _bound(day: dt.date, key_type: str, unit: Unit) -> str:
    if key_type in _TIME_TYPES:
        if unit != "auto":
            raise ValueError(f"unit={unit!r} is for number keys; this key is {key_type}")
        if key_type == "timestamp with time zone":
            return f"'{day.isoformat()} 00:00:00+00'"
        return f"'{day.isoformat()}'"
    if key_type in _NUMBER_TYPES:
        if unit == "auto":
            raise ValueError(f"a {key_type} partition key needs unit='epoch_s' or 'epoch_ms'")
        seconds = int(dt.datetime(day.year, day.month, 1, tzinfo=dt.UTC).timestamp())
        return str(seconds * 1000 if unit == "epoch_ms" else seconds)
    raise ValueError(f"partition key type {key_type} is not supported")


async def ensure_monthly_partitions(db: PostgresDatabase, table: str, *,
                                    months_ahead: int = 3, months_behind: int = 0,
                                    unit: Unit = "auto",
                                    today: dt.date | None = None) -> list[str]:
    """Create the missing monthly partitions of `table` (resolved on the service's
    search_path, or schema-qualified) for the current month, `months_ahead` months after it
    and `months_behind` before it. Returns the names created (empty when all existed)."""
    if months_ahead < 0 or months_behind < 0:
        raise ValueError("months_ahead and months_behind must be >= 0")
    today = today or dt.datetime.now(dt.UTC).date()
    async with db.transaction() as tx:
        parent = await tx.fetchrow(
            "SELECT c.oid, n.nspname, c.relname, pt.partstrat::text AS partstrat, pt.partnatts,"
            "       format_type(a.atttypid, NULL) AS key_type"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " JOIN pg_partitioned_table pt ON pt.partrelid = c.oid"
            " LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = pt.partattrs[0]"
            " WHERE c.oid = to_regclass($1)", table)
        if parent is None:
            raise ValueError(f"{table} is not a partitioned table")
        if parent["partstrat"] != "r" or parent["partnatts"] != 1 or parent["key_type"] is None:
            raise ValueError(f"{table} must be PARTITION BY RANGE on one column")
        schema, name, key_type = parent["nspname"], parent["relname"], parent["key_type"]
        if len(name) + len("_YYYY_MM") > 63:
            raise ValueError(f"table name {name!r} is too long for partition names")
        await tx.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_PARTITIONS,
                         f"{schema}.{name}")
        existing = {r["relname"] for r in await tx.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = $1", parent["oid"])}
        await tx.execute(f"SET LOCAL lock_timeout = {_DDL_LOCK_TIMEOUT_MS}")
        created = []
        for offset in range(-months_behind, months_ahead + 1):
            start = month_start(today, offset)
            part = f"{name}_{start:%Y_%m}"
            if part in existing:
                continue
            lower = _bound(start, key_type, unit)
            upper = _bound(month_start(start, 1), key_type, unit)
            await tx.execute(
                f"CREATE TABLE {_quote(schema)}.{_quote(part)} PARTITION OF"
                f" {_quote(schema)}.{_quote(name)} FOR VALUES FROM ({lower}) TO ({upper})")
            created.append(part)
    if created:
        log.info("partitions created", table=f"{schema}.{name}", partitions=created)
    return created


class PartitionMaintainer:
    """Keeps `tables` partitioned ahead: `await start()` ensures the partitions now (and
    fails loudly if it cannot), then again every `every_s` seconds in the background
    (failures there are logged and retried on the next run)."""

    def __init__(self, db: PostgresDatabase, tables: Sequence[str], *, months_ahead: int = 3,
                 unit: Unit = "auto", every_s: float = 3600.0) -> None:
        self._db = db
        self._tables = list(tables)
        self._months_ahead = months_ahead
        self._unit = unit
        self._every_s = every_s
        self._task: asyncio.Task | None = None

    async def run_once(self) -> list[str]:
        created = []
        for table in self._tables:
            created += await ensure_monthly_partitions(
                self._db, table, months_ahead=self._months_ahead, unit=self._unit)
        return created

    async def start(self) -> None:
        await self.run_once()
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            try:
                await self.run_once()
            except Exception:
                log.exception("partition maintenance failed; will retry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
