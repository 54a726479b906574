-- wrk script for the write benchmark. MODE=apply: POST /absence/ for member after member (a
-- date per member and ROUND, so none is refused); MODE=process: PUT /manager/<id>/ on the
-- absences 1..IDS (or those listed in IDS_FILE, one id a line: ids may have gaps) with the
-- manager's token; MODE=change: PUT /absence/<id>/ is not used.
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  mode = os.getenv("MODE")
  step = tonumber(os.getenv("THREADS") or "2")
  round = tonumber(os.getenv("ROUND") or "0")
  ids = tonumber(os.getenv("IDS") or "1")
  listed = {}
  local file = os.getenv("IDS_FILE")
  if file and file ~= "" then
    for line in io.lines(file) do listed[#listed + 1] = line end
  end
  manager = os.getenv("MANAGER_TOKEN")
  tokens = {}
  for line in io.lines(os.getenv("TOKENS")) do
    local name, token = line:match("([^\t]+)\t(.+)")
    if name ~= "boss" then tokens[#tokens + 1] = token end
  end
  -- TID_BASE: where this wrk's threads start when two share one sequence (two servers).
  n = tid + tonumber(os.getenv("TID_BASE") or "0")
end

function request()
  local i = n
  n = n + step
  if mode == "apply" then
    local member = (i % #tokens) + 1
    local k = round * 1000 + math.floor(i / #tokens)
    local date = string.format("%04d-%02d-%02d", 2030 + math.floor(k / 336), 1 + math.floor(k / 28) % 12, 1 + k % 28)
    local body = string.format('{"reason":"bench","time_absence":"%s","type":"全体排练"}', date)
    return wrk.format("POST", "/absence/", {["Authorization"] = "JWT " .. tokens[member], ["Content-Type"] = "application/json"}, body)
  else
    local id = (#listed > 0) and listed[(i % #listed) + 1] or ((i % ids) + 1)
    local body = string.format('{"result":"r%d","permission":%s}', i, (i % 2 == 0) and "true" or "false")
    return wrk.format("PUT", "/manager/" .. id .. "/", {["Authorization"] = "JWT " .. manager, ["Content-Type"] = "application/json"}, body)
  end
end

function done(summary, latency, requests)
  io.write(string.format("RESULT %s rps=%.0f p50=%.1fms p99=%.1fms non2xx=%d errors=%d\n",
    mode, summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
