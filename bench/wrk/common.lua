-- Shared part of the wrk scripts of bench.http_paths (loaded by queue.lua, filing.lua, coverage.lua).
--
-- Requests come from the file named by BENCH_REQUESTS, one per line, fields separated by a tab:
--   METHOD <tab> PATH <tab> TOKEN [<tab> JSON BODY]
-- Each wrk thread takes the lines whose number is its own modulo the thread count, so with
-- BENCH_ONCE=1 no two requests of a run send the same line (a filing's 身份证号 is used once).
-- done() prints one line "BENCH_JSON {...}" with the counts and the latency percentiles (ms), which
-- bench.http_paths.parse_wrk_output reads.

local M = {}
local threads = {}
local counter = 0

function M.setup(thread)
  thread:set("index", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local function split(line)
  local fields = {}
  for field in (line .. "\t"):gmatch("([^\t]*)\t") do
    table.insert(fields, field)
  end
  return fields
end

function M.load(path, index, count)
  local requests = {}
  local number = 0
  for line in io.lines(path) do
    if line ~= "" then
      if number % count == index then
        local f = split(line)
        local headers = { ["Authorization"] = "Token " .. f[3], ["Host"] = "localhost" }
        local body = nil
        if f[4] ~= nil and f[4] ~= "" then
          body = f[4]
          headers["Content-Type"] = "application/json"
        end
        table.insert(requests, wrk.format(f[1], f[2], headers, body))
      end
      number = number + 1
    end
  end
  return requests
end

-- Install init/request/done for one script. ``once``: never repeat a line (when the lines run out the
-- thread repeats its last one and the run counts the answers as errors: size the file for the run).
function M.install(once)
  local requests, position, sent = {}, 0, 0
  function init(args)
    local count = tonumber(os.getenv("BENCH_THREADS") or "1")
    requests = M.load(os.getenv("BENCH_REQUESTS"), index or 0, count)
    if #requests == 0 then
      error("no requests for thread " .. tostring(index) .. " in " .. tostring(os.getenv("BENCH_REQUESTS")))
    end
  end
  function request()
    position = position + 1
    if position > #requests then
      if once then
        position = #requests
      else
        position = 1
      end
    end
    sent = sent + 1
    return requests[position]
  end
  function setup(thread)
    M.setup(thread)
  end
  function done(summary, latency, requests_)
    local e = summary.errors
    io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, "read_errors": %d, '
        .. '"write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, '
        .. '"mean_us": %.1f, "max_us": %d}\n',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean, latency.max))
  end
end

return M
