-- Shared by the bench/run wrk scripts: read request parts from the environment and print
-- one machine-readable result line ("BENCHJSON {...}") when wrk is done.
local M = {}

function M.read(path)
   local f = assert(io.open(path, "rb"), "cannot open " .. tostring(path))
   local s = f:read("*a")
   f:close()
   return s
end

-- BENCH_HEADERS: "Name: value" lines.
function M.headers()
   local h = {}
   for line in (os.getenv("BENCH_HEADERS") or ""):gmatch("[^\n]+") do
      local k, v = line:match("^([^:]+):%s*(.*)$")
      if k then h[k] = v end
   end
   return h
end

local threads = {}

function M.setup(thread)
   table.insert(threads, thread)
end

-- Prints wrk's totals, latency percentiles and the named per-thread counters as JSON.
function M.done(summary, latency, counters)
   local e = summary.errors
   local parts = {
      string.format('"requests":%d', summary.requests),
      string.format('"duration_us":%d', summary.duration),
      string.format('"bytes":%d', summary.bytes),
      string.format('"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}',
         e.connect, e.read, e.write, e.status, e.timeout),
      string.format('"latency_us":{"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d}',
         latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
         latency:percentile(99)),
   }
   for _, name in ipairs(counters or {}) do
      local total = 0
      for _, t in ipairs(threads) do total = total + (tonumber(t:get(name)) or 0) end
      table.insert(parts, string.format('"%s":%d', name, total))
   end
   io.write("BENCHJSON {" .. table.concat(parts, ",") .. "}\n")
end

M.threads = threads
return M
