-- wrk script for bench/callbacks.py: replays pre-generated, distinct, signed+encrypted WeCom
-- callbacks. Arguments (after `--`): <file prefix> <offsets>, where thread i reads
-- "<prefix>.<i>.txt" (one "path?query<TAB>xml body" per line) and starts at line offsets[i] + 1
-- (a comma list, so the measured run continues where the warm-up stopped). A thread that runs
-- past the end of its slice wraps around and counts every repeated request in `repeats`.
-- done() prints one JSON line prefixed with "BENCH_JSON " (latencies in microseconds).

local threads = {}
local next_id = 1

function setup(thread)
   thread:set("id", next_id)
   table.insert(threads, thread)
   next_id = next_id + 1
end

function init(args)
   local prefix = args[1]
   local offsets = {}
   for value in string.gmatch(args[2] or "", "[^,]+") do
      offsets[#offsets + 1] = tonumber(value)
   end
   local headers = { ["Content-Type"] = "text/xml" }
   reqs = {}
   for line in io.lines(prefix .. "." .. id .. ".txt") do
      local tab = string.find(line, "\t", 1, true)
      reqs[#reqs + 1] = wrk.format("POST", string.sub(line, 1, tab - 1), headers, string.sub(line, tab + 1))
   end
   n = #reqs
   pos = offsets[id] or 0 -- 0-based index of the last request sent
   sent = 0
   repeats = 0
end

function request()
   pos = pos + 1
   sent = sent + 1
   if pos > n then
      repeats = repeats + 1
      return reqs[((pos - 1) % n) + 1]
   end
   return reqs[pos]
end

function done(summary, latency, requests)
   local pos_list, total_sent, total_repeats = {}, 0, 0
   for _, thread in ipairs(threads) do
      local s = thread:get("sent")
      total_sent = total_sent + s
      total_repeats = total_repeats + thread:get("repeats")
      pos_list[#pos_list + 1] = tostring(thread:get("pos"))
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"sent":%d,"repeats":%d,"positions":[%s],'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
         .. '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
      summary.requests, summary.duration, total_sent, total_repeats, table.concat(pos_list, ","),
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max))
end
