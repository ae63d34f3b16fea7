"""PresenceStore on Redis (distributed mode): one state shared by every presence replica.

Keys, all under `backends.key_prefix` (P):
  P presence:leases:{user}  hash  device -> "<seen_at> <expire_at>"
  P presence:expiry         zset  "<len(user)>:<user> <device>" scored by expire_at, one
                                  member per lease (a refresh moves it; the length prefix
                                  keeps any ids unambiguous)
  P presence:user:{user}    hash  online ("1"/"0"), since, last_seen (offline only), written;
                                  PEXPIRE last_seen_retention_s while offline, PERSIST online
  P presence:sweep:{token}  string  what one `expire` chunk reported (see below)

Every method is one Lua script, so each is atomic across replicas (`get` reads one consistent
snapshot of all the users it is asked about). Times travel as Python's repr of the
float and come back as the very same strings: Lua only compares them (tostring in Lua would
round to 14 digits), so every adapter returns bit-identical times.

Exactly-once expiry reports: the expire script pops due leases from the one sorted set, so
two replicas sweeping at once never drop the same lease. A report can still be lost if
Redis ran the script but the reply never arrived (a timeout; redis-py then resends it). So
each chunk carries a token and, when it reports anyone, leaves its result under
presence:sweep:{token}: a resend, or this store's next `expire` after an Unavailable, uses
the same token and gets the stored result instead of sweeping again. Results the caller
received are deleted by the next call; the TTL bounds the rest (a replica that died).

The retention is checked against the caller's `now` like in memory (the record keeps when
it was `written`), and PEXPIRE reclaims the key itself. Leases need no TTL: the sorted set
hands every one of them to some replica's sweeper.

Needs a standalone (or Sentinel) Redis: the expire script reaches users' keys it cannot
declare in advance, which Redis Cluster forbids.

Redis unreachable or too slow: every call fails with Unavailable within the client's
timeouts (services/runtime/redis_backends.py), never hangs."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import redis.asyncio as aioredis

from services.presence.store import Transition, UserPresence
from services.runtime.config import Backends
from services.runtime.errors import Unavailable
from services.runtime.redis_backends import redis_client, unavailable_on_outage

# Leases one expire script drops at most: Redis runs nothing else meanwhile, so a backlog is
# swept in slices of a few ms (500 took ~12 ms on a loaded 2-vCPU machine) rather than in one
# long block.
EXPIRE_CHUNK = 200
# How long a reported-but-unacknowledged sweep result is kept for a resend.
SWEEP_RESULT_TTL_MS = 300_000

_LIB = """
local function member(user, device)
  return #user .. ':' .. user .. ' ' .. device
end
local function split(lease)
  local sp = string.find(lease, ' ', 1, true)
  return string.sub(lease, 1, sp - 1), string.sub(lease, sp + 1)
end
local function drop_all(leases_key, expiry_key, user, flat)
  for i = 1, #flat, 2 do
    redis.call('ZREM', expiry_key, member(user, flat[i]))
  end
  redis.call('DEL', leases_key)
end
local function write_offline(record_key, since, last_seen, now, retention_ms)
  redis.call('HSET', record_key, 'online', '0', 'since', since, 'last_seen', last_seen,
             'written', now)
  redis.call('PEXPIRE', record_key, retention_ms)
end
"""

# KEYS: leases, record, expiry. ARGV: user, device, now, expire_at.
# Returns {changed, since}.
_HEARTBEAT = _LIB + """
local user, device, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local flat = redis.call('HGETALL', KEYS[1])
local live = false
for i = 1, #flat, 2 do
  local _, exp = split(flat[i + 1])
  if tonumber(exp) > now then
    live = true
  elseif flat[i] ~= device then
    redis.call('HDEL', KEYS[1], flat[i])
    redis.call('ZREM', KEYS[3], member(user, flat[i]))
  end
end
redis.call('HSET', KEYS[1], device, ARGV[3] .. ' ' .. ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[4], member(user, device))
if live then
  local rec = redis.call('HMGET', KEYS[2], 'online', 'since')
  if rec[1] == '1' then
    return {0, rec[2]}
  end
end
redis.call('HSET', KEYS[2], 'online', '1', 'since', ARGV[3], 'written', ARGV[3])
redis.call('HDEL', KEYS[2], 'last_seen')
redis.call('PERSIST', KEYS[2])
return {1, ARGV[3]}
"""

# KEYS: leases, record, expiry. ARGV: user, device, now, retention_ms.
# Returns {1, since, last_seen} when the user went offline, else
# {0, online, since, last_seen, written, lease, ...} (the record and the leases left, '' for
# a missing field) for the caller to read like `get` does.
_SIGN_OFF = _LIB + """
local user, device, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local flat = redis.call('HGETALL', KEYS[1])
local live_before, live_after = false, false
local since, since_n, seen, seen_n = nil, nil, nil, nil
for i = 1, #flat, 2 do
  local s, e = split(flat[i + 1])
  local en, sn = tonumber(e), tonumber(s)
  if en > now then
    live_before = true
    if flat[i] ~= device then live_after = true end
  end
  if since_n == nil or en > since_n then since, since_n = e, en end
  if seen_n == nil or sn > seen_n then seen, seen_n = s, sn end
