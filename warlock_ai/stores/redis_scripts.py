"""The Lua scripts of the Redis stores, each run by SHA; one script is one atomic write.

The key layouts they work on are described in ``redis`` (snapshots) and ``redis_checkpoints``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import redis

STATUS_OF = """
-- The run's status from its summary, else from its snapshot; nil when neither says one
-- (a hand-edited run that is not JSON must not make the script fail).
local function status_of(key)
  for _, field in ipairs({'meta', 'data'}) do
    local text = redis.call('HGET', key, field)
    if text then
      local ok, decoded = pcall(cjson.decode, text)
      if ok and type(decoded) == 'table' and type(decoded['status']) == 'string' then
        return decoded['status']
      end
    end
  end
  return nil
end
"""

REQUEST_CANCEL = (
    STATUS_OF
    + """
-- KEYS[1] the run; ARGV: now_ms, reason. Only a running run can be asked to cancel; a
-- request already pending is kept and returned as {requested_at, reason}.
if status_of(KEYS[1]) ~= 'running' then return 0 end
local pending = redis.call('HMGET', KEYS[1], 'cancel_requested_at', 'cancel_reason')
if pending[1] then return {pending[1], pending[2] or ''} end
redis.call('HSET', KEYS[1], 'cancel_requested_at', ARGV[1], 'cancel_reason', ARGV[2])
return 1
"""
)

DELETE_IF_STATUS = (
    STATUS_OF
    + """
-- KEYS[1] the run; ARGV: the statuses it may be deleted in.
local status = status_of(KEYS[1])
for _, allowed in ipairs(ARGV) do
  if status == allowed then return redis.call('DEL', KEYS[1]) end
end
return 0
"""
)

SAVE_SNAPSHOT = """
-- KEYS[1] the run; ARGV: data, mode ('' = no claim), owner, now_ms, expires_ms, ttl,
-- a holder to take over because its process is dead ('' = none), this snapshot's saved_at,
-- the saved_at the resuming worker loaded ('' = any), the run's summary (meta JSON), '1' when
-- the run finished, then for the state keys stored apart: '' (nothing to write) or the JSON
-- array of every key stored apart, followed by key, JSON pairs of those that changed.
local key, mode, owner = KEYS[1], ARGV[2], ARGV[3]
if mode ~= '' then
  local lease = redis.call('HMGET', key, 'lease_owner', 'lease_expires_at', 'saved_at')
  local holder, expires = lease[1], tonumber(lease[2])
  if mode == 'acquire' and ARGV[9] ~= '' and lease[3] ~= ARGV[9] then
    return {'changed'}
  end
  if mode == 'acquire' then
    -- held: by someone else (not a holder known dead), with a lease that has not expired
    if holder and holder ~= '' and holder ~= owner and holder ~= ARGV[7]
        and expires and expires >= tonumber(ARGV[4]) then
      return {'held', holder, lease[2] or ''}
    end
  elseif holder ~= owner then
    return {'lost', holder or ''}
  end
end
if mode == 'release' then
  redis.call('HDEL', key, 'lease_owner', 'lease_expires_at')
  -- a finished run forgets its cancel request; an interrupted one (still running) keeps it
  if ARGV[11] == '1' then redis.call('HDEL', key, 'cancel_requested_at', 'cancel_reason') end
  redis.call('HSET', key, 'data', ARGV[1], 'saved_at', ARGV[8], 'meta', ARGV[10])
elseif mode == '' then
  redis.call('HSET', key, 'data', ARGV[1], 'saved_at', ARGV[8], 'meta', ARGV[10])
else
  redis.call('HSET', key, 'data', ARGV[1], 'saved_at', ARGV[8], 'meta', ARGV[10],
    'lease_owner', owner, 'lease_expires_at', ARGV[5])
end
if ARGV[12] and ARGV[12] ~= '' then
  -- fields 'value:<key>': the ones not kept go, the changed ones are written
  local keep = {}
  for _, name in ipairs(cjson.decode(ARGV[12])) do keep['value:' .. name] = true end
  for _, field in ipairs(redis.call('HKEYS', key)) do
    if string.sub(field, 1, 6) == 'value:' and not keep[field] then
      redis.call('HDEL', key, field)
    end
  end
  for i = 13, #ARGV, 2 do redis.call('HSET', key, 'value:' .. ARGV[i], ARGV[i + 1]) end
