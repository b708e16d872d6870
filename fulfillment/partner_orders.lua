--[[
An external partner's order, the Redis half (fulfillment/partner_orders.py): the points held
for the order and the order itself journalled in one atomic call, so the order costs one
round trip and one SQL transaction, and the journal projector writes the order if the
request dies between the two. Keys are the wallet's (the hold, the journal, the wallet) and
the request's idempotency record, all under the program's hash tag.
]]

--[[ rw_partner_hold: the participant's points from available to held under the order (the
hold rw_capture and rw_void later settle), one `hold` journal entry whose metadata carries
the order, and the request's record ({ok, order, tx, points, meta}), so a replay answers the
order as it was charged. Refusals change nothing and are not recorded, so a retry may succeed
later. A second call for the same order (a retry with no record: a prize, an approval)
answers the hold it made, as replayed.
The order's face value is counted toward the participant's tax year (taxes.lua) in the same
call, which refuses with `tax_recount` when the caller judged from a counter that no longer
bears it out.
A participant's redemption passes a guard (pool.lua `guard_refusal`) and may carry its
request's gate (rw_gated): its one round trip.
KEYS: idem (or the no-record key), journal, cfg, wallet, hold (the order's), the tax counter,
      its early key, then the guard's: the key's pinned id, the catalog's version
ARGV: fp, ttl, order id, participant, points (> 0), tx, the hold's metadata, now_ms, then the
      counter's: face value, seed ("" for none), ttl, time zone, limit ("" for none), then the
      guard's catalog version
Answers {ok, order, tx, points, meta, tax}. ]]
register_gateable("rw_partner_hold", function(keys, argv)
  local idem, stream, cfg, wallet, hold = keys[1], keys[2], keys[3], keys[4], keys[5]
  local fp, ttl, order, participant = argv[1], tonumber(argv[2]), argv[3], argv[4]
  local points = tonumber(argv[5])
  local early = order_early(idem, fp) or guard_refusal(keys, argv, 8, 14)
  if early then return early end
  if redis.call("EXISTS", hold) == 1 then
    local h = redis.call("HMGET", hold, "reference", "participant", "tx", "points", "meta")
    if h[1] == order and h[2] == participant then
      return to_json({ok = true, order = order, tx = h[3], points = tonumber(h[4]), meta = h[5] or cjson.null,
        replayed = 1})
    end
    return to_json(fail("conflict", "this order's points are already held"))
  end
  early = missing_wallet(wallet) or suspension(cfg)
  if early then return early end
  local refused = spend_refusal(points, hget_int(wallet, "available"))
  if refused then return to_json(refused) end
  if too_large(hget_int(wallet, "held"), points) then
    return to_json(balance_refusal("the participant's held balance"))
  end
  early = tax_refusal(cfg, keys, argv, 6, 9)
  if early then return early end
  local tx = argv[6]
  local available, held = wallet_account(wallet, "available"), wallet_account(wallet, "held")
  hincrby(wallet, "available", -points)
  hincrby(wallet, "held", points)
  -- The order's fields stay with the hold until it is settled (rw_capture, rw_void drop them): a
  -- retry by order id (an approval, a redemption made for the participant) writes the order as
  -- it was charged.
  redis.call("HSET", hold, "participant", participant, "points", int_s(points), "state", "held", "tx", tx,
    "reference", order, "meta", argv[7])
  journal(stream, tx, "hold", participant, -points, order, argv[7], {{available, held, points}}, argv[8])
  tax_count(cfg, keys, argv, 6, 9)
  return idem_store(idem, fp, ttl, {ok = true, order = order, tx = tx, points = points, meta = argv[7], tax = 1})
end)
