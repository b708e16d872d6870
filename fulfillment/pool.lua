--[[
The built-in code pool's part of the one Redis function library (fulfillment/keys.py
LUA_PART): which codes are free lives here, so a redemption takes its code, its points and
its journal entries in one atomic call, and writes one SQL transaction after it
(fulfillment/pooled_orders.py). The codes themselves (sealed) stay in SQL, the system of
record; Redis holds their ids only.

Key layout, per item (all keys share the program's hash tag {p:<program_id>}):
  rw:{p:P}:pool:<item>:free    sorted set  the free codes' ids, by upload time (ms): oldest first
  rw:{p:P}:pool:<item>:taken   hash        code id -> order id, every code ever taken here
  rw:{p:P}:pool:<item>:orders  hash        order id -> code id (an order takes one code, once), or
                                           "returned": no code was left, its points went back
  rw:{p:P}:pool:<item>:loaded  string      set once the item's free codes were loaded from SQL
  rw:{p:P}:pool:retaken        hash        order id -> the order (JSON): orders that took another
                                           code (rw_pool_retake) whose SQL row may not exist yet
The `taken` hash is never trimmed: loading again from SQL (an upload, a lost Redis) skips
every code taken here, even one whose SQL row does not name its order yet.
]]

-- What `orders` holds for an order whose points went back because no code was left for it
-- (rw_pool_return): no code is ever taken for it again.
local RETURNED = "returned"

-- The journal metadata `meta` (a JSON object) with the code's id added.
local function meta_with_code(meta, code)
  local sep = ","
  if string.match(meta, "^%s*{%s*}%s*$") then sep = "" end
  return (string.gsub(meta, "}%s*$", function() return sep .. '"code":' .. cjson.encode(code) .. "}" end, 1))
end

-- The next free code for `order`, recorded as taken; or nil when none is left. An order that
-- already took a code gets the same one.
local function pool_take(free, taken, orders, order)
  local code = redis.call("HGET", orders, order)
  if code == RETURNED then return nil, true end
  if code then return code, true end
  local popped = redis.call("ZPOPMIN", free)
  if #popped == 0 then return nil, false end
  code = popped[1]
  redis.call("HSET", taken, code, order)
  redis.call("HSET", orders, order, code)
  return code, false
end

-- The refusal of an empty pool: "pool_unloaded" (the caller loads it from SQL and calls
-- again) when it was never loaded, else out of stock. Neither is recorded.
local function pool_empty(loaded)
  if redis.call("EXISTS", loaded) == 0 then
    return to_json(fail("pool_unloaded", "the item's codes are not loaded yet"))
  end
  return to_json(fail("out_of_stock", "this gift card is out of stock"))
end

-- What answers an order's call before it looks at anything else (rw_pool_redeem, and
-- rw_partner_hold in partner_orders.lua, joined after this file): the request's record (a
-- replay, or its key reused), or "in_flight" when the record answers nothing: the marker of
-- the same request placed in steps by an earlier build (kernel/idempotency.py `once`).
local function order_early(idem, fp)
  local early = idem_check(idem, fp)
  if early then return early end
  if not no_record(idem) and redis.call("EXISTS", idem) == 1 then
    return to_json(fail("in_flight", "a request with this Idempotency-Key is still running"))
  end
  return nil
end

-- What a participant's redemption judged from what its process keeps (fulfillment/redemptions.py
-- `redeem`: its item's route, read at a catalog version; no read of its key beforehand), refused
-- before any write when that no longer holds: `pinned` (detail: the order id) when an earlier
-- build placed the same request in steps under an id pinned to its key (carried on in steps);
-- `catalog_moved` (detail: the version now) when the catalog moved since the route was read (the
-- route is read again). Guard keys from keys[k]: the key's pinned id, the catalog's version;
-- guard argument argv[a]: the version the route was read at. A call given none has no guard.
local function guard_refusal(keys, argv, k, a)
  if not keys[k + 1] or not argv[a] then return nil end
  local pinned = redis.call("GET", keys[k])
  if pinned then return to_json(fail("pinned", pinned)) end
  local version = redis.call("GET", keys[k + 1]) or "0"
  if version ~= argv[a] then return to_json(fail("catalog_moved", version)) end
  return nil
end

