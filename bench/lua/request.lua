-- One fixed request, repeated on every connection (keep-alive).
--   BENCH_METHOD     GET or POST
--   BENCH_PATH       e.g. /sdk
--   BENCH_BODY_FILE  request body (optional)
--   BENCH_HEADERS    "Name: value" lines (cookies, session headers, content type)
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local common = require("common")

wrk.method = os.getenv("BENCH_METHOD") or "GET"
wrk.path = os.getenv("BENCH_PATH") or "/"
local body_file = os.getenv("BENCH_BODY_FILE")
if body_file and body_file ~= "" then wrk.body = common.read(body_file) end
for k, v in pairs(common.headers()) do wrk.headers[k] = v end

setup = common.setup

function done(summary, latency, requests)
   common.done(summary, latency, {})
end
