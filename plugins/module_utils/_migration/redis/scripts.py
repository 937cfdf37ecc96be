# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server-side scripts that make every document mutation conditional, atomic per key and replayable.

Each takes what the document held before the migration (from the backup) into account, so that
running it twice is harmless, a key deleted meanwhile is never recreated, and a value someone else
changed meanwhile is never overwritten (it is reported as a conflict instead).
Return codes: 2 written, 1 already done, 0 key gone (skipped), -1 conflict (nothing written).
"""

from __future__ import annotations

from typing import Any

from ..core.deps import redis_exceptions

# KEYS[1] key; ARGV: location, sha1 of the original bytes, new bytes, [location, sha1, new]...
QUANTIZE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local pending = {}
for i = 1, #ARGV, 3 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if current ~= ARGV[i + 2] then
    if not current or redis.sha1hex(current) ~= ARGV[i + 1] then return -1 end
    table.insert(pending, i)
  end
end
if #pending == 0 then return 1 end
for _, i in ipairs(pending) do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2]) end
return 2
"""

# The quantize phase's per-batch form: one call for a whole block of documents, so that the
# server's per-call cost is paid once per block, not per document. KEYS: the documents; ARGV[1] = F,
# the vector fields per document; ARGV[2..F+1] their hash fields; then per document and field its
# original bytes (from the backup) and its converted bytes (staged before the drop), both "" where
# the document held no vector. The same rule per document as QUANTIZE: every field still original
# (or already converted), or nothing is written. Returns one character per document: 2 written,
# 1 already done, 0 gone, c conflict.
QUANTIZE_BATCH = """
local fields = tonumber(ARGV[1])
local at = fields + 2
local out = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local pending = {}
  local state = '1'
  for j = 1, fields do
    local original, new = ARGV[at], ARGV[at + 1]
    at = at + 2
    if state == '1' and new ~= '' then
      local current = redis.call('HGET', key, ARGV[j + 1])
      if current ~= new then
        if current == original then
          pending[#pending + 1] = ARGV[j + 1]
          pending[#pending + 1] = new
        elseif not current and redis.call('EXISTS', key) == 0 then
          state = '0'
        else
          state = 'c'
        end
      end
    end
  end
  if state == '1' and #pending > 0 then
    redis.call('HSET', key, unpack(pending))
    state = '2'
  end
  out[i] = state
end
return table.concat(out)
"""
BATCH_OUTCOME = {ord("2"): 2, ord("1"): 1, ord("0"): 0, ord("c"): -1}

# rename_field(key, old, new, value): HSET `new` to `value` and HDEL `old` (which the hash has), with `new`
# in `old`'s place. A small hash (listpack: its fields in the order written, no field TTLs) is written again
# in that order, its TTL kept, so that its DUMP bytes after a rename and its rollback are the original ones;
# a hash table has no order to keep (nor one a rewrite could set), and gets HSET and HDEL.
RENAME_FIELD = """
local function rename_field(key, old, new, value)
  if redis.call('OBJECT', 'ENCODING', key) == 'listpack' and redis.call('HLEN', key) <= 1000 then
    local flat = redis.call('HGETALL', key)
    local ttl = redis.call('PTTL', key)
    local fields = {}
    for i = 1, #flat, 2 do
      if flat[i] == old then
        fields[#fields + 1] = new
        fields[#fields + 1] = value
      elseif flat[i] ~= new then
        fields[#fields + 1] = flat[i]
        fields[#fields + 1] = flat[i + 1]
      end
    end
    redis.call('DEL', key)
    redis.call('HSET', key, unpack(fields))
    if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
  else
    redis.call('HSET', key, new, value)
    redis.call('HDEL', key, old)
  end
end
"""

