-- wrk script for bench.run. Arguments after `--`:
--   get  <targets file>                  each request: a random line
--                                        "<path> <token> [etag|-] [prefer]" (an etag is
--                                        sent as If-None-Match, a prefer as Prefer)
--   sync <pool file> <run id> <items>    each request: POST a new batch of <items> pieces
--                                        (fresh natural keys) under a random pool line
--                                        "<tenant> <project> <component> <assembly> <token>"
--   resend <pool file> <slots> <items>   each request: POST one of <slots> fixed batches per
--                                        thread (inserted once during the warm-up; measured
--                                        sends are the update/no-op path)
-- done() prints one line "BENCH_JSON {...}" that bench.run parses.

local threads = {}
local next_id = 1

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local function split(line)
  local fields = {}
  for field in line:gmatch("%S+") do fields[#fields + 1] = field end
  return fields
end

local function read_lines(path)
  local lines = {}
  for line in io.lines(path) do
    if #line > 0 then lines[#lines + 1] = split(line) end
  end
  return lines
end

local function piece_item(p, piece_id, k)
  local outer = 300 + math.random(0, 4000)
  return string.format(
    '{"company_guid":"%s","project_guid":"%s","component_guid":"%s","assembly_guid":"%s",' ..
    '"piece_id":"%s","barcode":"BC%010d","outer_length":%d,"inner_length":%d,' ..
    '"angle_left":%d,"angle_right":%d,"assembly_width":%d,"assembly_height":%d,' ..
    '"bar_length":6500,"profile_width":70,"profile_height":82,"orientation":"H",' ..
    '"trolley":"T%02d","cell":"%02d","trolley_cell":"T%02d-%02d","operations":"SAW;DRILL 2",' ..
    '"client":"Client","project_number":"PN%d","material_type":"PVC",' ..
    '"profile_code":"P1101","profile_name":"Frame 70","profile_color":"WHITE",' ..
    '"profile_code_with_color":"P1101-WHI"}',
    p[1], p[2], p[3], p[4], piece_id, math.random(0, 999999999), outer, outer - 96,
    (k % 2 == 0) and 45 or 90, 90, 600 + k % 400, 1000 + k % 400,
    k % 64, k % 32, k % 64, k % 32, k)
end

local function batch_body(p, prefix, items)
  local parts = {}
  for k = 1, items do
    parts[k] = piece_item(p, string.format("%s-%05d", prefix, k), k)
  end
  return '{"pieces":[' .. table.concat(parts, ",") .. ']}'
end

local mode
local targets
local pool
local run_id
local items
local sent = 0
local fixed = {}
inserted = 0
updated = 0

function init(args)
  mode = args[1]
  math.randomseed(os.time() + id * 7919)
  if mode == "get" then
    targets = read_lines(args[2])
    local compiled = {}
    for i, t in ipairs(targets) do
      local headers = {["Authorization"] = "Bearer " .. t[2]}
      if t[3] and t[3] ~= "-" then headers["If-None-Match"] = t[3] end
      if t[4] then headers["Prefer"] = t[4] end
      compiled[i] = wrk.format("GET", t[1], headers)
    end
    targets = compiled
  else
    pool = read_lines(args[2])
    items = tonumber(args[4])
    if mode == "sync" then
      run_id = args[3]
    else
      for slot = 1, tonumber(args[3]) do
        -- Seeded per slot: every wrk run builds byte-identical batches, so only the very
        -- first send of each (in the warm-up) writes anything.
        math.randomseed(id * 1000 + slot)
        local p = pool[(id * 31 + slot) % #pool + 1]
        fixed[slot] = wrk.format("POST", "/api/v1/sync/pieces",
          {["Authorization"] = "Bearer " .. p[5], ["Content-Type"] = "application/json"},
          batch_body(p, string.format("R%d-%d", id, slot), items))
      end
    end
    response = function(status, headers, body)
      if status == 200 then
        inserted = inserted + tonumber(body:match('"inserted":%s*(%d+)') or 0)
        updated = updated + tonumber(body:match('"updated":%s*(%d+)') or 0)
      end
    end
  end
end

function request()
  if mode == "get" then
    return targets[math.random(#targets)]
  elseif mode == "sync" then
    sent = sent + 1
    local p = pool[math.random(#pool)]
    return wrk.format("POST", "/api/v1/sync/pieces",
      {["Authorization"] = "Bearer " .. p[5], ["Content-Type"] = "application/json"},
      batch_body(p, string.format("S%s-%d-%d", run_id, id, sent), items))
  else
    sent = sent + 1
    return fixed[(sent - 1) % #fixed + 1]
  end
end

function done(summary, latency, requests)
  local ins, upd = 0, 0
  for _, thread in ipairs(threads) do
    ins = ins + (thread:get("inserted") or 0)
    upd = upd + (thread:get("updated") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors_connect":%d,' ..
    '"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"inserted":%d,"updated":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, ins, upd))
end
