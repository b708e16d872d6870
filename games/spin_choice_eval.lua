--[[ A script entry point over spin_choice.lua, for the tests (EVAL of both texts joined).

KEYS     none
ARGV[1]  k, the number of words given
ARGV[2..k+1]   the words, decimal, each in [0, 2^32 - 1], in stream order
ARGV[k+2..]    the segment weights, decimal whole numbers >= 0, in segment order, sum <= 2^32
Answers  the 0-based segment index; -1 if the words ran out before one was accepted (call
         again with more words); -2 if every weight is 0 (the spin is refused).
         An error reply if an argument is malformed. ]]

-- Digits only: tonumber would also take hex, exponents and spaces.
local function rw_decimal(text)
  if type(text) ~= "string" or not string.match(text, "^%d+$") then return nil end
  return tonumber(text)
end

local count = rw_decimal(ARGV[1])
if count == nil or count > #ARGV - 1 then
  return redis.error_reply("ARGV[1] must be the number of words that follow")
end
local words, weights = {}, {}
for i = 2, #ARGV do
  local value = rw_decimal(ARGV[i])
  if value == nil then
    return redis.error_reply("ARGV[" .. i .. "] is not a decimal whole number")
  end
  if i <= count + 1 then
    words[#words + 1] = value
  else
    weights[#weights + 1] = value
  end
end
local index, problem = rw_choose(words, weights)
if index == nil then return redis.error_reply(problem) end
return index
