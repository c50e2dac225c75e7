#!/usr/bin/lua
--
-- pagerbridge stream connector for Centreon Broker.
--
-- Forwards host and service state changes to pagerbridge, which turns them into PagerDuty
-- events durably (docs/integrations/centreon.md). Install it as
-- /usr/share/centreon-broker/lua/pagerbridge-stream-connector.lua and add a
-- "Generic - Stream connector" output to the central broker with these parameters:
--
--   pagerbridge_url   string  required  the daemon's Centreon Broker route,
--                                       e.g. https://pagerbridge.example.com/ingest/centreon-broker
--   token             string  ""        bearer token of that route
--   centreon_url      string  ""        your Centreon web URL, sent along for links back
--   hard_only         number  1         1: forward hard states only; 0: soft ones too
--   max_buffer_size   number  10        send when this many events wait
--   max_buffer_age    number  5         ... or when the oldest has waited this many seconds
--   retry_interval    number  10        seconds between attempts while pagerbridge fails
--   timeout           number  10        HTTP timeout, seconds
--   verify_tls        number  1         0 accepts any certificate (tests only)
--   proxy             string  ""        HTTP(S) proxy URL
--   log_level         number  1         0 errors, 1 warnings, 2 info, 3 debug
--   log_path          string  /var/log/centreon-broker/pagerbridge-stream-connector.log
--
-- Broker hands every status to write(); only the changes of state are kept (a service checked
-- every minute and still CRITICAL is one event, not one a minute). Events are posted as a JSON
-- array; write() and flush() tell broker the events are done only once pagerbridge answered
-- 2xx, so while pagerbridge is unreachable broker keeps them (and its retention file) and the
-- batch is tried again.

local curl = require("cURL")

local NEB = 1
-- BBDO 2 and BBDO 3 (protobuf) elements of the neb category.
local HOST_STATUS = { [14] = true, [32] = true }
local SERVICE_STATUS = { [24] = true, [29] = true }

local settings = {}
local queue = {}
local oldest = nil
local last_failure = nil
-- "host_id:service_id" -> the state last forwarded.
local forwarded = {}

local function number_param(conf, name, default)
  local v = tonumber(conf[name])
  if v == nil then
    return default
  end
  return v
end

local function string_param(conf, name, default)
  local v = conf[name]
  if v == nil or v == "" then
    return default
  end
  return tostring(v)
end

function init(conf)
  settings.url = string_param(conf, "pagerbridge_url", nil)
  settings.token = string_param(conf, "token", "")
  settings.centreon_url = string_param(conf, "centreon_url", "")
  settings.hard_only = number_param(conf, "hard_only", 1) ~= 0
  settings.max_buffer_size = number_param(conf, "max_buffer_size", 10)
  settings.max_buffer_age = number_param(conf, "max_buffer_age", 5)
  settings.retry_interval = number_param(conf, "retry_interval", 10)
  settings.timeout = number_param(conf, "timeout", 10)
  settings.verify_tls = number_param(conf, "verify_tls", 1) ~= 0
  settings.proxy = string_param(conf, "proxy", "")
  broker_log:set_parameters(
    number_param(conf, "log_level", 1),
    string_param(conf, "log_path", "/var/log/centreon-broker/pagerbridge-stream-connector.log")
  )
  if settings.url == nil then
    broker_log:error(0, "pagerbridge: the pagerbridge_url parameter is required")
    error("pagerbridge: the pagerbridge_url parameter is required")
  end
  broker_log:info(2, "pagerbridge: sending to " .. settings.url)
end

-- Only the status events reach write().
function filter(category, element)
  return category == NEB and (HOST_STATUS[element] == true or SERVICE_STATUS[element] == true)
end

-- BBDO 2 and BBDO 3 name a few fields differently.
local function first(...)
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if v ~= nil then
      return v
    end
  end
  return nil
end

local function is_acknowledged(d)
  if d.acknowledged ~= nil then
    return d.acknowledged == true or d.acknowledged == 1
  end
  return (tonumber(d.acknowledgement_type) or 0) > 0
end

