--[[
The ledger's part of the one Redis function library (kernel/lua_library.py assembles it
after the kernel prelude, kernel/prelude.lua, whose helpers it declares in wallet/keys.py
LUA_PART): every balance change is one atomic call.

Key layout (all keys of a program share the hash tag {p:<program_id>}; wallet/keys.py):
  rw:{p:P}:w:<participant>  hash  available, held, earned, spent; open (enrolled),
                                  inactive ("1" once deactivated: its tokens stop working)
  rw:{p:P}:acct             hash  program accounts: budget, world, redeemed, expired, pool:<c> ...
  rw:{p:P}:cfg              hash  overdraft ("0" refuses grants the budget cannot cover),
                                  blocked ("1" refuses every grant: a refund left the budget short),
                                  suspended ("1": the operator suspended the program, see suspension)
  rw:{p:P}:hold:<hold id>   hash  participant, points, state (held|captured|voided), tx
  rw:{p:P}:journal          stream, one entry per transaction (the prelude's journal)
  The wallet hash also holds pending (points in pending lots) and owed (points a returned
  sale took back that were no longer there); wallet/pending.lua has the lots' own keys.

Replies, idempotency records and bounds: as the prelude describes them.
]]

-- How long a sale's recent awards are kept (rw:{p:P}:aw:<activity>, apply_grant): far
-- longer than an award's SQL row takes to follow its call.
local AWARDED_SECONDS = 86400

-- The same answer from balances the caller already knows (no read after the writes).
local function known_balance_result(tx, participant, points, available, held)
  return {ok = true, tx = tx, participant = participant, points = points, available = available, held = held}
end

-- A journal entry's metadata (a JSON object) with one more field, `encoded` being its JSON.
local function with_field(meta, name, encoded)
  local sep = ","
  if string.match(meta, "^%s*{%s*}%s*$") then sep = "" end
  return (string.gsub(meta, "}%s*$", function() return sep .. cjson.encode(name) .. ":" .. encoded .. "}" end, 1))
end

-- The entry's metadata with what it paid of the owed points ("owed_paid"), so the ledger
-- alone restores `owed` (wallet/reconcile.py).
local function with_paid(meta, paid)
  if paid <= 0 then return meta end
  return with_field(meta, "owed_paid", int_s(paid))
end

-- Lots: each participant's pending lots (rw:{p:P}:pl:<participant>, a hash lot id -> JSON
-- {points, releases_at (ms, or null: released by approval), reason, activity, boards}), the ones
-- released or cancelled (rw:{p:P}:plx:<participant>, lot id -> "released:<tx>" |
-- "cancelled:<tx>") and the program's due index (rw:{p:P}:lots:due, a sorted set of
-- "<participant> <lot>" by releases_at). A call that opens or closes lots names these keys.

-- `on_boards`: the award counted the lot on leaderboards now (the program counts pending
-- points), so its release does not count it again and its cancellation takes it back.
local function open_lot(wallet, lot, tx, participant, points, ref, on_boards)
  hincrby(wallet, "pending", points)
  local releases = cjson.null
  if lot.releases_at ~= "" then releases = tonumber(lot.releases_at) end
  redis.call("HSET", lot.key, tx, to_json({points = points, releases_at = releases, reason = lot.reason,
    activity = ref, boards = on_boards}))
  if lot.releases_at ~= "" then
    redis.call("ZADD", lot.due, lot.releases_at, participant .. " " .. tx)
  end
end

-- A move's points (a whole number >= 0, checked by move_refusal) as digits, and their
-- negative: written once for the reply, the journal and the HINCRBYs. "-0" is no integer
-- to HINCRBY.
local function signed_digits(points)
  local ps = int_s(points)
  if points > 0 then return ps, "-" .. ps end
  return ps, ps
end

