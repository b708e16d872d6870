--[[
A participant's counted rewards for a tax year (fulfillment/taxes.py): an upper bound of the
face values of their orders in the year, kept beside the orders' own Redis calls so that a
redemption far below the reporting threshold needs no SQL read to know it. The counter only
grows: an order that fails or is cancelled stays counted, which can only send a redemption
to the exact total in SQL, never past the threshold unflagged.

The counter (rw:{p:P}:tax:<participant>:<year>) holds "<generation>|<time zone>|<total>". It
counts for its program's time zone only, and only while the program's generation (the
`tax_gen` field of its config) is the one it was set under: a call from a process of an
earlier build, which counts nothing, moves the generation, so every counter made before
then is set again from SQL before it is relied on. A counter that is missing or no longer
counts is set from SQL's total as the request read it (`seed`), plus what was counted while
there was none (its `early` key: orders placed with no seed) and what it held before
(orders it counted whose rows may still be on their way): both can only count an order
twice, never not at all. Processes of different builds are not meant to serve at once (the
README's upgrade rule); the generation is the safety net if they do.

A request that judged its order from the counter alone (no SQL read) passes the year's
threshold (`limit`): the call refuses with `tax_recount`, before any write, when the counter
no longer counts or the order would now reach the threshold (a concurrent order moved it),
and the request judges again from SQL.
]]

-- The counter's total when it counts for `zone` under the program's generation `gen`, else
-- nil; second, whatever total it holds (0 when none).
local function tax_total(counter, gen, zone)
  local raw = redis.call("GET", counter)
  if not raw then return nil, 0 end
  local g, z, total = string.match(raw, "^([^|]*)|([^|]*)|(%d+)$")
  if not total then return nil, 0 end
  if g ~= gen or z ~= zone then return nil, tonumber(total) end
  return tonumber(total), tonumber(total)
end

local function tax_gen(cfg)
  return redis.call("HGET", cfg, "tax_gen") or "0"
end

-- The refusal a call makes before any write: `tax_recount` when the caller judged from the
-- counter (`limit` given) and the counter no longer bears that judgement out. KEYS and ARGV
-- are the function's own; `k`, `a`: where its counter's keys and arguments begin.
-- Counter keys: counter, early. Counter arguments: face value, seed ("" for none), ttl,
-- time zone, limit ("" when the caller read SQL).
local function tax_refusal(cfg, keys, argv, k, a)
  if not keys[k] or not argv[a + 4] or argv[a + 4] == "" then return nil end
  local total = tax_total(keys[k], tax_gen(cfg), argv[a + 3])
  if total == nil or total + tonumber(argv[a]) >= tonumber(argv[a + 4]) then
    return to_json(fail("tax_recount", "the tax year's count must be read again"))
  end
  return nil
end

-- Counts the order's face value (see the file's comment). A caller of an earlier build passes
-- no counter: its order is not counted, so the program's generation moves.
local function tax_count(cfg, keys, argv, k, a)
  local counter, early = keys[k], keys[k + 1]
  if not counter then
    redis.call("HINCRBY", cfg, "tax_gen", 1)
    return
  end
  local value, seed, ttl, zone = tonumber(argv[a]), argv[a + 1], argv[a + 2], argv[a + 3]
  local gen = tax_gen(cfg)
  local total, held = tax_total(counter, gen, zone)
  if total ~= nil then
    redis.call("SET", counter, gen .. "|" .. zone .. "|" .. int_s(total + value), "KEEPTTL")
  elseif seed ~= "" then
    -- A counter set again keeps what it held: an order it counted may still be on its way to
    -- SQL, past the seed's read. It counts some orders twice, never one not at all.
    local before = tonumber(redis.call("GET", early) or "0")
    redis.call("SET", counter, gen .. "|" .. zone .. "|" .. int_s(tonumber(seed) + before + held + value),
      "EX", ttl)
    redis.call("DEL", early)
  else
    redis.call("INCRBY", early, value)
    redis.call("EXPIRE", early, ttl)
  end
end

--[[ rw_tax_count: an order placed with no call of its own (a partner's prize, an order an
earlier build left `new`) counted before its SQL row is written.
KEYS: cfg, counter, early
ARGV: face value, seed ("" for none), ttl, time zone
Answers {ok, tax}. ]]
redis.register_function("rw_tax_count", function(keys, argv)
  tax_count(keys[1], keys, argv, 2, 1)
  return to_json({ok = true, tax = 1})
end)
