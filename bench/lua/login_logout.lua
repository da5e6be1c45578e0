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

local function with(extra)
   local h = {}
   for k, v in pairs(base) do h[k] = v end
   for k, v in pairs(extra or {}) do h[k] = v end
   return h
end

function request()
   if cookie ~= "" then
      pending = "logout"
      return wrk.format("POST", "/sdk", with({ Cookie = "vmware_soap_session=" .. cookie }), logout_body)
   end
   pending = "login"
   return wrk.format("POST", "/sdk", with(), login_body)
end

local function set_cookie(headers)
   for k, v in pairs(headers) do
      if k:lower() == "set-cookie" then
         local c = v:match('vmware_soap_session=("[^"]*")') or v:match("vmware_soap_session=([^;%s]+)")
         if c then return c end
      end
   end
   return nil
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
