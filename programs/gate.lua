--[[ The request gate (programs/gate.py): part of the wallet's function library (wallet/store.py).

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
      suspension flag, then each counter's TTL in seconds.
Answers an array of integers (RESP integers are exact: no number goes through text here):
  {verdict, suspended (0/1), count_1, ..., count_n}
  verdict 0: let in; 1: no such wallet or key; 2: revoked key or deactivated participant;
  3: partner disabled; 4: the token's generation moved. A refused caller is not counted
  (its failure counts against its address instead, as before the gate).

The counters are written neither to the AOF nor to replicas (REPL_NONE): with
`appendfsync always` every replicated write waits for an fsync, and a budget that restarts
from zero after a Valkey restart is harmless. Only the counters are written here. ]]

redis.register_function("rw_gate", function(keys, argv)
  local n = tonumber(argv[1])
  local check = argv[2]
  local at = n + 1
  if check == "p" then
    local w = redis.call("HMGET", keys[at], "open", "inactive", "gen")
    if not w[1] then return {1, 0} end
    if w[2] == "1" then return {2, 0} end
    if (tonumber(w[3]) or 0) ~= tonumber(argv[3]) then return {4, 0} end
    at = at + 1
  elseif check == "k" then
    local m = redis.call("HMGET", keys[at], "revoked", "disabled")
    if m[1] == "1" then return {2, 0} end
    if m[2] == "1" then return {3, 0} end
    at = at + 1
  end
  local suspended = 0
  if argv[4] == "1" and redis.call("HGET", keys[at], "suspended") == "1" then suspended = 1 end
  local out = {0, suspended}
  if n > 0 then
    redis.set_repl(redis.REPL_NONE)
    for i = 1, n do
      local count = redis.call("INCR", keys[i])
      if count == 1 then redis.call("EXPIRE", keys[i], argv[4 + i]) end
      out[2 + i] = count
    end
  end
  return out
end)
