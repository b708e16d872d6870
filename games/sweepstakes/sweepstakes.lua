--[[ Sweepstakes: in the games' part of the one function library (games/keys.py LUA_PART,
kernel/lua_library.py), so it uses the kernel prelude's helpers that part declares
(idem_check, idem_store, fail, journal, missing_wallet, hget_int, wallet_account, ...:
kernel/prelude.lua). Keys: games/sweepstakes/keys.py. ]]

-- Whether `count` more tickets for `public_id` fit at now_ms: nil, or the refusal.
-- Shared by entries and by spin prizes of entries (games/spins.lua).
local function sw_refusal(sw, tickets, owners, public_id, participant, count, now_n)
  local cfg = redis.call("HMGET", sw, "status", "starts_ms", "closes_ms", "max", "tickets")
  if not cfg[1] then return fail("not_found", "no such sweepstakes") end
  if cfg[1] ~= "open" or now_n >= tonumber(cfg[3]) then
    return fail("sweepstakes_closed", "the sweepstakes is closed to entries")
  end
  if cfg[2] and cfg[2] ~= "" and now_n < tonumber(cfg[2]) then
    return fail("sweepstakes_not_open", "the sweepstakes does not take entries yet")
  end
  local owner = redis.call("HGET", owners, public_id)
  if owner and owner ~= participant then
    return fail("conflict", "public id collision; retry")
  end
  local have, most = hget_int(tickets, public_id), tonumber(cfg[4])
  if have + count > most then
    return fail("limit_reached", "you hold " .. int_s(have) .. " of at most " .. int_s(most) ..
      " tickets; " .. int_s(count) .. " more would pass the maximum")
  end
  if tonumber(cfg[5] or "0") + count > 4294967296 then
    return fail("limit_reached", "the sweepstakes holds its maximum of 2^32 tickets")
  end
  return nil
end

-- Adds tickets the caller checked with sw_refusal; `counter` is paid or free.
local function sw_add_tickets(sw, tickets, owners, public_id, participant, count, counter)
  local held = redis.call("HINCRBY", tickets, public_id, count)
  redis.call("HSET", owners, public_id, participant)
  redis.call("HINCRBY", sw, "tickets", count)
  if held == count then redis.call("HINCRBY", sw, "entrants", 1) end
  redis.call("HINCRBY", sw, counter, count)
  return held
end

--[[ rw_sw_enter: buys (or, for the admin's free entries, grants) `count` tickets.
KEYS: idem, journal, acct, cfg, wallet, sweepstakes config, tickets, owners
ARGV: fp, ttl, tx, participant, public id, count, kind, reference, meta, now_ms, free ("1"|"0")
One atomic step: the sweepstakes is open at now_ms, the participant stays within the
maximum (paid and free tickets count alike), and `cost * count` points move from their
available balance to the program's "sweepstakes" account (lifetime spent). ]]
redis.register_function("rw_sw_enter", function(keys, argv)
  local idem, stream, acct, wallet, sw, tickets, owners = keys[1], keys[2], keys[3], keys[5], keys[6], keys[7], keys[8]
  local fp, ttl, tx, participant, public_id = argv[1], tonumber(argv[2]), argv[3], argv[4], argv[5]
  local count, kind, ref, meta, now, free = tonumber(argv[6]), argv[7], argv[8], argv[9], argv[10], argv[11] == "1"
  local early = idem_check(idem, fp) or missing_wallet(wallet) or suspension(keys[4])
  if early then return early end
  local refusal = sw_refusal(sw, tickets, owners, public_id, participant, count, tonumber(now))
  -- Refusals that depend on time or state are not stored: the same key may be retried later.
  if refusal then return to_json(refusal) end
  local points = 0
  if not free then points = tonumber(redis.call("HGET", sw, "cost")) * count end
  local refused = spend_refusal(points, hget_int(wallet, "available"))
  if refused then return idem_store(idem, fp, ttl, refused) end
  if too_large(hget_int(wallet, "spent"), points) or too_large(hget_int(acct, "sweepstakes"), points) then
    return idem_store(idem, fp, ttl, balance_refusal("a balance this entry moves"))
  end
  local legs = {}
  if points > 0 then
    hincrby(wallet, "available", -points)
    hincrby(wallet, "spent", points)
    hincrby(acct, "sweepstakes", points)
    legs[1] = {wallet_account(wallet, "available"), "sweepstakes", points}
  end
  local counter = "paid"
  if free then counter = "free" end
  local held = sw_add_tickets(sw, tickets, owners, public_id, participant, count, counter)
  journal(stream, tx, kind, participant, -points, ref, meta, legs, now, 0, points)
  return idem_store(idem, fp, ttl, {ok = true, tx = tx, participant = participant, points = points,
    count = count, tickets = held, total = hget_int(sw, "tickets"),
    available = hget_int(wallet, "available"), held = hget_int(wallet, "held")})
end)

--[[ rw_sw_close: open -> closed; entries stop at once (rw_sw_enter checks the status).
KEYS: sweepstakes config
ARGV: now_ms
Answers {status, tickets, entrants, closed_ms}; closing again answers the same totals. ]]
redis.register_function("rw_sw_close", function(keys, argv)
  local sw = keys[1]
  local status = redis.call("HGET", sw, "status")
  if not status then return to_json({ok = false, code = "not_found"}) end
  if status == "open" then
    redis.call("HSET", sw, "status", "closed", "closed_ms", argv[1])
    status = "closed"
  end
  return to_json({ok = true, status = status, tickets = hget_int(sw, "tickets"),
    entrants = hget_int(sw, "entrants"), closed_ms = hget_int(sw, "closed_ms")})
end)
