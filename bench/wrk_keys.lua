-- wrk_keys.lua — keyed API requests for bench/follow_bench.sh and tests/integration/test_run_*.sh
--
-- usage: wrk -tT -cC -dD -s wrk_keys.lua URL -- KEYS_FILE [PREFIX] [DELAY_MS] [COUNT] [DONE_FILE] [ANON_PCT]
--   KEYS_FILE  one raw key per line; each request picks one uniformly (so every key is used)
--   PREFIX     path prefix (default /api/k/); the path is PREFIX<thread>/<seq>: every request
--              of one wrk run has a path of its own, so a stored call can be matched to
--              exactly one line of nginx's log (duplicates and losses are visible per call)
--   DELAY_MS   pause before each request on a connection (default 0: as fast as possible);
--              the rate is then about connections × 1000 / (DELAY_MS + latency)
--   COUNT      responses after which a thread stops (default 0: run for all of -d)
--   DONE_FILE  created by a thread that reached COUNT (wrk's main thread sleeps for all of
--              -d: the caller watches for this file and sends wrk SIGINT)
--   ANON_PCT   percent of requests sent without a key (default 5)
-- Keys go in X-API-Key, as nginx's `keyed` log_format records them ("$http_x_api_key").

local nthreads = 0

function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
end

local keys = {}
local prefix, delay_ms, limit, done_file, anon = "/api/k/", 0, 0, nil, 5
local seq, done = 0, 0
local uas = { "python-requests/2.31.0", "Go-http-client/1.1", "curl/8.5.0", "okhttp/4.12.0" }

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then keys[#keys + 1] = line end
  end
  prefix = args[2] or prefix
  delay_ms = tonumber(args[3] or "0")
  limit = tonumber(args[4] or "0")
  done_file = args[5]
  if done_file == "" then done_file = nil end
  anon = tonumber(args[6] or "5")
  math.randomseed(os.time() * 1000 + (tid or 0))
  if delay_ms <= 0 then delay = nil end -- wrk looks for delay() after init()
end

function delay()
  return delay_ms
end

request = function()
  seq = seq + 1
  local path = prefix .. (tid or 0) .. "/" .. seq
  local ua = uas[(seq % #uas) + 1]
  if math.random(100) <= anon then
    return wrk.format("GET", path, { ["User-Agent"] = ua })
  end
  return wrk.format("GET", path, { ["X-API-Key"] = keys[math.random(#keys)], ["User-Agent"] = ua })
end

response = function(status, headers, body)
  done = done + 1
  if limit > 0 and done == limit then
    if done_file then
      local f = io.open(done_file, "w")
      if f then f:write(done, "\n"); f:close() end
    end
    wrk.thread:stop()
  end
end