--[[ rw_pool_redeem: a code-pool order in one step: the participant's points from available
to redeemed and the item's next free code taken for the order. A participant's own order is
one journal entry, `redemption` (available -> redeemed), whose metadata carries the order and
its code; one made for the participant (the hold's metadata names an `actor`) is a `hold` and
a `redemption` entry, as an order paid through rw_hold and rw_capture writes them (and as
builds before stop 54 wrote every one), the hold's entry naming who for the audit log. The
hold's key is written, captured, either way, for rw_pool_return.
Refusals change nothing and are not recorded, so a retry may succeed later. A second call for
the same order (a retry with no record: a prize, an approval) answers the code it took.
The order's face value is counted toward the participant's tax year (taxes.lua) in the same
call, which refuses with `tax_recount` when the caller judged from a counter that no longer
bears it out.
A participant's redemption passes a guard (`guard_refusal`) and may carry its request's gate
(rw_gated): its one round trip.
KEYS: idem (or the no-record key), journal, acct, cfg, wallet, hold (the order's), free,
      taken, orders, loaded, the tax counter, its early key, then the guard's: the key's
      pinned id, the catalog's version
ARGV: fp, ttl, order id, participant, points (0: a prize, no points move and no entry is
      journalled), hold tx, capture tx (the one entry's, or the redemption's), the hold's
      metadata, the capture's metadata (the code's id is added to it), now_ms, then the
      counter's: face value, seed ("" for none), ttl, time zone, limit ("" for none), then
      the guard's catalog version
Answers {ok, order, code_id, tx, tax, waiting} (tx: the capture's; "" for a prize; waiting: the
journal's length). ]]
register_gateable("rw_pool_redeem", function(keys, argv)
  local idem, stream, acct, cfg, wallet, hold = keys[1], keys[2], keys[3], keys[4], keys[5], keys[6]
  local free, taken, orders, loaded = keys[7], keys[8], keys[9], keys[10]
  local fp, ttl, order, participant = argv[1], tonumber(argv[2]), argv[3], argv[4]
  local points = tonumber(argv[5])
  local early = order_early(idem, fp) or guard_refusal(keys, argv, 13, 16)
  if early then return early end
  local placed = redis.call("HGET", orders, order)
  if placed == RETURNED then
    return to_json(fail("out_of_stock", "this gift card is out of stock; your points were returned"))
  end
  if placed then
    return to_json({ok = true, order = order, code_id = placed, tx = "", replayed = 1})
  end
  early = missing_wallet(wallet)
  if early then return early end
  -- Stock first, as an order placed in steps was refused: an empty pool is out of stock
  -- whatever the balance.
  if redis.call("ZCARD", free) == 0 then return pool_empty(loaded) end
  if points > 0 then
    -- A prize (no points) was promised already: only a new spend waits for the operator.
    early = suspension(cfg)
    if early then return early end
    if redis.call("EXISTS", hold) == 1 then
      return to_json(fail("conflict", "this order's points are already held"))
    end
    local w = redis.call("HMGET", wallet, "available", "spent")
    local refused = spend_refusal(points, tonumber(w[1] or "0"))
    if refused then return to_json(refused) end
    if too_large(tonumber(w[2] or "0"), points) then return to_json(balance_refusal("the participant's balance")) end
    if too_large(hget_int(acct, "redeemed"), points) then
      return to_json(balance_refusal("the program's redeemed account"))
    end
  elseif points ~= 0 then
    return to_json(move_refusal(points))
  end
  early = tax_refusal(cfg, keys, argv, 11, 11)
  if early then return early end
  local code = pool_take(free, taken, orders, order)
  if not code then return pool_empty(loaded) end
  tax_count(cfg, keys, argv, 11, 11)
  local tx = ""
  if points > 0 then
    tx = argv[7]
    hincrby(wallet, "available", -points)
    hincrby(wallet, "spent", points)
    hincrby(acct, "redeemed", points)
    redis.call("HSET", hold, "participant", participant, "points", int_s(points), "state", "captured", "tx", argv[6],
      "reference", order, "captured", int_s(points))
    local available = wallet_account(wallet, "available")
    if string.find(argv[8], '"actor"', 1, true) then
      -- Made for the participant by someone: the `hold` entry names who, for the audit log
      -- (programs/audit.py), then the `redemption` captures it, as rw_hold and rw_capture write.
      local held = wallet_account(wallet, "held")
      journal(stream, argv[6], "hold", participant, -points, order, argv[8], {{available, held, points}}, argv[10])
      journal(stream, tx, "redemption", participant, 0, order, meta_with_code(argv[9], code),
        {{held, "redeemed", points}}, argv[10], 0, points)
    else
      -- The participant's own: one entry, available -> redeemed. The hold opens and closes
      -- inside this call, so the ledger needs no row for it (each row is a page of several
      -- indexes the projector writes).
      journal(stream, tx, "redemption", participant, -points, order, meta_with_code(argv[9], code),
        {{available, "redeemed", points}}, argv[10], 0, points)
    end
  end
  -- The record keeps what the order is (points and the capture's metadata), so a replay
  -- whose SQL write was lost writes the order as it was charged, not as today's catalog says.
  -- `waiting`: the journal's entries not yet projected, this order's included: the request
  -- leaves its rows to the projector, waiting first while the projector is behind, and writes
  -- them itself when it is far behind (fulfillment/pooled_orders.py).
  return idem_store(idem, fp, ttl, {ok = true, order = order, code_id = code, tx = tx, points = points,
    meta = argv[9], tax = 1, waiting = redis.call("XLEN", stream)})
end)

--[[ rw_pool_take: the item's next free code for an order already made (an order re-routed
to the pool, an order a crash left half-made before this part existed); the same code for
the same order, always.
KEYS: free, taken, orders, loaded
ARGV: order id
Answers {ok, order, code_id}. ]]
redis.register_function("rw_pool_take", function(keys, argv)
  local code = pool_take(keys[1], keys[2], keys[3], argv[1])
  if not code then return pool_empty(keys[4]) end
  return to_json({ok = true, order = argv[1], code_id = code})
end)

--[[ rw_pool_retake: the order's code is on another order in SQL (a pool reloaded after Redis
lost codes it had handed out, or a process of an earlier build taking codes in SQL): the
order takes the next free code instead, and the bad one stays taken. A second call for the
same bad code answers the code the first gave. The order is noted in the program's `retaken`
hash (rw:{p:P}:pool:retaken, order id -> the order as JSON) until its SQL row is written, so
the order sweep finishes it if the request dies before (fulfillment/pooled_orders.py `mend`).
KEYS: free, taken, orders, loaded, retaken
ARGV: order id, the bad code's id, the order (JSON)
Answers {ok, order, code_id}. ]]
redis.register_function("rw_pool_retake", function(keys, argv)
  local free, taken, orders, order = keys[1], keys[2], keys[3], argv[1]
  local current = redis.call("HGET", orders, order)
  if current == RETURNED then return to_json(fail("returned", "the order's points went back")) end
  redis.call("HSET", keys[5], order, argv[3])
  if current and current ~= argv[2] then return to_json({ok = true, order = order, code_id = current}) end
  redis.call("HDEL", orders, order)
  local code = pool_take(free, taken, orders, order)
  if not code then
    redis.call("HSET", orders, order, argv[2])
    return pool_empty(keys[4])
  end
  return to_json({ok = true, order = order, code_id = code})
end)

--[[ rw_pool_return: the pool has no code for an order whose points rw_pool_redeem captured
(its code was on another order in SQL and none is left, or the pool keeps answering such
codes): the points go back, redeemed -> available, journalled as a `redemption_void`, the hold
is marked returned and the order's entry in `orders` becomes "returned", so no call takes a
code for it again. Refused ("has_code", with the code) when the order holds another code than
the one given up on: a concurrent attempt took it, and the caller tries that one. The
request's record (same fingerprint) becomes the out-of-stock refusal, so a retry answers that
and never a card. Once only: a second call returns nothing. A prize (no hold) has nothing to
return.
KEYS: idem (or the no-record key), journal, acct, wallet, hold, orders (the item's)
ARGV: fp, order id, participant, tx, meta, now_ms, the code given up on
Answers {ok, order, tx} (tx "" when nothing was returned now). ]]
redis.register_function("rw_pool_return", function(keys, argv)
  local idem, stream, acct, wallet, hold, orders = keys[1], keys[2], keys[3], keys[4], keys[5], keys[6]
  local order, participant = argv[2], argv[3]
  local current = redis.call("HGET", orders, order)
  if current and current ~= RETURNED and current ~= argv[7] then
    return to_json({ok = false, code = "has_code", detail = "the order holds another code", order = order,
      code_id = current})
  end
  redis.call("HSET", orders, order, RETURNED)
  local tx = ""
  if redis.call("HGET", hold, "state") == "captured" and redis.call("HGET", hold, "participant") == participant then
    local points = hget_int(hold, "captured")
    tx = argv[4]
    hincrby(wallet, "available", points)
    hincrby(wallet, "spent", -points)
    hincrby(acct, "redeemed", -points)
    redis.call("HSET", hold, "state", "returned")
    journal(stream, tx, "redemption_void", participant, points, order, argv[5],
      {{"redeemed", wallet_account(wallet, "available"), points}}, argv[6], 0, -points)
  end
  idem_replace(idem, argv[1], fail("out_of_stock", "this gift card is out of stock; your points were returned"))
  return to_json({ok = true, order = order, tx = tx})
end)

--[[ rw_pool_load: free codes from SQL into the pool, skipping every code taken here; with
ARGV[1] = "1" the item is marked loaded (the last chunk of a load).
KEYS: free, taken, loaded
ARGV: last ("1" | "0"), then per code: score (upload time, ms), id
Answers how many codes were added. ]]
redis.register_function("rw_pool_load", function(keys, argv)
  local free, taken = keys[1], keys[2]
  local added = 0
  for i = 2, #argv, 2 do
    if redis.call("HEXISTS", taken, argv[i + 1]) == 0 then
      added = added + redis.call("ZADD", free, "NX", argv[i], argv[i + 1])
    end
  end
  if argv[1] == "1" then redis.call("SET", keys[3], "1") end
  return added
end)
