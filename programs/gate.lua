--[[ The request gate (programs/gate.py): in the programs' part of the function
library (programs/keys.py LUA_PART).

rw_gate: everything a request must pass before its handler runs, in one round trip: is the
caller still let in (an API key not revoked, its partner not disabled; a participant's
wallet open and active, and the access token of the current generation), then its
rate-limit windows counted, and the program's suspension flag read for the guard of the
routes a suspended program may not use.

KEYS: the rate-limit counters (ARGV[1] of them), then the liveness hash when ARGV[2] is
      not "-" (rw:{p:P}:w:<participant> for "p", rw:{p:P}:key:<key id> for "k"), then the
      program's config hash when ARGV[4] is "1". On a cluster they share one slot: a
      principal's counters carry its program's hash tag; an address's counters are called
      on their own.
ARGV: counter count, "p" | "k" | "-", the token's generation (for "p"), "1" to read the
      suspension flag, then each counter's TTL in seconds, then (optional) each counter's
      limit.
Answers an array of integers (RESP integers are exact: no number goes through text here):
  {verdict, suspended (0/1), count_1, ..., count_n}
  verdict 0: let in; 1: no such wallet or key; 2: revoked key or deactivated participant;
  3: partner disabled; 4: the token's generation moved. A refused caller is not counted
  (its failure counts against its address instead, as before the gate).

rw_gated: the same gate carried into the operation it lets through, in one round trip (the
request's only one when its handler's first call is that operation): nothing is written
before the caller is known to be let in and within its budgets, so a revoked key or a
spent budget stops the write itself, on the very next request anywhere.
KEYS: the gate's keys (as rw_gate's), then the operation's keys.
ARGV: the gate's key count, the gate's argument count, the gate's arguments (as rw_gate's,
      limits included), the operation's name (one of GATEABLE, kernel/prelude.lua), then
      the operation's arguments.
Answers {verdict, suspended, the operation's reply ("" when refused), count_1, ..., count_n};
verdict 5: a budget is spent (its counter is counted, as rw_gate counts it, and the
operation did not run).

The counters are written neither to the AOF nor to replicas (REPL_NONE): with
`appendfsync always` every replicated write waits for an fsync, and a budget that restarts
from zero after a Valkey restart is harmless. Only the counters are written here. ]]

-- The gate's checks and counters, reading its keys from keys[k0 + 1] and its arguments from
-- argv[a0 + 1] on. Answers the verdict, the suspension flag, the counts and whether a
-- counter went past its limit (when limits are given).
local function gate_pass(keys, argv, k0, a0)
  local n = tonumber(argv[a0 + 1])
  local check = argv[a0 + 2]
  local at = k0 + n + 1
  if check == "p" then
    local w = redis.call("HMGET", keys[at], "open", "inactive", "gen")
    if not w[1] then return 1, 0, {}, false end
    if w[2] == "1" then return 2, 0, {}, false end
    if (tonumber(w[3]) or 0) ~= tonumber(argv[a0 + 3]) then return 4, 0, {}, false end
    at = at + 1
  elseif check == "k" then
    local m = redis.call("HMGET", keys[at], "revoked", "disabled")
    if m[1] == "1" then return 2, 0, {}, false end
    if m[2] == "1" then return 3, 0, {}, false end
    at = at + 1
  end
  local suspended = 0
  if argv[a0 + 4] == "1" and redis.call("HGET", keys[at], "suspended") == "1" then suspended = 1 end
  local counts, over = {}, false
  if n > 0 then
    redis.set_repl(redis.REPL_NONE)
    for i = 1, n do
      local key = keys[k0 + i]
      local count = redis.call("INCR", key)
      if count == 1 then redis.call("EXPIRE", key, argv[a0 + 4 + i]) end
      counts[i] = count
      local limit = tonumber(argv[a0 + 4 + n + i])
      if limit and count > limit then over = true end
    end
    -- What follows (the operation of rw_gated) is replicated and written to the AOF.
    redis.set_repl(redis.REPL_ALL)
  end
  return 0, suspended, counts, over
end

redis.register_function("rw_gate", function(keys, argv)
  local verdict, suspended, counts = gate_pass(keys, argv, 0, 0)
  local out = {verdict, suspended}
  for i = 1, #counts do out[2 + i] = counts[i] end
  return out
end)

redis.register_function("rw_gated", function(keys, argv)
  local nk, na = tonumber(argv[1]), tonumber(argv[2])
  local verdict, suspended, counts, over = gate_pass(keys, argv, 0, 2)
  if verdict == 0 and over then verdict = 5 end
  local out = {verdict, suspended, ""}
  if verdict == 0 then
    local operation = GATEABLE[argv[na + 3]]
    if not operation then return redis.error_reply("rw_gated: not a gateable function: " .. tostring(argv[na + 3])) end
    local op_keys, op_argv = {}, {}
    for i = nk + 1, #keys do op_keys[#op_keys + 1] = keys[i] end
    for i = na + 4, #argv do op_argv[#op_argv + 1] = argv[i] end
    out[3] = operation(op_keys, op_argv)
  end
  for i = 1, #counts do out[3 + i] = counts[i] end
  return out
end)