-- Moves the program's budget by `by` (digits) and answers nil, or undoes the move and
-- answers the refusal when the budget would pass 2^53 - 1 in size. Judged on the HINCRBY's
-- answer, so nothing reads the budget before its move; a call that uses it makes it its
-- first write, so an undone move leaves nothing but the refusal's record.
local function budget_move(acct, by, undo)
  if too_large(redis.call("HINCRBY", acct, "budget", by), 0) then
    redis.call("HINCRBY", acct, "budget", undo)
    return balance_refusal("the program's budget")
  end
  return nil
end

-- Where the next item of a batch begins: this one's `nkeys` keys and `nargs` arguments, then
-- its leaderboards' section when it has `n` boards (the marker and its lifetime, then three
-- keys and three arguments per board).
local function after_section(k, a, nkeys, nargs, n)
  if n > 0 then return k + nkeys + 1 + 3 * n, a + nargs + 1 + 3 * n end
  return k + nkeys, a + nargs
end

--[[ rw_grant: budget -> available, and the leaderboards it moves, in one atomic step.
KEYS: idem, journal, acct, cfg, wallet, then optionally the leaderboards' section: the
      event's marker (rw:{p:P}:lbm:tx:<tx>) and three keys per board
ARGV: fp, ttl, tx, participant, points, kind, reference, meta, now_ms, then with the
      leaderboards' section: the marker's lifetime and three arguments per board
      (programs/leaderboard_score.lua, BOARDS.grant)
A grant with no section (internal callers) moves no board. The boards count the
points the grant moved, only when it applied: a refusal, a cap reached or a replay counts
nothing. `boards` below is that section ({keys, k, argv, a, n}) or nil. ]]
local function apply_grant(idem, stream, acct, cfg, wallet, fp, ttl, tx, participant, points, kind, ref, meta, now,
                           cap_key, cap_limit, boards, lot, sale)
  local early = idem_check(idem, fp)
  if early then return early end
  -- An award for a sale that was returned (wallet/pending.lua rw_reverse wrote its record)
  -- pays nothing, whenever it comes: a batch sent again, a rule applied later, or one
  -- racing the return.
  if sale and redis.call("EXISTS", sale.record) == 1 then
    return idem_store(idem, fp, ttl, fail("activity_reversed", "the sale was returned; it earns nothing"))
  end
  -- Each hash read once (the same checks as missing_wallet, suspension and budget_refusal
  -- make one read at a time elsewhere; the budget's bound is judged on its move, below). A
  -- deactivated participant earns nothing new (grants and awards), as their tokens stop:
  -- prizes already won, deductions and expiry still apply. Not recorded, like a suspension,
  -- so the same key grants once the participant is reactivated.
  local w = redis.call("HMGET", wallet, "open", "inactive", "available", "earned", "held", "pending", "owed")
  early = absent_wallet(w[1])
  if early then return early end
  local c = redis.call("HMGET", cfg, "suspended", "blocked", "overdraft")
  early = suspended_program(c[1])
  if early then return early end
  if (kind == "grant" or kind == "award" or kind == "pending_award") and w[2] == "1" then
    return cjson.encode(fail("participant_inactive",
      "the participant is deactivated; reactivate them to give them points"))
  end
  local size = move_refusal(points)
  if size then return idem_store(idem, fp, ttl, size) end
  -- A cap (points per participant per period for one earning rule) trims the award to
  -- what is left of it; nothing left answers "capped" and moves nothing.
  if cap_limit and cap_limit ~= "" then
    local left = tonumber(cap_limit) - hget_int(cap_key, "used")
    if left <= 0 then
      return idem_store(idem, fp, ttl, {ok = true, code = "capped", participant = participant, points = 0,
        detail = "the rule's cap for this period is reached"})
    end
    if points > left then points = left end
  end
  if c[2] == "1" then
    return idem_store(idem, fp, ttl, fail("budget_exhausted",
      "the program's budget is negative after a refund or dispute; fund it to grant again"))
  end
  -- Only a program that refuses overdraft reads its budget before the move; otherwise the
  -- move's own HINCRBY answers the budget (below), a command fewer on every grant.
  if c[3] == "0" and hget_int(acct, "budget") < points then
    return idem_store(idem, fp, ttl, fail("budget_exhausted", "the program's budget cannot cover this award"))
  end
  local available, earned = tonumber(w[3] or "0"), tonumber(w[4] or "0")
  if lot then
    -- A pending lot: budget -> the participant's pending account, not spendable until
    -- released (wallet/pending.lua); earned moves at the release.
    if too_large(tonumber(w[6] or "0"), points) then
      return idem_store(idem, fp, ttl, balance_refusal("the participant's pending balance"))
    end
  elseif too_large(available, points) or too_large(earned, points) then
    return idem_store(idem, fp, ttl, balance_refusal("the participant's balance"))
  end
  local ps, minus = signed_digits(points)
  local refused = budget_move(acct, minus, ps)
  if refused then return idem_store(idem, fp, ttl, refused) end
  if cap_limit and cap_limit ~= "" then
    hincrby(cap_key, "used", points)
    redis.call("EXPIRE", cap_key, 40000000)
  end
  if sale then
    -- The sale's awards of the last day, so a return that read the award rows from SQL
    -- before this one's was written is told to read again (rw_reverse: awards_moved).
    redis.call("SADD", sale.awarded, tx)
    redis.call("EXPIRE", sale.awarded, AWARDED_SECONDS)
  end
  local reply
  if lot then
    open_lot(wallet, lot, tx, participant, points, ref, boards ~= nil and boards.n > 0)
    journal(stream, tx, kind, participant, 0, ref, meta,
      {{"budget", wallet_account(wallet, "pending"), points}}, now, 0, 0)
    local result = known_balance_result(tx, participant, points, available, tonumber(w[5] or "0"))
    result.lot = tx
    if lot.releases_at ~= "" then result.releases_at = tonumber(lot.releases_at) end
    reply = idem_store(idem, fp, ttl, result)
  else
    local owed = tonumber(w[7] or "0")
    if owed > 0 then
      -- Points a returned sale left owing are paid first, back to the budget (owed_credit).
      local paid, legs = owed_credit(acct, wallet, owed, points)
      -- One write for both fields, from the values read above (exact: checked within bounds).
      redis.call("HSET", wallet, "available", int_s(available + points - paid), "earned", int_s(earned + points))
      journal(stream, tx, kind, participant, points - paid, ref, with_paid(meta, paid), legs, now, points, 0)
      -- Exact: both terms are integers and the sum stays within 2^53 - 1 (checked above).
      local result = known_balance_result(tx, participant, points, available + points - paid, tonumber(w[5] or "0"))
      if paid > 0 then result.owed_paid = paid end
      reply = idem_store(idem, fp, ttl, result)
    else
      -- Nothing owed (nearly always): owed_credit's one leg and the plain reply, every number
      -- in them written once. The wallet is the participant's (wallet/keys.py names it by
      -- them), so its account is named from them.
      local after = int_s(available + points)
      redis.call("HSET", wallet, "available", after, "earned", int_s(earned + points))
      journal_digits(stream, tx, kind, participant, ps, ref, meta, one_leg_digits("budget", "available:" .. participant, ps),
        now, ps, "0")
      reply = idem_record(idem, fp, ttl, balance_digits(tx, participant, ps, after, w[5] and int_s(tonumber(w[5])) or "0"))
    end
  end
  -- After the record: were a board's key ever of the wrong type, the error would leave the
  -- grant applied and recorded (a retry replays it), never applied twice.
  if boards and boards.n > 0 then BOARDS.grant(boards, points) end
  return reply
