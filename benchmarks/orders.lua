-- wrk script: POST prepared order bodies (one JSON document per line of $ORDERS_FILE) to $ORDERS_PATH,
-- round robin from a different start in each thread, and print a machine-readable summary line.
local bodies = {}
for line in io.lines(os.getenv("ORDERS_FILE")) do bodies[#bodies + 1] = line end
local target = os.getenv("ORDERS_PATH") or "/create_order"
local headers = {["Content-Type"] = "application/json"}
local threads = 0

setup = function(thread)
  threads = threads + 1
  thread:set("start", threads * 7919)
end

init = function(args)
  position = start or 0
end

request = function()
  position = (position % #bodies) + 1
  return wrk.format("POST", target, headers, bodies[position])
end

done = function(summary, latency, requests)
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout))
end
