-- wrk script: every request is a purchase by a new user.
--   wrk -t2 -c1000 -d10s -s tools/loadgen/wrk/purchase.lua http://127.0.0.1:9000/sales/<sale>/purchases
-- Users are wrk-<thread>-<n>, so threads never share a user. At the end it prints the answers per
-- status; check the stored state with `flash-sale-admin show-sale` and `buyers`.

local threads = {}
local counter = 1

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  n = 0
  statuses = {}
  retry_after = 0
end

function request()
  n = n + 1
  local body = string.format('{"userId":"wrk-%d-%d"}', id, n)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 503 and (headers["Retry-After"] or headers["retry-after"]) then
    retry_after = retry_after + 1
  end
end

function done(summary, latency, requests)
  local total = {}
  local with_retry_after = 0
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for status, count in pairs(s) do
      total[status] = (total[status] or 0) + count
    end
    with_retry_after = with_retry_after + thread:get("retry_after")
  end
  local keys = {}
  for status in pairs(total) do table.insert(keys, status) end
  table.sort(keys)
  for _, status in ipairs(keys) do
    io.write(string.format("status %d: %d\n", status, total[status]))
  end
  io.write(string.format("503 with Retry-After: %d\n", with_retry_after))
  io.write(string.format("p50 %.1f ms, p95 %.1f ms, p99 %.1f ms\n",
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