end
if redis.call('HDEL', KEYS[1], device) == 1 then
  redis.call('ZREM', KEYS[3], member(user, device))
end
local rec = redis.call('HMGET', KEYS[2], 'online', 'since', 'last_seen', 'written')
if not live_after and rec[1] == '1' then
  if live_before or since == nil then
    since, seen = ARGV[3], ARGV[3]
  end
  drop_all(KEYS[1], KEYS[3], user, flat)
  write_offline(KEYS[2], since, seen, ARGV[3], ARGV[4])
  return {1, since, seen}
end
if not live_after then
  drop_all(KEYS[1], KEYS[3], user, flat)
end
local out = {0, rec[1] or '', rec[2] or '', rec[3] or '', rec[4] or ''}
if live_after then
  local left = redis.call('HVALS', KEYS[1])
  for i = 1, #left do out[#out + 1] = left[i] end
end
return out
"""

# KEYS: expiry, this chunk's result, then results the caller already received (deleted).
# ARGV: now, limit, key prefix, retention_ms, result_ttl_ms.
# Returns {dropped, user, since, last_seen, user, since, last_seen, ...}.
_EXPIRE = _LIB + """
for i = 3, #KEYS do redis.call('DEL', KEYS[i]) end
local done = redis.call('GET', KEYS[2])
if done then return cjson.decode(done) end
local now, prefix = tonumber(ARGV[1]), ARGV[3]
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local order, touched, dropped = {}, {}, 0
for _, m in ipairs(due) do
  redis.call('ZREM', KEYS[1], m)
  local n, rest = string.match(m, '^(%d+):(.*)$')
  if n then
    n = tonumber(n)
    local user, device = string.sub(rest, 1, n), string.sub(rest, n + 2)
    local leases_key = prefix .. 'presence:leases:' .. user
    local lease = redis.call('HGET', leases_key, device)
    if lease then
      local s, e = split(lease)
      if tonumber(e) > now then
        redis.call('ZADD', KEYS[1], e, m)  -- never out of step; kept safe regardless
      else
        redis.call('HDEL', leases_key, device)
        dropped = dropped + 1
        local t = touched[user]
        if t == nil then
          touched[user] = {e, s}
          order[#order + 1] = user
        else
          if tonumber(e) > tonumber(t[1]) then t[1] = e end
          if tonumber(s) > tonumber(t[2]) then t[2] = s end
        end
      end
    end
  end
end
local out = {dropped}
for _, user in ipairs(order) do
  if redis.call('EXISTS', prefix .. 'presence:leases:' .. user) == 0 then
    local record_key = prefix .. 'presence:user:' .. user
    if redis.call('HGET', record_key, 'online') == '1' then
      local t = touched[user]
      write_offline(record_key, t[1], t[2], ARGV[1], ARGV[4])
      out[#out + 1] = user
      out[#out + 1] = t[1]
      out[#out + 1] = t[2]
    end
  end
end
if #out > 1 then
  redis.call('SET', KEYS[2], cjson.encode(out), 'PX', ARGV[5])
end
return out
"""


# KEYS: record, leases of each user in turn. Returns, per user,
# online, since, last_seen, written ('' when missing), the number of leases, the leases.
_GET = """
local out = {}
for i = 1, #KEYS, 2 do
  local rec = redis.call('HMGET', KEYS[i], 'online', 'since', 'last_seen', 'written')
  for j = 1, 4 do out[#out + 1] = rec[j] or '' end
  local leases = redis.call('HVALS', KEYS[i + 1])
  out[#out + 1] = #leases
  for j = 1, #leases do out[#out + 1] = leases[j] end
end
return out
"""


def _t(x: float) -> str:
    # repr round-trips a float exactly; the scripts hand the same string back.
    return repr(float(x))


def _opt(raw: bytes | None) -> float | None:
    return float(raw) if raw else None


class RedisPresenceStore:
    def __init__(self, client: aioredis.Redis, prefix: str, retention_s: float) -> None:
        """Owns `client` (closed by close())."""
        self._client = client
        self._prefix = prefix
        self._retention_s = retention_s
        self._retention_ms = str(max(1, int(retention_s * 1000)))
        self._expiry_key = f"{prefix}presence:expiry"
        # EVALSHA, falling back to EVAL after a restart emptied the script cache.
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._sign_off = client.register_script(_SIGN_OFF)
        self._expire = client.register_script(_EXPIRE)
        self._get = client.register_script(_GET)
        # Sweep tokens whose reply was lost (retry them) or received (delete their result).
        self._unanswered: list[str] = []
        self._received: list[str] = []

    @classmethod
    def from_settings(cls, backends: Backends, retention_s: float) -> RedisPresenceStore:
        return cls(redis_client(backends), backends.key_prefix, retention_s)

    def _leases(self, user_id: str) -> str:
        return f"{self._prefix}presence:leases:{user_id}"

    def _record(self, user_id: str) -> str:
        return f"{self._prefix}presence:user:{user_id}"

    def _keys(self, user_id: str) -> list[str]:
        return [self._leases(user_id), self._record(user_id), self._expiry_key]

    # -- Protocol --------------------------------------------------------------------------

    async def heartbeat(self, user_id: str, device_id: str, now: float,
                        expire_at: float) -> Transition:
        with unavailable_on_outage("presence"):
            changed, since = await self._heartbeat(
                keys=self._keys(user_id), args=[user_id, device_id, _t(now), _t(expire_at)])
        return Transition(UserPresence(user_id, True, float(since), None), bool(changed))

    async def sign_off(self, user_id: str, device_id: str, now: float) -> Transition:
        with unavailable_on_outage("presence"):
            reply = await self._sign_off(
                keys=self._keys(user_id),
                args=[user_id, device_id, _t(now), self._retention_ms])
        if reply[0]:
            return Transition(UserPresence(user_id, False, float(reply[1]), float(reply[2])),
                              True)
        return Transition(self._read(user_id, reply[1:5], reply[5:], now), False)

    async def expire(self, now: float, limit: int) -> list[UserPresence]:
        out: list[UserPresence] = []
        dropped = 0
        while dropped < limit:
            chunk = min(limit - dropped, EXPIRE_CHUNK)
            # A token whose reply was lost first: its result (if it ran) is reported now.
            token = self._unanswered.pop() if self._unanswered else secrets.token_hex(12)
            received, self._received = self._received, []
            try:
                with unavailable_on_outage("presence"):
                    reply = await self._expire(
                        keys=[self._expiry_key, self._sweep_key(token),
                              *(self._sweep_key(t) for t in received)],
                        args=[_t(now), chunk, self._prefix, self._retention_ms,
                              SWEEP_RESULT_TTL_MS])
            except Unavailable:
                self._unanswered.append(token)
                self._received.extend(received)
                if out:
                    break  # report what earlier chunks found; the rest waits
                raise
            if len(reply) > 1:
                self._received.append(token)
            for i in range(1, len(reply), 3):
                out.append(UserPresence(_str(reply[i]), False, float(reply[i + 1]),
                                        float(reply[i + 2])))
            dropped += int(reply[0])
            if int(reply[0]) < chunk:
                break
        return out

    async def get(self, user_ids: Sequence[str], now: float) -> list[UserPresence]:
        distinct = list(dict.fromkeys(user_ids))
        if not distinct:
            return []
        with unavailable_on_outage("presence"):
            reply = await self._get(
                keys=[k for u in distinct for k in (self._record(u), self._leases(u))])
        known, i = {}, 0
        for u in distinct:
            n = reply[i + 4]
            known[u] = self._read(u, reply[i:i + 4], reply[i + 5:i + 5 + n], now)
            i += 5 + n
        return [known[u] for u in user_ids]

    async def close(self) -> None:
        await self._client.aclose()

    # -- internals -------------------------------------------------------------------------

    def _sweep_key(self, token: str) -> str:
        return f"{self._prefix}presence:sweep:{token}"

    def _read(self, user_id: str, rec: Sequence[bytes], leases: Sequence[bytes],
              now: float) -> UserPresence:
        """The memory adapter's read rules, over one snapshot of the user's record (fields
        b'' when missing) and leases."""
        online, since, last_seen, written = rec
        if not online:
            return UserPresence(user_id, False, None, None)
        if online == b"1":
            parsed = [tuple(map(float, v.split(b" ", 1))) for v in leases]
            if any(expire_at > now for _, expire_at in parsed):
                return UserPresence(user_id, True, float(since), None)
            if parsed:  # expired, not swept yet: offline since the last lease lapsed
                return UserPresence(user_id, False, max(e for _, e in parsed),
                                    max(s for s, _ in parsed))
            return UserPresence(user_id, False, _opt(since), _opt(last_seen))
        if float(written) + self._retention_s <= now:
            return UserPresence(user_id, False, None, None)
        return UserPresence(user_id, False, _opt(since), _opt(last_seen))


def _str(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