-- Whether this status is a change of state pagerbridge has not been told about yet.
local function is_news(key, d, state)
  local previous = forwarded[key]
  if previous ~= nil then
    return previous ~= state
  end
  -- First status seen since broker started: a problem is always worth (re)sending, it merges
  -- into the open incident; an OK is only news if it changed at this very check.
  if state ~= 0 then
    return true
  end
  local changed = tonumber(first(d.last_hard_state_change, d.last_state_change)) or 0
  local checked = tonumber(d.last_check) or 0
  return changed > 0 and changed >= checked
end

local function to_event(d)
  local is_service = SERVICE_STATUS[d.element] == true
  local state = tonumber(first(d.state, d.current_state))
  if d.host_id == nil or state == nil then
    return nil
  end
  local state_type = tonumber(d.state_type) or 1
  if settings.hard_only and state_type ~= 1 then
    return nil
  end
  local key = tostring(d.host_id) .. ":" .. tostring(is_service and d.service_id or 0)
  if not is_news(key, d, state) then
    return nil
  end
  local event = {
    kind = is_service and "service" or "host",
    host_id = d.host_id,
    host_name = broker_cache:get_hostname(d.host_id) or nil,
    state = state,
    state_type = state_type,
    output = first(d.output, ""),
    long_output = d.long_output,
    perfdata = first(d.perfdata, d.perf_data),
    acknowledged = is_acknowledged(d),
    scheduled_downtime_depth = tonumber(first(d.scheduled_downtime_depth, d.downtime_depth)) or 0,
    last_state_change = d.last_state_change,
    last_hard_state_change = d.last_hard_state_change,
    last_check = d.last_check,
    check_attempt = first(d.check_attempt, d.current_check_attempt),
    max_check_attempts = d.max_check_attempts,
  }
  if is_service then
    event.service_id = d.service_id
    event.service_description = broker_cache:get_service_description(d.host_id, d.service_id) or nil
  end
  if settings.centreon_url ~= "" then
    event.centreon_url = settings.centreon_url
  end
  return key, state, event
end

local function post(batch)
  local body = broker.json_encode(batch)
  local chunks = {}
  local headers = { "Content-Type: application/json" }
  if settings.token ~= "" then
    headers[#headers + 1] = "Authorization: Bearer " .. settings.token
  end
  local request = curl.easy()
    :setopt_url(settings.url)
    :setopt_writefunction(function(chunk)
      chunks[#chunks + 1] = tostring(chunk)
      return true
    end)
    :setopt(curl.OPT_TIMEOUT, settings.timeout)
    :setopt(curl.OPT_HTTPHEADER, headers)
    :setopt(curl.OPT_SSL_VERIFYPEER, settings.verify_tls and 1 or 0)
    :setopt(curl.OPT_SSL_VERIFYHOST, settings.verify_tls and 2 or 0)
  if settings.proxy ~= "" then
    request:setopt(curl.OPT_PROXY, settings.proxy)
  end
  request:setopt_postfields(body)
  local ok, err = pcall(request.perform, request)
  if not ok then
    request:close()
    return false, "request failed: " .. tostring(err)
  end
  local code = request:getinfo(curl.INFO_RESPONSE_CODE)
  request:close()
  if code < 200 or code >= 300 then
    return false, "pagerbridge answered HTTP " .. tostring(code) .. ": " .. string.sub(table.concat(chunks), 1, 500)
  end
  return true
end

-- Sends what waits; true when nothing is left waiting.
local function send(force)
  if #queue == 0 then
    return true
  end
  local now = os.time()
  if not force and #queue < settings.max_buffer_size and now - oldest < settings.max_buffer_age then
    return false
  end
  if last_failure ~= nil and now - last_failure < settings.retry_interval then
    return false
  end
  local ok, err = post(queue)
  if not ok then
    last_failure = now
    broker_log:error(0, "pagerbridge: " .. #queue .. " events wait: " .. err)
    return false
  end
  broker_log:info(2, "pagerbridge: sent " .. #queue .. " events")
  queue = {}
  oldest = nil
  last_failure = nil
  return true
end

function write(d)
  if d.category == NEB and (HOST_STATUS[d.element] or SERVICE_STATUS[d.element]) then
    local key, state, event = to_event(d)
    if key ~= nil then
      -- Queued is as good as sent: the queue is kept until pagerbridge has it, so the next
      -- check of an unchanged state must not queue it again.
      forwarded[key] = state
      queue[#queue + 1] = event
      if oldest == nil then
        oldest = os.time()
      end
    end
  end
  return send(false)
end

function flush()
  return send(true)
end
