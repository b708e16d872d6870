--[[
The kernel prelude of the one Redis function library (kernel/lua_library.py puts it first,
then each package's part). Redis functions cannot call across libraries, so everything more
than one package's part uses lives here, and each part declares which of these it uses
(its LUA_PART); the loader refuses a part that uses one it did not declare.

Idempotency records:
  rw:{p:P}:idem:<scope>:<h> string, JSON {fp, r} (result) or {fp, inflight} (the multi-step
                            wrapper's marker, kernel/idempotency.py); a key ending in
                            ":noidem" records nothing (kernel/keys.py no_record)

The journal: one stream entry per transaction (rw:{p:P}:journal, the ledger's projector
reads it: wallet/journal.py). Accounts in journal legs: "budget", "world", "redeemed",
"expired", ... for program accounts; "available:<participant>" and "held:<participant>"
for wallets. Points only move between two accounts, so the sum of all accounts of a
program is always zero ("world" is where funding comes from and goes negative by what was
paid in).

Replies: every function answers one typed JSON document (kernel/replies.py Reply), and
never an HTTP status (the API alone picks that, from the code: api/problems.py):
  {"ok": true, "tx": ..., "participant": ..., "points": ..., "available": ..., "held": ...}
  {"ok": false, "code": "insufficient_points", "detail": ...}
  with "replayed": 1 added when an idempotency record answered instead. Records written
  before this shape hold {"s": <status>, ...}; kernel/replies.py reads both.
Failures a retry would repeat (insufficient points, budget) are stored like successes,
so a retried request answers what the first one did.

Bounds (CONTRACT.md, v1 additions; kernel/money.py): one operation moves at most 10^12
points, and no balance, lifetime counter or program account (the negative world and budget
included) goes past 2^53 - 1 in size, the largest integer a Lua number (a double) holds
exactly. Every function checks the would-be values before it writes anything and refuses
with "validation_error" (a grant's and a deduction's budget excepted: its bound is judged on
the answer of its move, their first write, and a move past it is undone in the same call).
Every number it writes out (journal, reply, idempotency record, command argument) goes
through string.format("%d"): tostring and cjson keep only 14 significant digits ("1e+14").
]]

-- The functions a request's gate may be carried into (rw_gated, programs/gate.lua), by name.
-- The library is one chunk, so every part registers its gateable functions here
-- (kernel/lua_library.py reads their names for kernel/gated.py).
local GATEABLE = {}
local function register_gateable(name, fn)
  GATEABLE[name] = fn
  redis.register_function(name, fn)
end

-- Leaderboard scoring, filled in by a later part of the chunk (programs/leaderboard_score.lua):
-- BOARDS.grant(section, points) counts a grant on the boards it carries, in its own call.
local BOARDS = {}

local MAX_MOVE = 1000000000000        -- 10^12
local MAX_BALANCE = 9007199254740991  -- 2^53 - 1

-- An integer as decimal digits, exactly (never "1e+14").
local function int_s(n)
  return string.format("%d", n)
end

local function is_array(t)
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

-- JSON like cjson.encode, but integers are written with %d (cjson writes 1e+14).
-- An empty table is an object, as cjson writes it.
local function to_json_each(v)
  if v == nil or v == cjson.null then return "null" end
  local t = type(v)
  if t == "number" then
    if v == math.floor(v) and v > -1e18 and v < 1e18 then return int_s(v) end
    return string.format("%.17g", v)
  elseif t == "string" then
    return cjson.encode(v)
  elseif t == "boolean" then
    return v and "true" or "false"
  elseif t == "table" then
    local parts = {}
    if is_array(v) then
      for i = 1, #v do parts[i] = to_json_each(v[i]) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    for k, x in pairs(v) do parts[#parts + 1] = cjson.encode(tostring(k)) .. ":" .. to_json_each(x) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  error("cannot write a " .. t .. " as JSON")
end

-- Whether cjson.encode writes the table `v` as to_json_each would: every number an integer
-- that cjson's 14 significant digits hold exactly, every table an object of string keys or
-- a sequence (1..n, nothing else), every value one JSON has, not too deep. Scalars are judged
-- in the loop, not by a call each: Lua calls are what a reply's check cost.
local function cjson_writes(v, depth)
  if depth > 16 then return false end
  local n = #v
  local count = 0
  for k, x in pairs(v) do
    count = count + 1
    if n > 0 then
      if type(k) ~= "number" or k ~= math.floor(k) or k < 1 or k > n then return false end
    elseif type(k) ~= "string" then
      return false
    end
    local t = type(x)
    if t == "number" then
      -- (Not -0: cjson writes "-0" where %d writes "0".)
      if x ~= math.floor(x) or x <= -1e14 or x >= 1e14 or (x == 0 and 1 / x < 0) then return false end
    elseif t == "table" then
      if not cjson_writes(x, depth + 1) then return false end
    elseif t ~= "string" and t ~= "boolean" and x ~= cjson.null then
      return false
    end
  end
  return n == 0 or count == n
end

-- to_json_each's JSON, written by cjson in one C call when it writes the same (nearly
-- always): to_json_each's work, a Lua call and a cjson.encode a field, was about half of a
-- spin's time in Valkey.
local function to_json(v)
  if type(v) == "table" and cjson_writes(v, 0) then return cjson.encode(v) end
  return to_json_each(v)
end

-- A journal entry's legs (a sequence the functions build, of {from, to, points}) as to_json
-- writes them, checked leg by leg for what they always are (two account names and a whole
-- number of points cjson writes exactly), without cjson_writes' walk: that walk was most of
-- a journal entry's Lua.
local function legs_json(legs)
  for i = 1, #legs do
    local leg = legs[i]
    local p = leg[3]
    if #leg ~= 3 or type(leg[1]) ~= "string" or type(leg[2]) ~= "string" or type(p) ~= "number"
        or p ~= math.floor(p) or p <= -1e14 or p >= 1e14 or (p == 0 and 1 / p < 0) then
      return to_json(legs)
    end
  end
  return cjson.encode(legs)
end

-- legs_json's text for the one leg most moves have ({{from, to, points}}), by one
-- concatenation instead of a table and cjson's walk of it, from the points already written
-- as digits (int_s's: a move's points are a whole number, checked by move_refusal).
local function one_leg_digits(from, to, points_s)
  return "[[" .. cjson.encode(from) .. "," .. cjson.encode(to) .. "," .. points_s .. "]]"
end

local function hincrby(key, field, n)
  return redis.call("HINCRBY", key, field, int_s(n))
end

local function wallet_account(key, field)
  -- rw:{p:P}:w:<participant> -> "<field>:<participant>"
  local participant = string.match(key, ":w:(.+)$")
  return field .. ":" .. participant
end

--[[ Owed points (a returned sale took back more than was available: wallet/pending.lua
rw_reverse) are paid by the participant's next earnings into available: a grant, an award, a
lot's release, a spin's points prize (games/spins.lua). Of `points` coming in from `source`
(default the budget), up to `owed` go straight back to the budget. Refunds (a void, a
capture's rest) are not earnings and never call this.
Answers what was paid and the journal legs: the credit in full, then the payment back. ]]
local function owed_credit(acct, wallet, owed, points, source)
  local legs = {{source or "budget", wallet_account(wallet, "available"), points}}
  local paid = 0
  if owed > 0 then
    paid = math.min(owed, points)
    hincrby(wallet, "owed", -paid)
    hincrby(acct, "budget", paid)
    legs[2] = {wallet_account(wallet, "available"), "budget", paid}
  end
  return paid, legs
end

-- Reads the idempotency record. Answers a JSON reply to return at once, or nil to proceed.
-- A key ending in ":noidem" (kept under the program's hash tag, so cluster routing holds)
-- means the caller records no result: internal moves that are idempotent by construction.
local function no_record(key)
  return key == "" or string.sub(key, -7) == ":noidem"
end

local function idem_check(key, fp)
  if no_record(key) then return nil end
  local raw = redis.call("GET", key)
  if not raw then return nil end
  local rec = cjson.decode(raw)
  if rec.fp ~= fp then
    return to_json({ok = false, code = "idempotency_key_reused",
      detail = "this Idempotency-Key was used with a different request"})
  end
  if rec.r then
    rec.r.replayed = 1
    return to_json(rec.r)
  end
  return nil -- an in-flight marker of the same request: the wrapper itself is calling
end

-- Records a reply already written as JSON (`encoded`, as to_json writes it) and answers it.
local function idem_record(key, fp, ttl, encoded)
  if not no_record(key) then
    redis.call("SET", key, '{"fp":' .. cjson.encode(fp) .. ',"r":' .. encoded .. '}', "EX", ttl)
  end
  return encoded
end

local function idem_store(key, fp, ttl, result)
  return idem_record(key, fp, ttl, to_json(result))  -- once: the record embeds the same text
end

-- Rewrites the record of the same request (same fingerprint) to answer `result` from now
-- on, keeping its expiry: a later step changed what the request's retry must answer.
local function idem_replace(key, fp, result)
  if no_record(key) then return end
  local raw = redis.call("GET", key)
  if raw and cjson.decode(raw).fp == fp then
    redis.call("SET", key, '{"fp":' .. cjson.encode(fp) .. ',"r":' .. to_json(result) .. '}', "KEEPTTL")
  end
end

local function fail(code, detail)
  return {ok = false, code = code, detail = detail}
end

local function out_of_bounds(detail)
  return fail("validation_error", detail)
end

-- nil, or the refusal of a move of `points` (at most 10^12, a whole number).
local function move_refusal(points)
  if points == nil or points ~= math.floor(points) or points < 0 or points > MAX_MOVE then
    return out_of_bounds("one operation moves at most 1000000000000 points")
  end
  return nil
end

-- Whether a balance would pass 2^53 - 1 in size. Both terms are exact (|value| <= 2^53 - 1,
-- |delta| <= 10^12) and rounding is monotonic, so the comparison is right even when the
-- sum itself is not representable.
local function too_large(value, delta)
  local after = value + delta
  return after > MAX_BALANCE or after < -MAX_BALANCE
end

local function balance_refusal(name)
  return out_of_bounds(name .. " would pass the largest balance allowed, 9007199254740991 points")
end

-- nil, or the refusal of spending `points` from a wallet with `available` points: past the
-- size of one move, or more than is available. Deductions, holds and sweepstakes entries.
local function spend_refusal(points, available)
  local size = move_refusal(points)
  if size then return size end
  if available < points then
    return fail("insufficient_points",
      "available balance is " .. int_s(available) .. ", " .. int_s(points) .. " needed")
  end
  return nil
end

-- A journal entry. earned/spent: how the transaction moved the participant's lifetime
-- counters, so the ledger alone can rebuild every field of a wallet. No legs is a valid
-- transaction (a free spin that won nothing); cjson would write "{}". `legs_encoded` is the
-- legs' JSON (legs_json's or one_leg_digits' text). journal_digits takes the numbers already
-- written as digits (int_s's): a grant and a deduction write each number once
-- (string.format was a good part of their Lua); journal_encoded writes them.
local function journal_digits(stream, tx, kind, participant, net_s, reference, meta, legs_encoded, now, earned_s,
                              spent_s)
  redis.call("XADD", stream, "*",
    "tx", tx, "kind", kind, "participant", participant, "points", net_s,
    "ref", reference, "meta", meta, "legs", legs_encoded, "ts", now,
    "earned", earned_s, "spent", spent_s)
end

local function journal_encoded(stream, tx, kind, participant, net, reference, meta, legs_encoded, now, earned, spent)
  journal_digits(stream, tx, kind, participant, int_s(net), reference, meta, legs_encoded, now,
    int_s(earned or 0), int_s(spent or 0))
end

local function journal(stream, tx, kind, participant, net, reference, meta, legs, now, earned, spent)
  local encoded = "[]"
  if #legs > 0 then encoded = legs_json(legs) end
  journal_encoded(stream, tx, kind, participant, net, reference, meta, encoded, now, earned, spent)
end

-- A wallet exists once its participant was enrolled (field "open"); an unknown id is "not_found".
-- `open` is that field as read (an HMGET answers false for a missing one).
local function absent_wallet(open)
  if not open then
    return to_json(fail("not_found", "no such participant"))
  end
  return nil
end

local function missing_wallet(wallet)
  return absent_wallet(redis.call("HEXISTS", wallet, "open") == 1)
end

-- The operator's suspension (cfg "suspended" = "1"): no new promise (grant, deduction,
-- hold for a redemption, spin, entry) until reactivated. Checked after the idempotency
-- record, so a retry of an answered request still replays, and before any write; the
-- refusal is not recorded, so the same key works again once the program is reactivated.
-- `flag` is that field as read.
local function suspended_program(flag)
  if flag == "1" then
    return cjson.encode(fail("program_suspended", "the program is suspended by the platform operator"))
  end
  return nil
end

local function suspension(cfg)
  if not cfg then return nil end
  return suspended_program(redis.call("HGET", cfg, "suspended"))
end

local function hget_int(key, field)
  return tonumber(redis.call("HGET", key, field) or "0")
end

-- A grant may spend the budget unless the program refuses overdraft, or is blocked.
local function budget_refusal(cfg, acct, points)
  if redis.call("HGET", cfg, "blocked") == "1" then
    return fail("budget_exhausted", "the program's budget is negative after a refund or dispute; fund it to grant again")
  end
  if redis.call("HGET", cfg, "overdraft") == "0" and hget_int(acct, "budget") < points then
    return fail("budget_exhausted", "the program's budget cannot cover this award")
  end
  return nil
end

-- The reply of a balance move ({ok, tx, participant, points, available, held}) as to_json
-- writes it, from numbers already written as digits (int_s's): to_json's check of the table
-- and cjson's walk of it were a quarter of a grant's Lua. Never a balance's text as its hash
-- holds it: one written before the bounds may read "1e+14" (wallet/reconcile.py stored_int).
local function balance_digits(tx, participant, points_s, available_s, held_s)
  return '{"ok":true,"tx":' .. cjson.encode(tx) .. ',"participant":' .. cjson.encode(participant) ..
    ',"points":' .. points_s .. ',"available":' .. available_s .. ',"held":' .. held_s .. '}'
end

-- balance_digits' text from numbers. %d writes whole numbers below 10^18 as to_json does (-0
-- as "0"); anything else takes to_json's way.
local function balance_json(tx, participant, points, available, held)
  if points % 1 == 0 and available % 1 == 0 and held % 1 == 0 and points < 1e18 and points > -1e18
      and available < 1e18 and available > -1e18 and held < 1e18 and held > -1e18
      and type(tx) == "string" and type(participant) == "string" then
    return balance_digits(tx, participant, int_s(points), int_s(available), int_s(held))
  end
  return to_json({ok = true, tx = tx, participant = participant, points = points, available = available, held = held})
end

-- balance_json's reply with the wallet's balances read now, after the writes.
local function balance_reply(wallet, tx, participant, points)
  local v = redis.call("HMGET", wallet, "available", "held")
  return balance_json(tx, participant, points, tonumber(v[1] or "0"), tonumber(v[2] or "0"))
end

-- The leaderboards' section of a call whose marker is keys[k] and its lifetime argv[a], or nil.
local function board_section(keys, k, argv, a, n)
  if n == 0 then return nil end
  return {keys = keys, k = k, argv = argv, a = a, n = n}
end
