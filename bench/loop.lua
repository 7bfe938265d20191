-- wrk script: replay pre-signed device requests, one connection per thread, so that each
-- device has one request in flight at a time (as a real device does).
-- Each thread reads <dir>/thread-<n>.req: records of "<header-bytes> <body-bytes>\n" followed
-- by the Mdm-Signature value and the body. When a thread's records run out it starts over at
-- its idle records (<dir>/thread-<n>.idle, same format), which stay valid forever.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local function load(path, content_type)
  local records = {}
  local f = io.open(path, "rb")
  if f == nil then return records end
  while true do
    local line = f:read("*l")
    if line == nil then break end
    local slen, blen = line:match("^(%d+) (%d+)$")
    local signature = f:read(tonumber(slen))
    local body = f:read(tonumber(blen))
    local headers = {["Content-Type"] = content_type}
    if #signature > 0 then headers["Mdm-Signature"] = signature end
    table.insert(records, wrk.format("PUT", wrk.path, headers, body))
  end
  f:close()
  return records
end

function init(args)
  local dir = args[1]
  local content_type = args[2] or "application/x-apple-aspen-mdm; charset=UTF-8"
  requests = load(dir .. "/thread-" .. id .. ".req", content_type)
  idles = load(dir .. "/thread-" .. id .. ".idle", content_type)
  position = 0
  listed = #requests
  idle_position = 0
  commands, empty, bad = 0, 0, 0
end

function request()
  position = position + 1
  if position <= #requests then return requests[position] end
  idle_position = idle_position % #idles + 1
  return idles[idle_position]
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
  elseif #body > 0 then
    commands = commands + 1
  else
    empty = empty + 1
  end
end

function done(summary, latency, requests_)
  local c, e, b, replayed = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    c = c + thread:get("commands")
    e = e + thread:get("empty")
    b = b + thread:get("bad")
    replayed = replayed + math.min(thread:get("position"), thread:get("listed"))
  end
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "errors_connect": %d, "errors_read": %d, ' ..
    '"errors_timeout": %d, "errors_status": %d, "commands": %d, "empty": %d, "bad": %d, ' ..
    '"replayed": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.timeout, summary.errors.status, c, e, b, replayed,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
