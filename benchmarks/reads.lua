-- wrk script: GET the paths of $READS_FILE (one a line) round robin, each connection a closed loop that
-- sends its next read as soon as an answer comes back (a storm of viewers), and print a summary line.
local paths = {}
for line in io.lines(os.getenv("READS_FILE")) do
  if #line > 0 then paths[#paths + 1] = line end
end
local threads = 0

setup = function(thread)
  threads = threads + 1
  thread:set("start", threads * 3)
end

init = function(args)
  position = start or 0
end

request = function()
  position = (position % #paths) + 1
  return wrk.format("GET", paths[position])
end

done = function(summary, latency, requests)
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout))
end
