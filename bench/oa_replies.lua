-- wrk script for bench/oa_replies.py: replays pre-generated, distinct, signed+encrypted Official Account
-- callbacks (safe mode) and looks at every answer. Arguments (after `--`): <file prefix> <offsets>
-- <sample every>: thread i reads "<prefix>.<i>.txt" (one "path?query<TAB>xml body" per line) from line
-- offsets[i] + 1 (a comma list: the measured run continues where the warm-up stopped); a thread that runs
-- past the end wraps around and counts the repeats. Every answer is classified (an encrypted envelope,
-- "success"/empty, anything else) and every <sample every>-th encrypted one is appended to
-- "<prefix>.replies.<i>.txt" for the Python side to verify and decrypt.
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
   every = tonumber(args[3] or "100")
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
   encrypted = 0
   plain = 0
   other = 0
   samples = io.open(prefix .. ".replies." .. id .. ".txt", "a")
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

function response(status, headers, body)
   if status ~= 200 then
      return
   end
   if string.find(body, "<Encrypt>", 1, true) then
      encrypted = encrypted + 1
      if encrypted % every == 1 then
         samples:write((string.gsub(body, "[\r\n]", "")), "\n")
         samples:flush()
      end
   elseif body == "success" or body == "" then
      plain = plain + 1
   else
      other = other + 1
   end
end

function done(summary, latency, requests)
   local pos_list, total_sent, total_repeats = {}, 0, 0
   local enc, pl, ot = 0, 0, 0
   for _, thread in ipairs(threads) do
      total_sent = total_sent + thread:get("sent")
      total_repeats = total_repeats + thread:get("repeats")
      enc = enc + thread:get("encrypted")
      pl = pl + thread:get("plain")
      ot = ot + thread:get("other")
      pos_list[#pos_list + 1] = tostring(thread:get("pos"))
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"sent":%d,"repeats":%d,"positions":[%s],'
         .. '"answers":{"encrypted":%d,"plain":%d,"other":%d},'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
         .. '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
      summary.requests, summary.duration, total_sent, total_repeats, table.concat(pos_list, ","),
      enc, pl, ot,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max))
end
