--[[
Pending lots and returned sales: the ledger's part after functions.lua (same part, so its
local helpers are in scope). Lots are opened by an award that says its points wait
(apply_grant in functions.lua); these functions release and cancel them and take back what
a returned sale earned. Keys (all under the program's hash tag, wallet/keys.py):
  rw:{p:P}:pl:<participant>   hash  lot id (the awarding transaction) -> JSON
                                    {points, releases_at (ms, or null for approval), reason, activity,
                                    boards (true: the award counted it on leaderboards)}
  rw:{p:P}:plx:<participant>  hash  lot id -> "released:<tx>" | "cancelled:<tx>" (a lot leaves once)
  rw:{p:P}:lots:due           zset  "<participant> <lot id>" by releases_at (ms)
  rw:{p:P}:rev:<activity>     string the reversal's record (JSON result; an idempotency record
                                    that lives for years: a sale is returned once)
]]

-- The lot's stored JSON decoded, or nil.
local function pending_lot(lots, lot_id)
  local raw = redis.call("HGET", lots, lot_id)
  if not raw then return nil end
  return cjson.decode(raw)
end

--[[ rw_release: a pending lot -> available (paying owed points first), one journal entry.
KEYS: idem, journal, acct, cfg, wallet, lots, closed lots, due
ARGV: fp, ttl, tx, participant, lot id, now_ms (the entry's stamp), mode ("due": only when
      releases_at <= the moment checked; "approve": a manager's release, any pending lot),
      meta (the lot's reason is added), the moment checked (ms; the worker's pass)
Answers {ok, tx, participant, points, available, held, owed_paid?, on_boards?} (on_boards:
whether the award already counted the lot on leaderboards, for lots that recorded it); a lot already released
answers ok with code "already_released" and its first transaction (nothing moves); a lot
not yet due answers code "not_due"; no such lot: "not_found". ]]
redis.register_function("rw_release", function(keys, argv)
  local idem, stream, acct, wallet, lots, closed, due = keys[1], keys[2], keys[3], keys[5], keys[6], keys[7], keys[8]
  local fp, ttl, tx, participant, lot_id, now, mode = argv[1], tonumber(argv[2]), argv[3], argv[4], argv[5],
    argv[6], argv[7]
  local early = idem_check(idem, fp) or missing_wallet(wallet)
  if early then return early end
  local lot = pending_lot(lots, lot_id)
  if not lot then
    local done = redis.call("HGET", closed, lot_id)
    if done then
      local state, first = string.match(done, "^(%a+):(.*)$")
      return to_json(fail(state == "released" and "already_released" or "conflict",
        "the lot was already " .. state .. " (" .. first .. ")"))
    end
    return to_json(fail("not_found", "no such pending lot"))
  end
  if mode == "due" and (lot.releases_at == cjson.null or lot.releases_at > tonumber(argv[9])) then
    return to_json(fail("not_due", "the lot is not due yet"))
  end
  local points = lot.points
  local w = redis.call("HMGET", wallet, "available", "held", "owed", "earned")
  local available, earned = tonumber(w[1] or "0"), tonumber(w[4] or "0")
  if too_large(available, points) or too_large(earned, points) then
    return to_json(balance_refusal("the participant's balance"))
  end
  redis.call("HDEL", lots, lot_id)
  redis.call("HSET", closed, lot_id, "released:" .. tx)
  redis.call("ZREM", due, participant .. " " .. lot_id)
  hincrby(wallet, "pending", -points)
  local paid, legs = owed_credit(acct, wallet, tonumber(w[3] or "0"), points, wallet_account(wallet, "pending"))
  hincrby(wallet, "available", points - paid)
  hincrby(wallet, "earned", points)
  local meta = with_paid(with_field(argv[8], "reason", cjson.encode(lot.reason or "")), paid)
  journal(stream, tx, "release", participant, points - paid, lot_id, meta, legs, now, points, 0)
  local result = known_balance_result(tx, participant, points, available + points - paid, tonumber(w[2] or "0"))
  if paid > 0 then result.owed_paid = paid end
  if type(lot.boards) == "boolean" then result.on_boards = lot.boards end
  return idem_store(idem, fp, ttl, result)
end)

-- rw_reverse's awards, each with its leaderboards' section (see below) or nil.
local function reversed_awards(keys, argv)
  local list = {}
  local k, a = 7, 5
  while k <= #keys do
    local n = tonumber(argv[a + 7])
    list[#list + 1] = {wallet = keys[k], lots = keys[k + 1], closed = keys[k + 2], tx = argv[a],
      participant = argv[a + 1], lot_id = argv[a + 2], points = tonumber(argv[a + 3]), meta = argv[a + 4],
      pending = argv[a + 5] == "pending", spins = tonumber(argv[a + 6]),
      boards = board_section(keys, k + 3, argv, a + 8, n)}
    k, a = after_section(k, a, 3, 8, n)
  end
  return list
end

--[[ rw_reverse: a returned sale takes back what its awards earned, once per activity.
Per award: a lot still pending is cancelled (pending -> budget); otherwise its points are
taken back from available (-> budget) up to what is there, and the rest is recorded as owed
(the next earnings pay it: owed_credit). One journal entry per award that moved or owed.
The leaderboards the award raised are lowered in the same call, by what it counted there:
the caller (programs/pending.py) passes the section of the boards and periods the award (or
its lot's release) counted on, and none for a lot that counted nowhere yet; a cancelled lot
lowers them by its points, a taken-back award by all it earned (owed included).
KEYS: record (rw:{p:P}:rev:<activity>), journal, acct, cfg, due, the sale's recent awards
      (rw:{p:P}:aw:<activity>, written by rw_award_batch), then per award: wallet, lots,
      closed lots, then its leaderboards' keys (the marker and three per board; none for no
      board)
ARGV: fp, ttl, now_ms, reference (the activity), then per award: tx, participant, lot id
      (the award's transaction), points, meta, "pending" when the caller saw the lot still
      pending (else ""), the free-spin tokens the award gave, board count, then its
      leaderboards' arguments (the marker's lifetime and three per board,
      programs/leaderboard_score.lua BOARDS.grant)
The award's free-spin tokens are taken back too, as many as are left (a spin already made
stays made); the entry's `tokens` says how many, so `rebuild` restores the rest.
Answers {ok, steps: [{participant, points, cancelled, taken_back, owed, free_spins, tx}]}; a second
reversal of the activity answers the first one's result, replayed. A lot the caller saw
pending and that was released since answers "lot_moved", recording and moving nothing: the
boards it counted on are no longer the ones passed, and the caller works them out again. So
does "awards_moved" (with `missing`, their transactions), when an award of the last day is
not among those passed: it was paid but its SQL row was not written (yet) when the caller
read them, and the caller finds it in the ledger (after the record, no award of the sale
pays anything: rw_award_batch answers "activity_reversed"). ]]
redis.register_function("rw_reverse", function(keys, argv)
  local record, stream, acct, due = keys[1], keys[2], keys[3], keys[5]
  local fp, ttl, now, ref = argv[1], tonumber(argv[2]), argv[3], argv[4]
  local early = idem_check(record, fp)
  if early then return early end
  local awards = reversed_awards(keys, argv)
  local passed = {}
  for _, award in ipairs(awards) do
    if award.pending and redis.call("HEXISTS", award.lots, award.lot_id) == 0 then
      return to_json(fail("lot_moved", "a lot of the sale was released meanwhile; retry"))
    end
    passed[award.lot_id] = true
  end
  local missing = {}
  for _, tx in ipairs(redis.call("SMEMBERS", keys[6])) do
    if not passed[tx] then missing[#missing + 1] = tx end
  end
  if #missing > 0 then
    local refusal = fail("awards_moved", "an award of the sale is being recorded right now; retry")
    refusal.missing = missing
    return to_json(refusal)
  end
  local steps, lowered = {}, {}
  for _, award in ipairs(awards) do
    local wallet, lots, closed = award.wallet, award.lots, award.closed
    local tx, participant, lot_id, points, meta = award.tx, award.participant, award.lot_id, award.points, award.meta
    local step = {participant = participant, points = points, cancelled = 0, taken_back = 0, owed = 0, tx = tx,
      free_spins = 0}
    if redis.call("HEXISTS", wallet, "open") == 1 then
      if award.spins > 0 then
        step.free_spins = math.min(hget_int(wallet, "free_spins"), award.spins)
        if step.free_spins > 0 then
          hincrby(wallet, "free_spins", -step.free_spins)
          meta = with_field(meta, "tokens", int_s(-step.free_spins))
        end
      end
      local lot = pending_lot(lots, lot_id)
      if lot then
        redis.call("HDEL", lots, lot_id)
        redis.call("HSET", closed, lot_id, "cancelled:" .. tx)
        redis.call("ZREM", due, participant .. " " .. lot_id)
        hincrby(wallet, "pending", -lot.points)
        hincrby(acct, "budget", lot.points)
        step.cancelled = lot.points
        journal(stream, tx, "reversal", participant, 0, ref, meta,
          {{wallet_account(wallet, "pending"), "budget", lot.points}}, now, 0, 0)
        if award.boards then lowered[#lowered + 1] = {award.boards, lot.points} end
      else
        local w = redis.call("HMGET", wallet, "available", "owed")
        local available, owed = tonumber(w[1] or "0"), tonumber(w[2] or "0")
        local take = math.min(available, points)
        local rest = points - take
        if too_large(owed, rest) then rest = 0 end
        local legs = {}
        if take > 0 then
          hincrby(wallet, "available", -take)
          hincrby(acct, "budget", take)
          legs[1] = {wallet_account(wallet, "available"), "budget", take}
        end
        if rest > 0 then hincrby(wallet, "owed", rest) end
        step.taken_back, step.owed = take, rest
        local m = meta
        if rest > 0 then m = with_field(meta, "owed", int_s(rest)) end
        journal(stream, tx, "reversal", participant, -take, ref, m, legs, now, 0, 0)
        if award.boards then lowered[#lowered + 1] = {award.boards, points} end
      end
    end
    steps[#steps + 1] = step
  end
  local reply = idem_store(record, fp, ttl, {ok = true, steps = steps})
  redis.call("DEL", keys[6])  -- the record now refuses every later award of the sale
  -- After the record, as a grant counts (apply_grant): the boards go down by what each award
  -- counted there (never below 0).
  for _, low in ipairs(lowered) do BOARDS.grant(low[1], -low[2]) end
  return reply
end)