end

register_gateable("rw_grant", function(keys, argv)
  return apply_grant(keys[1], keys[2], keys[3], keys[4], keys[5],
    argv[1], argv[2], argv[3], argv[4], tonumber(argv[5]), argv[6], argv[7], argv[8], argv[9], nil, nil,
    board_section(keys, 6, argv, 10, math.max(#keys - 6, 0) / 3))
end)

--[[ rw_grant_batch: many independent grants in one round trip, each with its own record and
the leaderboards it moves (as rw_grant's section: counted only when that grant applied, never
on a replay or a refusal).
KEYS: journal, acct, cfg, then per grant: idem, wallet, then its leaderboards' keys (the
      marker and three per board; none for no board)
ARGV: ttl, now_ms, then per grant: fp, tx, participant, points, kind, reference, meta, board
      count, then its leaderboards' arguments (the marker's lifetime and three per board;
      none for no board)
Answers a JSON array of per-grant results, in order. ]]
--[[ rw_award_batch: earning-rule awards, each with its own record and optional cap, and the
leaderboards each moves (as rw_grant's section: counted only when the award applied). An
award may be pending: its points go into a lot (budget -> pending) named by its transaction.
KEYS: journal, acct, cfg, the program's due lots (rw:{p:P}:lots:due), then per award: idem,
      wallet, cap counter (a placeholder key when uncapped), the participant's lots
      (rw:{p:P}:pl:<participant>), the sale's reversal record (rw:{p:P}:rev:<activity>: an
      award of a returned sale answers "activity_reversed"), the sale's recent awards
      (rw:{p:P}:aw:<activity>), then its leaderboards' keys (the marker and three per
      board; none for no board)
ARGV: ttl, now_ms, then per award: fp, tx, participant, points, kind, reference, meta,
      cap limit ("" = none), pending ("" = available at once, else "<releases_at ms or
      empty for approval>|<reason>"), board count, then its leaderboards' arguments (the
      marker's lifetime and three per board; none for no board)
Answers a JSON array of per-award results, in order ("capped" results move nothing; a
pending award's result carries `lot`). ]]
redis.register_function("rw_award_batch", function(keys, argv)
  local ttl, now = argv[1], argv[2]
  local out = {}
  local k, a = 5, 3
  while k <= #keys do
    local n = tonumber(argv[a + 9])
    local lot = nil
    local spec = argv[a + 8]
    if spec ~= "" then
      local at, reason = string.match(spec, "^([^|]*)|(.*)$")
      lot = {key = keys[k + 3], due = keys[4], releases_at = at, reason = reason}
    end
    out[#out + 1] = apply_grant(keys[k], keys[1], keys[2], keys[3], keys[k + 1],
      argv[a], ttl, argv[a + 1], argv[a + 2], tonumber(argv[a + 3]), argv[a + 4], argv[a + 5], argv[a + 6], now,
      keys[k + 2], argv[a + 7], board_section(keys, k + 6, argv, a + 10, n), lot,
      {record = keys[k + 4], awarded = keys[k + 5]})
    k, a = after_section(k, a, 6, 10, n)
  end
  return "[" .. table.concat(out, ",") .. "]"
end)

redis.register_function("rw_grant_batch", function(keys, argv)
  local ttl, now = argv[1], argv[2]
  local out = {}
  local k, a = 4, 3
  while k <= #keys do
    local n = tonumber(argv[a + 7])
    out[#out + 1] = apply_grant(keys[k], keys[1], keys[2], keys[3], keys[k + 1],
      argv[a], ttl, argv[a + 1], argv[a + 2], tonumber(argv[a + 3]), argv[a + 4], argv[a + 5], argv[a + 6], now,
      nil, nil, board_section(keys, k + 2, argv, a + 8, n))
    k, a = after_section(k, a, 2, 8, n)
  end
  return "[" .. table.concat(out, ",") .. "]"
end)

--[[ rw_balance: a wallet's balances, read in a function so a request's gate can be carried
into the read (rw_gated). KEYS: wallet, then optionally its pending lots
(rw:{p:P}:pl:<participant>). Answers {"open": 0} for a wallet never opened, else
{"open": 1, available, held, earned, spent, pending, owed, lots}: the lots (as stored:
points, releases_at, reason, activity, each with its id) are read only when some points are
pending, so a wallet without lots costs the one HMGET it always did. ]]
register_gateable("rw_balance", function(keys)
  local v = redis.call("HMGET", keys[1], "open", "available", "held", "earned", "spent", "pending", "owed")
  if not v[1] then return '{"open":0}' end
  local lots = ""
  if keys[2] and v[6] and v[6] ~= "0" then
    local all = redis.call("HGETALL", keys[2])
    local parts = {}
    for i = 1, #all, 2 do parts[#parts + 1] = '{"id":' .. cjson.encode(all[i]) .. ',"lot":' .. all[i + 1] .. '}' end
    lots = ',"lots":[' .. table.concat(parts, ",") .. ']'
  end
  return '{"open":1,"available":' .. (v[2] or "0") .. ',"held":' .. (v[3] or "0") .. ',"earned":' ..
    (v[4] or "0") .. ',"spent":' .. (v[5] or "0") .. ',"pending":' .. (v[6] or "0") .. ',"owed":' ..
    (v[7] or "0") .. lots .. '}'
end)

--[[ rw_deduct: available -> budget (an admin's correction returns points to the program).
KEYS: idem, journal, acct, cfg, wallet
ARGV: fp, ttl, tx, participant, points, kind, reference, meta, now_ms ]]
register_gateable("rw_deduct", function(keys, argv)
  local idem, stream, acct, wallet = keys[1], keys[2], keys[3], keys[5]
  local fp, ttl, tx, participant = argv[1], argv[2], argv[3], argv[4]
  local points = tonumber(argv[5])
  local early = idem_check(idem, fp)
  if early then return early end
  local w = redis.call("HMGET", wallet, "open", "available", "held")
  if not w[1] then return to_json(fail("not_found", "no such participant")) end
  early = suspension(keys[4])
  if early then return early end
  local available = tonumber(w[2] or "0")
  local refused = spend_refusal(points, available)
  if refused then return idem_store(idem, fp, ttl, refused) end
  local ps, minus = signed_digits(points)
  refused = budget_move(acct, ps, minus)
  if refused then return idem_store(idem, fp, ttl, refused) end
  -- Written from the value read (exact: checked by spend_refusal), never an HINCRBY that a
  -- balance written before the bounds ("1e+14") would fail after the budget moved.
  local after = int_s(available - points)
  redis.call("HSET", wallet, "available", after)
  journal_digits(stream, tx, argv[6], participant, minus, argv[7], argv[8],
    one_leg_digits("available:" .. participant, "budget", ps), argv[9], "0", "0")
  return idem_record(idem, fp, ttl, balance_digits(tx, participant, ps, after, w[3] and int_s(tonumber(w[3])) or "0"))
end)

--[[ rw_hold: available -> held, recorded under a hold id (the order it pays for).
KEYS: idem, journal, acct, cfg, wallet, hold
ARGV: fp, ttl, tx, participant, points, kind, reference, meta, now_ms ]]
redis.register_function("rw_hold", function(keys, argv)
  local idem, stream, wallet, hold = keys[1], keys[2], keys[5], keys[6]
  local fp, ttl, tx, participant = argv[1], tonumber(argv[2]), argv[3], argv[4]
  local points = tonumber(argv[5])
  local early = idem_check(idem, fp) or missing_wallet(wallet) or suspension(keys[4])
  if early then return early end
  if redis.call("EXISTS", hold) == 1 then
    return idem_store(idem, fp, ttl, fail("conflict", "this hold already exists"))
  end
  local refused = spend_refusal(points, hget_int(wallet, "available"))
  if refused then return idem_store(idem, fp, ttl, refused) end
  if too_large(hget_int(wallet, "held"), points) then
    return idem_store(idem, fp, ttl, balance_refusal("the participant's held balance"))
  end
  hincrby(wallet, "available", -points)
  hincrby(wallet, "held", points)
  redis.call("HSET", hold, "participant", participant, "points", int_s(points), "state", "held", "tx", tx,
    "reference", argv[7])
  journal(stream, tx, argv[6], participant, -points, argv[7], argv[8],
    {{wallet_account(wallet, "available"), wallet_account(wallet, "held"), points}}, argv[9])
  return idem_record(idem, fp, ttl, balance_reply(wallet, tx, participant, points))
end)

-- Checks a hold can be resolved; answers (hold points, nil) or (nil, failure).
local function open_hold(hold, participant)
  if redis.call("EXISTS", hold) == 0 then
    return nil, fail("not_found", "no such hold")
  end
  if redis.call("HGET", hold, "participant") ~= participant then
    return nil, fail("not_found", "no such hold")
  end
  local state = redis.call("HGET", hold, "state")
  if state ~= "held" then
    return nil, fail("conflict", "the hold is already " .. state)
  end
  return hget_int(hold, "points"), nil
end

--[[ rw_capture: held -> redeemed for all or part of a hold; any rest returns to available.
KEYS: idem, journal, acct, cfg, wallet, hold
ARGV: fp, ttl, tx, participant, points ("" for the whole hold), kind, reference, meta, now_ms ]]
redis.register_function("rw_capture", function(keys, argv)
  local idem, stream, acct, wallet, hold = keys[1], keys[2], keys[3], keys[5], keys[6]
  local fp, ttl, tx, participant = argv[1], tonumber(argv[2]), argv[3], argv[4]
  local early = idem_check(idem, fp)
  if early then return early end
  local held, failure = open_hold(hold, participant)
  if failure then return to_json(failure) end
  local points = held
  if argv[5] ~= "" then points = tonumber(argv[5]) end
  local size = move_refusal(points)
  if size then return to_json(size) end
  if points > held then
    return to_json(fail("validation_error", "cannot capture more than the hold's " .. int_s(held) .. " points"))
  end
  local rest = held - points
  if too_large(hget_int(wallet, "spent"), points) or too_large(hget_int(wallet, "available"), rest) then
    return to_json(balance_refusal("the participant's balance"))
  end
  if too_large(hget_int(acct, "redeemed"), points) then
    return to_json(balance_refusal("the program's redeemed account"))
  end
  hincrby(wallet, "held", -held)
  hincrby(wallet, "spent", points)
  hincrby(acct, "redeemed", points)
  local legs = {{wallet_account(wallet, "held"), "redeemed", points}}
  if rest > 0 then
    hincrby(wallet, "available", rest)
    legs[2] = {wallet_account(wallet, "held"), wallet_account(wallet, "available"), rest}
  end
  redis.call("HSET", hold, "state", "captured", "captured", int_s(points))
  redis.call("HDEL", hold, "meta")  -- what its order was made of (rw_partner_hold): written by now
  journal(stream, tx, argv[6], participant, rest, argv[7], argv[8], legs, argv[9], 0, points)
  return idem_record(idem, fp, ttl, balance_reply(wallet, tx, participant, points))
end)

--[[ rw_void: held -> available; the hold's points come back.
KEYS: idem, journal, acct, cfg, wallet, hold
ARGV: fp, ttl, tx, participant, kind, reference, meta, now_ms ]]
redis.register_function("rw_void", function(keys, argv)
  local idem, stream, wallet, hold = keys[1], keys[2], keys[5], keys[6]
  local fp, ttl, tx, participant = argv[1], tonumber(argv[2]), argv[3], argv[4]
  local early = idem_check(idem, fp)
  if early then return early end
  local held, failure = open_hold(hold, participant)
  if failure then return to_json(failure) end
  if too_large(hget_int(wallet, "available"), held) then
    return to_json(balance_refusal("the participant's balance"))
  end
  hincrby(wallet, "held", -held)
  hincrby(wallet, "available", held)
  redis.call("HSET", hold, "state", "voided")
  redis.call("HDEL", hold, "meta")
  journal(stream, tx, argv[5], participant, held, argv[6], argv[7],
    {{wallet_account(wallet, "held"), wallet_account(wallet, "available"), held}}, argv[8])
  return idem_record(idem, fp, ttl, balance_reply(wallet, tx, participant, held))
end)

--[[ rw_transfer: a general multi-leg transaction between program accounts and wallets.
Used for funding (world -> budget), refunds, spins and entries.
KEYS: idem, journal, acct, cfg, then the wallets the legs name (may be none)
ARGV: fp, ttl, tx, participant ("" if none), kind, reference, meta, now_ms, leg count,
      then per leg: from, to, points, floor
  An account is "acct:<field>" (a program account) or "w<i>:<field>" (field of the i-th
  wallet key, 1-based, one of available|held). floor is "0" when the debited account may
  not go below zero, "-" when it may (world), "b" for the budget rule of rw_grant.
  The participant's lifetime counters move with legs into/out of their available balance
  when the kind says so: ARGV[9 + 4n + 1] = "earn" | "spend" | "". Points earned ("earn")
  first pay what the first wallet owes after a returned sale (its `owed`), back to the budget;
  refunds and every other transfer never do. ]]
redis.register_function("rw_transfer", function(keys, argv)
  local idem, stream, acct = keys[1], keys[2], keys[3]
  local fp, ttl, tx, participant = argv[1], tonumber(argv[2]), argv[3], argv[4]
  local early = idem_check(idem, fp)
  if early then return early end
  for k = 5, #keys do
    local missing = missing_wallet(keys[k])
    if missing then return missing end
  end
  local nlegs = tonumber(argv[9])
  local function resolve(name)
    local scope, field = string.match(name, "^([^:]+):(.+)$")
    if scope == "acct" then return acct, field, field end
    local key = keys[4 + tonumber(string.sub(scope, 2))]
    return key, field, wallet_account(key, field)
  end
  -- Check every debit against its floor before writing anything, leg by leg, so a leg
  -- may spend what an earlier leg of the same transaction credited.
  local pending = {}
  local parsed = {}
  local function balance_of(k, f)
    local id = k .. "|" .. f
    if pending[id] == nil then pending[id] = hget_int(k, f) end
    return id
  end
  for i = 0, nlegs - 1 do
    local a = 10 + i * 4
    local fk, ff, fname = resolve(argv[a])
    local tk, tf, tname = resolve(argv[a + 1])
    local points = tonumber(argv[a + 2])
    local size = move_refusal(points)
    if size then return idem_store(idem, fp, ttl, size) end
    parsed[#parsed + 1] = {fk, ff, fname, tk, tf, tname, points}
    local from_id, to_id = balance_of(fk, ff), balance_of(tk, tf)
    if argv[a + 3] == "0" and pending[from_id] < points then
      local code = "insufficient_points"
      if fk == acct then code = "budget_exhausted" end
      return idem_store(idem, fp, ttl, fail(code,
        fname .. " holds " .. int_s(pending[from_id]) .. ", " .. int_s(points) .. " needed"))
    elseif argv[a + 3] == "b" then
      local refusal = budget_refusal(keys[4], acct, points)
      if refusal then return idem_store(idem, fp, ttl, refusal) end
    end
    if too_large(pending[from_id], -points) then return idem_store(idem, fp, ttl, balance_refusal(fname)) end
    if too_large(pending[to_id], points) then return idem_store(idem, fp, ttl, balance_refusal(tname)) end
    pending[from_id] = pending[from_id] - points
    pending[to_id] = pending[to_id] + points
  end
  local lifetime = argv[10 + nlegs * 4] or ""
  -- The lifetime counters the legs would move stay within bounds too.
  for _, leg in ipairs(parsed) do
    local counter_key, counter = nil, nil
    if lifetime == "earn" and leg[5] == "available" and leg[4] ~= acct then counter_key, counter = leg[4], "earned" end
    if lifetime == "spend" and leg[2] == "available" and leg[1] ~= acct then counter_key, counter = leg[1], "spent" end
    if counter_key then
      local id = balance_of(counter_key, counter)
      if too_large(pending[id], leg[7]) then
        return idem_store(idem, fp, ttl, balance_refusal("a lifetime counter"))
      end
      pending[id] = pending[id] + leg[7]
    end
  end
  local legs = {}
  local net, earned, spent, first_earned = 0, 0, 0, 0
  for _, leg in ipairs(parsed) do
    local fk, ff, fname, tk, tf, tname, points = leg[1], leg[2], leg[3], leg[4], leg[5], leg[6], leg[7]
    hincrby(fk, ff, -points)
    hincrby(tk, tf, points)
    legs[#legs + 1] = {fname, tname, points}
    if participant ~= "" then
      if tname == "available:" .. participant then net = net + points end
      if fname == "available:" .. participant then net = net - points end
    end
    if lifetime == "earn" and tf == "available" and tk ~= acct then
      hincrby(tk, "earned", points)
      earned = earned + points
      if tk == keys[5] then first_earned = first_earned + points end
    end
    if lifetime == "spend" and ff == "available" and fk ~= acct then
      hincrby(fk, "spent", points)
      spent = spent + points
    end
  end
  -- Earnings ("earn": a prize paid in points instead of an item) pay what a returned sale
  -- left the first wallet owing first, as owed_credit does for grants.
  local meta, paid = argv[7], 0
  if first_earned > 0 then
    local owed = hget_int(keys[5], "owed")
    if owed > 0 then
      paid = math.min(owed, first_earned)
      hincrby(keys[5], "owed", -paid)
      hincrby(keys[5], "available", -paid)
      hincrby(acct, "budget", paid)
      local mine = wallet_account(keys[5], "available")
      legs[#legs + 1] = {mine, "budget", paid}
      if mine == "available:" .. participant then net = net - paid end
      meta = with_paid(meta, paid)
    end
  end
  journal(stream, tx, argv[5], participant, net, argv[6], meta, legs, argv[8], earned, spent)
  local result = {ok = true, tx = tx, participant = participant, points = net}
  if paid > 0 then result.owed_paid = paid end
  if keys[5] then
    result.available = hget_int(keys[5], "available")
    result.held = hget_int(keys[5], "held")
  end
  return idem_store(idem, fp, ttl, result)
end)

--[[ rw_free_spins: free-spin tokens into a wallet (earning rules, an admin's gift). A spin
uses a token before points (games/spins.lua). Tokens are not points: the journal entry has
no legs, and its meta carries `tokens` so `rebuild` restores them from the ledger.
KEYS: idem, wallet, cfg, journal
ARGV: fp, ttl, spins, tx, participant, now_ms
Answers {"ok": true, "free_spins": <tokens now>}. ]]
redis.register_function("rw_free_spins", function(keys, argv)
  local idem, wallet, stream = keys[1], keys[2], keys[4]
  local fp, ttl, spins = argv[1], tonumber(argv[2]), tonumber(argv[3])
  local early = idem_check(idem, fp) or missing_wallet(wallet) or suspension(keys[3])
  if early then return early end
  local tokens = hincrby(wallet, "free_spins", spins)
  journal(stream, argv[4], "free_spins", argv[5], 0, "", to_json({tokens = spins}), {}, argv[6], 0, 0)
  return idem_store(idem, fp, ttl, {ok = true, free_spins = tokens})
end)
