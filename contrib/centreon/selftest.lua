#!/usr/bin/lua
--
-- Runs pagerbridge-stream-connector.lua outside Centreon Broker, the way broker would: stand-ins
-- for broker (json_encode), broker_log, broker_cache and the cURL binding (which records the
-- requests instead of sending them), then a sequence of neb status events. Prints the requests
-- as a JSON array.
--
--   lua5.3 contrib/centreon/selftest.lua [http_status]
--
-- The events are made from the properties Centreon documents for NEB::ServiceStatus and
-- NEB::HostStatus (BBDO 2) and their protobuf versions (BBDO 3):
-- https://docs.centreon.com/docs/developer/developer-broker-mapping/

local dir = arg[0]:match("^(.*)/[^/]*$") or "."
local http_status = tonumber(arg[1]) or 202

local function encode(v)
  local t = type(v)
  if t == "nil" then
    return "null"
  elseif t == "boolean" then
    return v and "true" or "false"
  elseif t == "number" then
    if math.type(v) == "integer" then
      return string.format("%d", v)
    end
    return string.format("%.14g", v)
  elseif t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c)
      local named = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
      return named[c] or string.format("\\u%04x", c:byte())
    end) .. '"'
  elseif t == "table" then
    if #v > 0 or next(v) == nil then
      local items = {}
      for i = 1, #v do
        items[i] = encode(v[i])
      end
      return "[" .. table.concat(items, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do
      keys[#keys + 1] = k
    end
    table.sort(keys)
    local items = {}
    for _, k in ipairs(keys) do
      items[#items + 1] = encode(tostring(k)) .. ":" .. encode(v[k])
    end
    return "{" .. table.concat(items, ",") .. "}"
  end
  error("cannot encode " .. t)
end

broker = { json_encode = encode }
broker_log = {
  set_parameters = function() end,
  error = function(_, _, msg) io.stderr:write("error: ", msg, "\n") end,
  warning = function() end,
  info = function() end,
}
broker_cache = {
  get_hostname = function(_, host_id)
    return ({ [12] = "db1", [13] = "web1" })[host_id]
  end,
  get_service_description = function(_, host_id, service_id)
    return ({ ["12:34"] = "Disk /", ["12:35"] = "Memory", ["13:40"] = "HTTP" })[host_id .. ":" .. service_id]
  end,
}

local requests = {}
package.preload["cURL"] = function()
  local curl = { OPT_TIMEOUT = "timeout", OPT_HTTPHEADER = "httpheader", OPT_SSL_VERIFYPEER = "verifypeer",
    OPT_SSL_VERIFYHOST = "verifyhost", OPT_PROXY = "proxy", INFO_RESPONSE_CODE = "response_code" }
  function curl.easy()
    local r = { opts = {} }
    function r:setopt_url(u) self.opts.url = u; return self end
    function r:setopt_writefunction(f) self.write = f; return self end
    function r:setopt(k, v) self.opts[k] = v; return self end
    function r:setopt_postfields(b) self.body = b; return self end
    function r:perform()
      requests[#requests + 1] = { url = self.opts.url, headers = self.opts.httpheader, body = self.body }
      self.write(http_status < 300 and '{"status":"accepted"}' or '{"error":"test"}')
      return self
    end
    function r:getinfo(k) return k == "response_code" and http_status or nil end
    function r:close() end
    return r
  end
  return curl
end

dofile(dir .. "/pagerbridge-stream-connector.lua")

init({ pagerbridge_url = "http://127.0.0.1:8080/ingest/centreon-broker", token = "s3cret",
  centreon_url = "https://centreon.example.com", max_buffer_size = 3, max_buffer_age = 60 })

local t0 = 1795248600
local function service(fields)
  local d = { category = 1, element = 24, host_id = 12, service_id = 34, state_type = 1,
    acknowledged = false, scheduled_downtime_depth = 0, check_attempt = 1, max_check_attempts = 3,
    last_state_change = t0 - 86400, last_hard_state_change = t0 - 86400 }
  for k, v in pairs(fields) do d[k] = v end
  return d
end
local function host(fields)
  local d = { category = 1, element = 14, host_id = 12, state_type = 1, acknowledged = false,
    scheduled_downtime_depth = 0, check_attempt = 1, max_check_attempts = 3,
    last_state_change = t0 - 86400, last_hard_state_change = t0 - 86400 }
  for k, v in pairs(fields) do d[k] = v end
  return d
end

local results = {}
local function feed(d)
  results[#results + 1] = write(d)
end

-- OK since yesterday: not news.
feed(service({ state = 0, last_check = t0, output = "DISK OK - free space: / 600 MB (60% inode=80%)",
  perfdata = "/=400MB;800;900;0;1000" }))
-- A soft CRITICAL: broker is still re-checking.
feed(service({ state = 2, state_type = 0, last_check = t0 + 60, last_state_change = t0 + 60,
  output = "DISK CRITICAL - free space: / 100 MB (5% inode=80%)", perfdata = "/=900MB;800;900;0;1000" }))
-- Hard CRITICAL: forwarded.
feed(service({ state = 2, last_check = t0 + 120, last_state_change = t0 + 60, last_hard_state_change = t0 + 120,
  check_attempt = 3, output = "DISK CRITICAL - free space: / 100 MB (5% inode=80%)\nlong output line",
  perfdata = "/=900MB;800;900;0;1000" }))
-- Still CRITICAL at the next check: not news.
feed(service({ state = 2, last_check = t0 + 180, last_state_change = t0 + 60, last_hard_state_change = t0 + 120,
  check_attempt = 3, output = "DISK CRITICAL - free space: / 95 MB (5% inode=80%)", perfdata = "/=905MB;800;900;0;1000" }))
-- BBDO 3: a protobuf host status, already acknowledged in Centreon.
local pb_host = host({ element = 32, acknowledgement_type = 1, state = 1, last_check = t0 + 200,
  last_state_change = t0 + 200, last_hard_state_change = t0 + 200,
  output = "CRITICAL - 10.0.0.5: rta nan, lost 100%", perfdata = "pl=100%;40;80;0" })
pb_host.acknowledged = nil
feed(pb_host)
-- A WARNING during a scheduled downtime: the batch of three goes out here.
feed(service({ service_id = 35, state = 1, scheduled_downtime_depth = 1, last_check = t0 + 210,
  last_state_change = t0 + 210, last_hard_state_change = t0 + 210,
  output = "MEMORY WARNING - 91% used", perfdata = "used=91%;90;95;0;100" }))
-- Recoveries.
feed(service({ state = 0, last_check = t0 + 300, last_state_change = t0 + 300, last_hard_state_change = t0 + 300,
  output = "DISK OK - free space: / 600 MB (60% inode=80%)", perfdata = "/=400MB;800;900;0;1000" }))
feed(host({ state = 0, last_check = t0 + 310, last_state_change = t0 + 310, last_hard_state_change = t0 + 310,
  output = "OK - 10.0.0.5: rta 0.6ms, lost 0%", perfdata = "rta=0.6ms;100;200;0 pl=0%;40;80;0" }))
-- A host broker's cache does not know (yet).
feed(service({ host_id = 99, service_id = 7, state = 3, last_check = t0 + 320, last_state_change = t0 + 320,
  last_hard_state_change = t0 + 320, output = "UNKNOWN - plugin timed out" }))
results[#results + 1] = flush()

local out = {}
for i, r in ipairs(requests) do
  out[i] = '{"url":' .. encode(r.url) .. ',"headers":' .. encode(r.headers) .. ',"body":' .. r.body .. '}'
end
print('{"write_results":' .. encode(results) .. ',"requests":[' .. table.concat(out, ",") .. ']}')
