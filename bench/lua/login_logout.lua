-- SOAP Login followed by Logout with the cookie the Login set, over and over.
-- Run with one connection per thread (-t N -c N): the Lua state is per thread, and the
-- cookie of a Login must go with the Logout on the same connection.
--   BENCH_LOGIN_FILE, BENCH_LOGOUT_FILE   SOAP bodies
--   BENCH_HEADERS                         extra headers (content type, user agent)
-- Counters: login_ok, login_bad, logout_ok, logout_bad, no_cookie; and at the end
-- "open" sessions (a Login answered but its Logout not) and "cut" Logins (sent, not
-- answered when wrk stopped), which the harness then resolves.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local common = require("common")

local login_body = common.read(os.getenv("BENCH_LOGIN_FILE"))
local logout_body = common.read(os.getenv("BENCH_LOGOUT_FILE"))
local base = common.headers()

login_ok, login_bad, logout_ok, logout_bad, no_cookie = 0, 0, 0, 0, 0
cookie = ""      -- the live session's cookie value ("" when none)
pending = ""     -- "login" or "logout": what was sent and not yet answered

-- Both requests are built once: per request the script only splices the cookie in, so
-- that the load generator spends as little as it can between a response and the next
-- request (wrk's own cost is paid by every server alike, but it shares the 2 cores).
local login_req, logout_pre, logout_post
local MARK = "\0VSESS-COOKIE\0"

-- wrk calls init() once per thread, after it has set the Host header.
function init(args)
   local h = {}
   for k, v in pairs(base) do h[k] = v end
   login_req = wrk.format("POST", "/sdk", h, login_body)
   h = { Cookie = "vmware_soap_session=" .. MARK }
   for k, v in pairs(base) do h[k] = v end
   local tpl = wrk.format("POST", "/sdk", h, logout_body)
   local at = assert(tpl:find(MARK, 1, true), "cookie mark missing")
   logout_pre, logout_post = tpl:sub(1, at - 1), tpl:sub(at + #MARK)
end

function request()
   if cookie ~= "" then
      pending = "logout"
      return logout_pre .. cookie .. logout_post
   end
   pending = "login"
   return login_req
end

-- hyper writes header names in lower case, Go's net/http in canonical case.
local function set_cookie(headers)
   local v = headers["set-cookie"] or headers["Set-Cookie"]
   if not v then
      for k, x in pairs(headers) do
         if k:lower() == "set-cookie" then v = x break end
      end
   end
   if not v then return nil end
   return v:match('vmware_soap_session=("[^"]*")') or v:match("vmware_soap_session=([^;%s]+)")
end

function response(status, headers, body)
   if pending == "login" then
      if status == 200 then
         local c = set_cookie(headers)
         if c then
            cookie = c
            login_ok = login_ok + 1
         else
            no_cookie = no_cookie + 1
         end
      else
         login_bad = login_bad + 1
      end
   elseif pending == "logout" then
      if status == 200 then logout_ok = logout_ok + 1 else logout_bad = logout_bad + 1 end
      cookie = ""
   end
   pending = ""
end

setup = common.setup

function done(summary, latency, requests)
   -- Sessions the harness must resolve: cookies still live, and Logins cut off by the deadline.
   local open, cut = {}, 0
   for _, t in ipairs(common.threads) do
      local c = t:get("cookie")
      if c and c ~= "" then table.insert(open, c) end
      if t:get("pending") == "login" then cut = cut + 1 end
   end
   io.write("BENCHOPEN " .. table.concat(open, " ") .. "\n")
   io.write("BENCHCUT " .. cut .. "\n")
   common.done(summary, latency, { "login_ok", "login_bad", "logout_ok", "logout_bad", "no_cookie" })
end
