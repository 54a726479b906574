-- wrk script for the campus benchmark. MODE=profile: PUT /users/<id>/ by user after user (each
-- their own profile: a sealed name, a Require on their key, an append); MODE=read: GET
-- /organizations/?limit=20 (a page of organisations with owner and block) as user after user;
-- MODE=follow: POST /users/followed_organizations/, user after user, each following the
-- organisations 1..ORGS in turn (a pair is never asked twice while there are fewer requests
-- than users times ORGS).
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  mode = os.getenv("MODE")
  step = tonumber(os.getenv("THREADS") or "2")
  users, tokens = {}, {}
  for line in io.lines(os.getenv("TOKENS")) do
    local id, token = line:match("([^\t]+)\t(.+)")
    users[#users + 1] = id
    tokens[#tokens + 1] = token
  end
  orgs = tonumber(os.getenv("ORGS") or "1")
  -- TID_BASE: where this wrk's threads start when two share one sequence (two servers).
  n = tid + tonumber(os.getenv("TID_BASE") or "0")
end

function request()
  local i = n
  n = n + step
  local u = (i % #tokens) + 1
  local auth = {["Authorization"] = "JWT " .. tokens[u], ["Content-Type"] = "application/json"}
  if mode == "profile" then
    local body = string.format('{"name":"name %d","sign":"sign %d"}', i, i)
    return wrk.format("PUT", "/users/" .. users[u] .. "/", auth, body)
  elseif mode == "follow" then
    local org = (math.floor(i / #tokens) % orgs) + 1
    local body = string.format('{"org":%d,"person":%s}', org, users[u])
    return wrk.format("POST", "/users/followed_organizations/", auth, body)
  else
    return wrk.format("GET", "/organizations/?limit=20", auth)
  end
end

function done(summary, latency, requests)
  io.write(string.format("RESULT %s rps=%.0f p50=%.1fms p99=%.1fms non2xx=%d errors=%d\n",
    mode, summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
