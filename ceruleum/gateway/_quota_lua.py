"""The Lua scripts behind RedisQuota: each runs atomically inside Redis, on Redis's own clock.

Bucket state is one hash per scope: {level_requests, level_tokens, ts (microseconds)}.
An absent hash is a full bucket, so a key may expire once it has refilled.
Levels go back to Python as strings: Redis truncates Lua numbers to integers.
"""

_COMMON = """
-- Redis < 5 needs this before TIME in a script that writes; later versions ignore it.
if redis.replicate_commands then redis.replicate_commands() end

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function levels(key, rpm, tpm, now)
  local h = redis.call('HMGET', key, 'level_requests', 'level_tokens', 'ts')
  if not h[3] then return rpm, tpm end
  local dt = math.max(0, now - tonumber(h[3])) / 1000000
  return math.min(rpm, tonumber(h[1]) + dt * rpm / 60),
         math.min(tpm, tonumber(h[2]) + dt * tpm / 60)
end

local function full_in_s(level, cap)
  if level >= cap or cap <= 0 then return 0 end
  return (cap - level) * 60 / cap
end

local function store(key, r, t, rpm, tpm, now, idle_ms)
  redis.call('HSET', key, 'level_requests', string.format('%.17g', r),
             'level_tokens', string.format('%.17g', t), 'ts', string.format('%d', now))
  -- Live until full again, then idle_ms more.
  local full_ms = math.max(full_in_s(r, rpm), full_in_s(t, tpm)) * 1000
  redis.call('PEXPIRE', key, math.ceil(full_ms + idle_ms))
end
"""

# KEYS: a bucket per scope. ARGV: tokens, idle_ms, then rpm, tpm per scope.
# Returns {admitted (1|0), requests_1, tokens_1, ...}: levels after the charge, or as they
# stand when refused (a refusal writes nothing).
ACQUIRE = (
    _COMMON
    + """
local tokens, idle_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_us()
local reqs, toks = {}, {}
local ok = 1
for i, key in ipairs(KEYS) do
  reqs[i], toks[i] = levels(key, tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i]), now)
  if reqs[i] < 1 or toks[i] < tokens then ok = 0 end
end
local out = {ok}
for i, key in ipairs(KEYS) do
  if ok == 1 then
    reqs[i], toks[i] = reqs[i] - 1, toks[i] - tokens
    store(key, reqs[i], toks[i], tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i]), now, idle_ms)
  end
  out[#out + 1] = string.format('%.17g', reqs[i])
  out[#out + 1] = string.format('%.17g', toks[i])
end
return out
"""
)

# KEYS: the charged buckets. ARGV: refund (tokens; negative charges more), idle_ms, then
# rpm, tpm per scope. A refund never lifts a bucket above its capacity.
SETTLE = (
    _COMMON
    + """
local refund, idle_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_us()
for i, key in ipairs(KEYS) do
  local rpm, tpm = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  local r, t = levels(key, rpm, tpm, now)
  store(key, r, math.min(tpm, t + refund), rpm, tpm, now, idle_ms)
end
return 1
"""
)
