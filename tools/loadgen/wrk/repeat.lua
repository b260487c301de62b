-- wrk script: purchases by a fixed crowd of users in turn (5,000 unless USERS says otherwise), so
-- after the first moments nearly every attempt is a repeat by someone already refused or served.
--   wrk -t2 -c64 -d10s -s tools/loadgen/wrk/repeat.lua http://127.0.0.1:9000/sales/<sale>/purchases
-- The same body fits the Fastify + Redis peer (POST /api/sale/purchase). Users are u-1 … u-N;
-- with two threads (-t2), thread k starts at user 1 + (k - 1) * N / 2 and walks the crowd round and round. At the end
-- it prints the answers per status.

local users = tonumber(os.getenv("USERS") or "5000")
local threads = {}
local counter = 1

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  n = math.floor((id - 1) * users / 2)
  statuses = {}
end

function request()
  n = n % users + 1
  local body = string.format('{"userId":"u-%d"}', n)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + count
    end
  end
  local keys = {}
  for status in pairs(total) do table.insert(keys, status) end
  table.sort(keys)
  for _, status in ipairs(keys) do
    io.write(string.format("status %d: %d\n", status, total[status]))
  end
  io.write(string.format("requests %d, p50 %.1f ms, p99 %.1f ms\n", summary.requests,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