end
if tonumber(ARGV[6]) > 0 then redis.call('EXPIRE', key, ARGV[6]) end
if mode == 'acquire' or mode == 'renew' then
  local cancel = redis.call('HMGET', key, 'cancel_requested_at', 'cancel_reason')
  if cancel[1] then return {'ok', cancel[1], cancel[2] or ''} end
end
return {'ok'}
"""

APPEND_CHECKPOINT = """
-- KEYS: rows, turns, sessions; ARGV: turn, record JSON, session id, ttl
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[3])
if tonumber(ARGV[4]) > 0 then
  for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
end
return 1
"""

LATEST_CHECKPOINT = """
-- KEYS: rows, turns
local top = redis.call('ZREVRANGE', KEYS[2], 0, 0)
if #top == 0 then return false end
return redis.call('HGET', KEYS[1], top[1])
"""

DELETE_SESSION = """
-- KEYS: rows, turns, sessions; ARGV: session id
local n = redis.call('HLEN', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return n
"""

PRUNE_SESSION = """
-- KEYS: rows, turns, sessions; ARGV: keep_from_turn, session id
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
if #old == 0 then return 0 end
for i = 1, #old, 1000 do
  redis.call('HDEL', KEYS[1], unpack(old, i, math.min(i + 999, #old)))
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('SREM', KEYS[3], ARGV[2])
end
return #old
"""

FORGET_EXPIRED = """
-- KEYS[1] the session index, KEYS[i + 1] the rows of session ARGV[i]
local n = 0
for i, session in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then n = n + redis.call('SREM', KEYS[1], session) end
end
return n
"""

RENEW_LEASE = """
-- KEYS[1] the run; ARGV[1] the owner, ARGV[2] the new expiry (epoch ms). Returns 0 when the
-- lease is not the owner's, {1, requested_at, reason} when an operator asked to cancel, else 1.
if redis.call('HGET', KEYS[1], 'lease_owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'lease_expires_at', ARGV[2])
local cancel = redis.call('HMGET', KEYS[1], 'cancel_requested_at', 'cancel_reason')
if cancel[1] then return {1, cancel[1], cancel[2] or ''} end
return 1
"""

# Session locks (``session_locks.RedisSessionLock``): KEYS[1] the lock, holding its token.
TAKE_SESSION_LOCK = """
-- ARGV: token, ttl_ms, a holder to take over because its process is dead ('' = none).
-- Returns {1} when taken, else {0, the holder's token}.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1} end
local holder = redis.call('GET', KEYS[1])
if ARGV[3] ~= '' and holder == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1}
end
return {0, holder}
"""

RELEASE_SESSION_LOCK = """
-- ARGV[1] the token: deleted only while it is the holder's.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

RENEW_SESSION_LOCK = """
-- ARGV: token, ttl_ms. Returns 0 when the lock is no longer the token's.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class Script:
    """A Lua script run by SHA (``EVALSHA``), sent in full once per server (``EVAL``)."""

    def __init__(self, lua: str) -> None:
        self.lua = lua
        self.sha = hashlib.sha1(lua.encode()).hexdigest()

    def __call__(self, client: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return client.eval(self.lua, len(keys), *keys, *args)

    def load(self, client: Any) -> None:
        """Send the script to the server (before ``queue`` puts it in a pipeline)."""
        client.script_load(self.lua)

    def queue(self, pipeline: Any, keys: Sequence[str], args: Sequence[Any]) -> None:
        pipeline.evalsha(self.sha, len(keys), *keys, *args)

    async def run_async(self, client: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return await client.eval(self.lua, len(keys), *keys, *args)


request_cancel = Script(REQUEST_CANCEL)
delete_if_status = Script(DELETE_IF_STATUS)
renew_lease = Script(RENEW_LEASE)
save_snapshot = Script(SAVE_SNAPSHOT)
append_checkpoint = Script(APPEND_CHECKPOINT)
latest_checkpoint = Script(LATEST_CHECKPOINT)
delete_session = Script(DELETE_SESSION)
prune_session = Script(PRUNE_SESSION)
forget_expired = Script(FORGET_EXPIRED)
take_session_lock = Script(TAKE_SESSION_LOCK)
release_session_lock = Script(RELEASE_SESSION_LOCK)
renew_session_lock = Script(RENEW_SESSION_LOCK)
