--[[ Moves one board period from the old encoding to the current one, once; a no-op when the
old sorted set is gone. The old set (rw:{p:P}:lb:<board>:<period>) packed both into the
score: points * 2^21 + tie-break, exact only below 2^32 points. Shared by
leaderboard_score.lua (both are in the programs' part of the function library, this one first) and
the standings read (programs/standings.py, a script of its own).

upgrade(old, new, index): for each old member, points = floor(score / 2^21) and the rest is
its tie-break; they go to the new sorted set and index as leaderboard_score.lua writes them.
Nothing already in the new set is overwritten. ]]
local function upgrade(old, new, index)
  if redis.call("EXISTS", old) == 0 then return 0 end
  local unit = 2097152
  local entries = redis.call("ZRANGE", old, 0, -1, "WITHSCORES")
  for j = 1, #entries, 2 do
    local member, score = entries[j], tonumber(entries[j + 1])
    if redis.call("HEXISTS", index, member) == 0 then
      local points = math.floor(score / unit)
      local tie = score - points * unit
      local encoded = string.format("%07d", tie) .. ":" .. member
      redis.call("ZADD", new, string.format("%d", points), encoded)
      redis.call("HSET", index, member, encoded)
    end
  end
  redis.call("DEL", old)
  return #entries / 2
end