# KEYS[1] key; ARGV: old field, new field, [old, new]...
HASH_MOVE = (
    RENAME_FIELD
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local moved = 0
for i = 1, #ARGV, 2 do
  local value = redis.call('HGET', KEYS[1], ARGV[i])
  if value then
    local there = redis.call('HGET', KEYS[1], ARGV[i + 1])
    if there and there ~= value then return -1 end
    rename_field(KEYS[1], ARGV[i], ARGV[i + 1], value)
    moved = 1
  end
end
if moved == 1 then return 2 end
return 1
"""
)

# KEYS[1] key; ARGV: old JSONPath, new JSONPath, [old, new]... The value is moved as the exact JSON
# text the server returns (no decoding in Lua, which would round numbers).
JSON_MOVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local moved = 0
for i = 1, #ARGV, 2 do
  local found = redis.call('JSON.GET', KEYS[1], ARGV[i])
  if found and found ~= '[]' then
    local there = redis.call('JSON.GET', KEYS[1], ARGV[i + 1])
    if there and there ~= '[]' and there ~= found then return -1 end
    redis.call('JSON.SET', KEYS[1], ARGV[i + 1], string.sub(found, 2, -2))
    redis.call('JSON.DEL', KEYS[1], ARGV[i])
    moved = 1
  end
end
if moved == 1 then return 2 end
return 1
"""

# An online rewrite's steps on one document (expand, convert, contract), all or nothing per document. KEYS[1]
# the key; ARGV: items of five, an operation and four arguments:
#   W check expected dest value   write `dest` := value, where `check` still holds `expected` (the backup's
#                                 original): expand (a side field or a renamed field's new name), convert
#   M old expected new value      contract of a rename: `new` (holding `value`, what expand wrote) takes
#                                 `old`'s place, where `old` still holds `expected`
#   D side value check expected   (hashes only) contract of a side field: HDEL `side` (holding `value`), where
#                                 `check` holds `expected` (the converted bytes are in place)
# Done already when each item's result is there. Returns 2 written, 1 already done, 0 gone, -1 conflict
# (the application changed the document meanwhile: nothing written). One loop for both storages
# (_ONLINE_STEP_ITEMS); each storage's prelude gives it `get` (what a location holds, `absent` where nothing
# is), `write`, `take_place` and `remove` (nil where the storage has no D).
_ONLINE_STEP_ITEMS = """
if redis.call('EXISTS', key) == 0 then return 0 end
local pending = {}
for i = 1, #ARGV, 5 do
  local op, a, b, c, d = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  if op == 'W' then
    if get(c) ~= d then
      if get(a) ~= b then return -1 end
      pending[#pending + 1] = i
    end
  elseif op == 'M' then
    local old = get(a)
    if old ~= absent or get(c) ~= d then
      if old ~= b or get(c) ~= d then return -1 end
      pending[#pending + 1] = i
    end
  elseif op == 'D' and remove then
    local side = get(a)
    if side ~= absent then
      if side ~= b or get(c) ~= d then return -1 end
      pending[#pending + 1] = i
    end
  else
    return redis.error_reply('ERR online step: no operation ' .. op .. ' for this storage')
  end
end
if #pending == 0 then return 1 end
for _, i in ipairs(pending) do
  local op = ARGV[i]
  if op == 'W' then
    write(ARGV[i + 3], ARGV[i + 4])
  elseif op == 'M' then
    take_place(ARGV[i + 1], ARGV[i + 3], ARGV[i + 4])
  else
    remove(ARGV[i + 1])
  end
end
return 2
"""
# A hash: HGET's nil is false; a rename keeps the field order (RENAME_FIELD).
ONLINE_STEP = (
    RENAME_FIELD
    + """
local key = KEYS[1]
local absent = false
local function get(field) return redis.call('HGET', key, field) end
local function write(field, value) redis.call('HSET', key, field, value) end
local function take_place(old, new, value) rename_field(key, old, new, value) end
local function remove(field) redis.call('HDEL', key, field) end
"""
    + _ONLINE_STEP_ITEMS
)

# A JSON document, whose values are the exact JSON.GET replies of their paths ('[value]', '[]' where nothing
# is): W sets the path to the value; M deletes the old path (expand wrote the new one: what a move leaves).
ONLINE_JSON_STEP = (
    """
local key = KEYS[1]
local absent = '[]'
local function get(path) return redis.call('JSON.GET', key, path) or '[]' end
local function write(path, value) redis.call('JSON.SET', key, path, string.sub(value, 2, -2)) end
local function take_place(old, _new, _value) redis.call('JSON.DEL', key, old) end
local remove = nil
"""
    + _ONLINE_STEP_ITEMS
)

# A prefix change online: the documents under their old keys and copies under the new ones. KEYS[1] the old key,
# KEYS[2] the new one. ARGV[1] "json" or "hash", ARGV[2] = N, then N pairs (location, value the backup holds, ""
# where it held nothing): the old key must still hold them (CAS). Then, for ONLINE_COPY, items of four applied to
# the copy: M old new value (a field move: RENAME_FIELD, or JSON.SET and JSON.DEL) and W location value (HSET of
# a converted vector).
_ONLINE_KEYS_HEAD = (
    RENAME_FIELD
    + """
local json = ARGV[1] == 'json'
local function get(key, location)
  if json then
    local found = redis.call('JSON.GET', key, location)
    if not found or found == '[]' then return '' end
    return found
  end
  return redis.call('HGET', key, location) or ''
end
local function original(key)
  local n = tonumber(ARGV[2])
  for i = 3, 2 + 2 * n, 2 do
    if get(key, ARGV[i]) ~= ARGV[i + 1] then return false end
  end
  return true
end
local after = 3 + 2 * tonumber(ARGV[2])
"""
)
# What the copy (KEYS[2]) gets after its COPY: the items of four from ARGV[after] on.
_COPY_ITEMS = """
for i = after, #ARGV, 4 do
  if ARGV[i] == 'M' then
    if json then
      redis.call('JSON.SET', KEYS[2], ARGV[i + 2], string.sub(ARGV[i + 3], 2, -2))
      redis.call('JSON.DEL', KEYS[2], ARGV[i + 1])
    else
      rename_field(KEYS[2], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
    end
  else
    redis.call('HSET', KEYS[2], ARGV[i + 1], ARGV[i + 2])
  end
end
return 2
"""
# Expand: copy the old key (TTL kept) under the new name with its moves and conversions. 2 copied, 1 the copy
# exists already, 0 old key gone, -1 conflict (changed since the backup).
ONLINE_COPY = (
    _ONLINE_KEYS_HEAD
    + """
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if not original(KEYS[1]) then return -1 end
redis.call('COPY', KEYS[1], KEYS[2])
"""
    + _COPY_ITEMS
)
# The catch-up (a document the application changed or added since its expand, recorded again): the copy made
# again from the old key as it is now, replacing the stale one, where the old key still holds its newest record.
# 2 copied, 0 old key gone, -1 conflict (changed again since the catch-up recorded it). Run again, it copies again.
ONLINE_RECOPY = (
    _ONLINE_KEYS_HEAD
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if not original(KEYS[1]) then return -1 end
redis.call('COPY', KEYS[1], KEYS[2], 'REPLACE')
"""
    + _COPY_ITEMS
)
# Before the contract, the copy of a document the application deleted (ARGV[1] "0": the old key must be gone; the
# catch-up, a rollback) or changed and no catch-up recorded (ARGV[1] "1": the old key must exist; a rollback, which
# keeps the application's write) goes too. 2 deleted, 1 no copy, -1 the old key is not so (nothing deleted).
ONLINE_DROP_COPY = """
if redis.call('EXISTS', KEYS[1]) ~= tonumber(ARGV[1]) then return -1 end
return redis.call('DEL', KEYS[2]) == 1 and 2 or 1
"""
# Contract: the old key deleted where it is unchanged since the copy and the copy exists. 2 deleted, 1 gone
# already, -1 conflict (changed, or the copy was deleted: left as it is).
ONLINE_DROP_OLD = (
    _ONLINE_KEYS_HEAD
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 1 end
if redis.call('EXISTS', KEYS[2]) == 0 or not original(KEYS[1]) then return -1 end
redis.call('DEL', KEYS[1])
return 2
"""
)
# Rollback before the contract: the copy deleted where the old key is as the backup holds it. 2 deleted, 1
# nothing to do (no copy, or the old key is gone or changed: the restore decides).
ONLINE_UNCOPY = (
    _ONLINE_KEYS_HEAD
    + """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 0 then return 1 end
if not original(KEYS[1]) then return 1 end
redis.call('DEL', KEYS[2])
return 2
"""
)

# An online rewrite's catch-up: which documents the application changed since the backup read them, without
# reading them out. KEYS: the documents; ARGV[1] "json" or "hash", ARGV[2] = F, the locations compared,
# ARGV[3..F+2] the locations, then per document F SHA1s (hex) of the values the backup holds there ("" where it
# holds nothing). Returns one character per document: 0 as the backup holds it, 1 changed, g gone (deleted).
_CHANGED_HEAD = """
local json = ARGV[1] == 'json'
local fields = tonumber(ARGV[2])
local function state_of(key, at)
  if redis.call('EXISTS', key) == 0 then return 'g' end
  for j = 1, fields do
    local current
    if json then
      current = redis.call('JSON.GET', key, ARGV[j + 2])
      if current == '[]' then current = false end
    else
      current = redis.call('HGET', key, ARGV[j + 2])
    end
    if (current and redis.sha1hex(current) or '') ~= ARGV[at + j - 1] then return '1' end
  end
  return '0'
end
"""
CHANGED_SINCE = (
    _CHANGED_HEAD
    + """
local at, out = fields + 3, {}
for i = 1, #KEYS do
  out[i] = state_of(KEYS[i], at)
  at = at + fields
end
return table.concat(out)
"""
)
# The same for a prefix change, whose copies hold the whole document: KEYS are pairs (old key, its copy). A
# document is changed too where, outside the compared locations (what the copy's moves and conversions
# rewrite), the old key and its copy differ, or where it has no copy (changed before its expand).
COPIES_CHANGED = (
    _CHANGED_HEAD
    + """
local function same_hash(old, new)
  local compared, outside = {}, 0
  for j = 1, fields do compared[ARGV[j + 2]] = true end
  local all = redis.call('HGETALL', old)
  for i = 1, #all, 2 do
    if not compared[all[i]] then
      outside = outside + 1
      if redis.call('HGET', new, all[i]) ~= all[i + 1] then return false end
    end
  end
  local copied = redis.call('HLEN', new)
  for j = 1, fields do copied = copied - redis.call('HEXISTS', new, ARGV[j + 2]) end
  return copied == outside
end
local function without(doc, path)
  local node, last = doc, nil
  for part in string.gmatch(string.sub(path, 3), '[^.]+') do
    if last then node = type(node) == 'table' and node[last] or nil end
    last = part
  end
  if type(node) == 'table' and last then node[last] = nil end
end
local function equal(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= 'table' then return a == b end
  for k, v in pairs(a) do if not equal(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
local function same_json(old, new)
  local a = cjson.decode(redis.call('JSON.GET', old, '$'))[1]
  local b = cjson.decode(redis.call('JSON.GET', new, '$'))[1]
  for j = 1, fields do
    without(a, ARGV[j + 2])
    without(b, ARGV[j + 2])
  end
  return equal(a, b)
end
local same = json and same_json or same_hash
local at, out = fields + 3, {}
for i = 1, #KEYS, 2 do
  local state = state_of(KEYS[i], at)
  if state == '0' and (redis.call('EXISTS', KEYS[i + 1]) == 0 or not same(KEYS[i], KEYS[i + 1])) then
    state = '1'
  end
  out[#out + 1] = state
  at = at + fields
end
return table.concat(out)
"""
)

# Rollback of an online rewrite, for a document the application changed after its expand (not caught up): its
# old locations stay as the application wrote them, and what the migration added beside them goes, where it is
# still as the migration wrote it. KEYS[1] the key; ARGV[1] "json" or "hash", ARGV[2] "0", then items of four:
# a location the migration writes (a side field, a renamed field's new name), the value it wrote there, the
# value the backup holds there ("" where nothing was), and the old location it stands beside, which must hold
# something (the application wrote the old layout; a document contracted already, or written in the new layout,
# is not this). 2 removed, 1 nothing of the migration's there, 0 gone, -1 neither (nothing written).
ONLINE_UNEXPAND = (
    _ONLINE_KEYS_HEAD
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local pending = {}
for i = after, #ARGV, 4 do
  if get(KEYS[1], ARGV[i + 3]) == '' then return -1 end
  local now = get(KEYS[1], ARGV[i])
  if now ~= ARGV[i + 2] then
    if now ~= ARGV[i + 1] then return -1 end
    pending[#pending + 1] = i
  end
end
if #pending == 0 then return 1 end
for _, i in ipairs(pending) do
  local original = ARGV[i + 2]
  if json and original == '' then
    redis.call('JSON.DEL', KEYS[1], ARGV[i])
  elseif json then
    redis.call('JSON.SET', KEYS[1], ARGV[i], string.sub(original, 2, -2))
  elseif original == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], original)
  end
end
return 2
"""
)

# KEYS[1] old name, KEYS[2] new name (same hash slot or a standalone server).
KEY_RENAME = """
local old = redis.call('EXISTS', KEYS[1])
local new = redis.call('EXISTS', KEYS[2])
if old == 1 and new == 1 then return -1 end
if old == 1 then redis.call('RENAME', KEYS[1], KEYS[2]); return 2 end
if new == 1 then return 1 end
return 0
"""

# Rollback: compare-and-set back to the backup's originals. KEYS[1] the original key, KEYS[2] its renamed
# form (the same key when there was no prefix change). ARGV[1] the SHA1 of the document's original state,
# ARGV[2] how many other states are acceptable, then their SHA1s, then per backed-up location: location,
# original value, and "1" when the location held nothing, "@<location>" when its value moved there (a
# renamed field: the original takes its place back, see RENAME_FIELD), else "0". A state is the document's
# values at those locations, in that order, each "-" when absent or "+<length>:<bytes>" (rollback/states.py).
# Only a document in its original state (already restored) or in a state the migration produced is
# written; anything else was changed by someone else and is left alone (-1). Returns 2 restored,
# 1 already restored, 0 deleted (never recreated), -1 conflict (including both names existing).
_RESTORE_HEAD = """
local key = KEYS[1]
if KEYS[2] ~= KEYS[1] and redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
  key = KEYS[2]
elseif redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local first = 3 + tonumber(ARGV[2])
"""
_RESTORE_STATE = """
local state = {}
for i = first, #ARGV, 3 do
  local value = read(key, ARGV[i])
  if value then state[#state + 1] = '+' .. #value .. ':' .. value else state[#state + 1] = '-' end
end
local digest = redis.sha1hex(table.concat(state))
if digest == ARGV[1] then
  if key == KEYS[1] then return 1 end
else
  local known = false
  for i = 3, first - 1 do
    if ARGV[i] == digest then known = true break end
  end
  if not known then return -1 end
  for i = first, #ARGV, 3 do write(key, ARGV[i], ARGV[i + 1], ARGV[i + 2]) end
end
if key ~= KEYS[1] then redis.call('RENAME', key, KEYS[1]) end
return 2
"""
HASH_RESTORE = (
    RENAME_FIELD
    + _RESTORE_HEAD
    + """
if redis.call('TYPE', key).ok ~= 'hash' then return -1 end
local function read(k, location) return redis.call('HGET', k, location) end
local function write(k, location, value, how)
  local moved = string.sub(how, 1, 1) == '@' and string.sub(how, 2) or nil
  if how == '1' then
    redis.call('HDEL', k, location)
  elseif moved and redis.call('HEXISTS', k, location) == 0 and redis.call('HEXISTS', k, moved) == 1 then
    rename_field(k, moved, location, value)
  else
    redis.call('HSET', k, location, value)
  end
end
"""
    + _RESTORE_STATE
)
# JSON values are stored as the JSON.GET reply of their path, '[value]'; '[]' means nothing is there.
JSON_RESTORE = (
    _RESTORE_HEAD
    + """
if redis.call('TYPE', key).ok ~= 'ReJSON-RL' then return -1 end
local function read(k, location)
  local found = redis.call('JSON.GET', k, location)
  if not found or found == '[]' then return false end
  return found
end
local function write(k, location, value, how)
  if how == '1' then
    redis.call('JSON.DEL', k, location)
  else
    redis.call('JSON.SET', k, location, string.sub(value, 2, -2))
  end
end
"""
    + _RESTORE_STATE
)


# An online migration's swap, guarded: one script, so that nothing can change the source between the
# check and the swap. ARGV[1] the source index, ARGV[2] the new index, ARGV[3] the fingerprint of the
# source's definition read before ('' to only read it), ARGV[4..] the names that lead to the new index
# afterwards (the source's own name and its aliases, each of which must lead to the source now).
# FT.INFO's keys are simple strings ({ok = ...} in Lua); lengths keep the fingerprint unambiguous.
# Returns the fingerprint (read) or 'SWAPPED'; refuses with an error "SOURCECHANGED <what>" and no write.
GUARDED_SWAP = """
local function flat(v)
  if type(v) == 'table' then
    if v.ok then return #v.ok .. ':' .. v.ok end
    local parts = {}
    for _, item in ipairs(v) do parts[#parts + 1] = flat(item) end
    return '[' .. table.concat(parts, ',') .. ']'
  end
  local text = tostring(v)
  return #text .. ':' .. text
end
local function fingerprint(name)
  local info = redis.pcall('FT.INFO', name)
  if info.err then return '' end
  local parts = {}
  for i = 1, #info, 2 do
    local key = info[i].ok or info[i]
    if key == 'index_name' or key == 'index_options' or key == 'index_definition' or key == 'attributes' then
      parts[#parts + 1] = key .. '=' .. flat(info[i + 1])
    end
  end
  return table.concat(parts, ';')
end
local source, final, expected = ARGV[1], ARGV[2], ARGV[3]
local now = fingerprint(source)
if expected == '' then return now end
if now ~= expected then
  return redis.error_reply('SOURCECHANGED the definition of ' .. source .. ' changed (FT.ALTER, or dropped)')
end
for i = 4, #ARGV do
  if ARGV[i] ~= source then
    local info = redis.pcall('FT.INFO', ARGV[i])
    local leads_to = not info.err and (type(info[2]) == 'table' and info[2].ok or info[2])
    if leads_to ~= source then
      return redis.error_reply('SOURCECHANGED alias ' .. ARGV[i] .. ' no longer leads to ' .. source)
    end
  end
end
redis.call('FT.DROPINDEX', source)
for i = 4, #ARGV do redis.call('FT.ALIASUPDATE', ARGV[i], final) end
return 'SWAPPED'
"""
SOURCE_CHANGED = "SOURCECHANGED"


class Scripts:
    """The scripts registered on one client (EVALSHA, loaded on first use, pipeline-safe)."""

    def __init__(self, client):
        self.quantize = client.register_script(QUANTIZE)
        self.quantize_batch = client.register_script(QUANTIZE_BATCH)
        self.hash_move = client.register_script(HASH_MOVE)
        self.json_move = client.register_script(JSON_MOVE)
        self.key_rename = client.register_script(KEY_RENAME)
        self.online_step = client.register_script(ONLINE_STEP)
        self.online_json_step = client.register_script(ONLINE_JSON_STEP)
        self.online_copy = client.register_script(ONLINE_COPY)
        self.online_recopy = client.register_script(ONLINE_RECOPY)
        self.online_drop_copy = client.register_script(ONLINE_DROP_COPY)
        self.copies_changed = client.register_script(COPIES_CHANGED)
        self.online_drop_old = client.register_script(ONLINE_DROP_OLD)
        self.online_uncopy = client.register_script(ONLINE_UNCOPY)
        self.changed_since = client.register_script(CHANGED_SINCE)
        self.online_unexpand = client.register_script(ONLINE_UNEXPAND)
        self.hash_restore = client.register_script(HASH_RESTORE)
        self.json_restore = client.register_script(JSON_RESTORE)


def flushed(reply: Any) -> bool:
    """Whether a script call's reply is "no such script": SCRIPT FLUSH (anyone may send it) or a restart
    emptied the server's script cache since the script was loaded. Nothing ran; the call can be sent again."""
    return redis_exceptions is not None and isinstance(reply, redis_exceptions.NoScriptError)
