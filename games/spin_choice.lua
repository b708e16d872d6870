--[[ rw-fair-1 `below` and the segment choice (FAIRNESS.md), on 32-bit words that Python
computed from the spin's HMAC stream (Redis Lua has no SHA-256). The same answers as
games.fairness.choose_segment; tests/games/test_spin_choice_lua.py holds them together,
running this text with games/spin_choice_eval.lua as a script. In production it opens the
games' part of the function library (games/keys.py LUA_PART), where rw_spin calls rw_choose.

Lua numbers are doubles, exact only up to 2^53, while w * n can reach 2^64: the product is
formed from 16-bit limbs so that no intermediate exceeds 2^49.
Everything here is local: a function library may not define globals. ]]

local TWO16 = 65536
local TWO32 = 4294967296

-- (w * n) mod 2^32 and floor(w * n / 2^32), exactly, for w < 2^32 and n <= 2^32.
-- With w = wh * 2^16 + wl and a = wh * n = ah * 2^16 + al:
--   w * n = a * 2^16 + wl * n = ah * 2^32 + (al * 2^16 + wl * n)
-- a and wl * n are below 2^48, s = al * 2^16 + wl * n below 2^49, ah below 2^32. Dividing
-- by a power of two is exact in doubles, so every floor below is exact.
local function rw_mul32(w, n)
  local wh = math.floor(w / TWO16)
  local wl = w - wh * TWO16
  local a = wh * n
  local ah = math.floor(a / TWO16)
  local al = a - ah * TWO16
  local s = al * TWO16 + wl * n
  local sh = math.floor(s / TWO32)
  return s - sh * TWO32, ah + sh
end

-- 2^32 mod n, exactly. The double quotient cannot round across an integer here (its
-- error is below 1/n), but the corrections keep the answer exact regardless.
local function rw_pow32_mod(n)
  local r = TWO32 - math.floor(TWO32 / n) * n
  if r < 0 then r = r + n end
  if r >= n then r = r - n end
  return r
end

-- below(n) on words[1..]: the answer, or nil if every word was rejected.
local function rw_below(words, n)
  local threshold = rw_pow32_mod(n)
  for i = 1, #words do
    local low, high = rw_mul32(words[i], n)
    if low >= threshold then return high end
  end
  return nil
end

local function rw_is_whole(x, most)
  return type(x) == "number" and x >= 0 and x <= most and x == math.floor(x)
end

-- words, weights: arrays of numbers. Answers index (0-based), -1 or -2 as above, or
-- nil and a message when an input is out of range.
local function rw_choose(words, weights)
  for i = 1, #words do
    if not rw_is_whole(words[i], TWO32 - 1) then
      return nil, "word " .. i .. " is not a 32-bit unsigned integer"
    end
  end
  local total = 0
  for i = 1, #weights do
    if not rw_is_whole(weights[i], TWO32) then
      return nil, "weight " .. i .. " is not a whole number in [0, 2^32]"
    end
    total = total + weights[i]
    -- Checked as it grows, so the running sum stays far below 2^53.
    if total > TWO32 then
      return nil, "weights sum to more than 2^32"
    end
  end
  if total == 0 then return -2 end
  local r = rw_below(words, total)
  if r == nil then return -1 end
  local reached = 0
  for i = 1, #weights do
    reached = reached + weights[i]
    if reached > r then return i - 1 end
  end
  return nil, "no segment reached (unreachable)"
end

