-- wrk script for the ingest benchmark: POSTs pre-signed, distinct webhook bodies.
--
-- usage: wrk -t T -c C -d D -s bench/_wrk.lua URL -- REQUESTS_FILE
-- REQUESTS_FILE holds one request per line: "<timestamp>\t<signature>\t<json body>", written and
-- signed by bench/bench_ingest.py. Thread k of T sends lines k, k+T, k+2T … once each, so no id is
-- ever sent twice; a thread that runs out stops (and `done` says so: the run was too short of
-- bodies, not a result).

local threads = {}
local counter = 0

function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

function init(args)
   reqs = {}
   sent = 0
   exhausted = 0
   ok = 0
   local path = wrk.path
   local file = args[1]
   local n = tonumber(args[2])
   local line_no = 0
   for line in io.lines(file) do
      if line_no % n == tid then
         local ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
         local headers = {
            ["Content-Type"] = "application/json",
            ["X-Inbox-Timestamp"] = ts,
            ["X-Inbox-Signature"] = sig,
         }
         table.insert(reqs, wrk.format("POST", path, headers, body))
      end
      line_no = line_no + 1
   end
end

function request()
   sent = sent + 1
   local r = reqs[sent]
   if r == nil then
      exhausted = 1
      wrk.thread:stop()
      return reqs[#reqs]
   end
   return r
end

function response(status, headers, body)
   if status == 200 then
      ok = ok + 1
   end
end

function done(summary, latency, requests)
   local ok_total, exhausted_any = 0, 0
   for _, thread in ipairs(threads) do
      ok_total = ok_total + thread:get("ok")
      exhausted_any = exhausted_any + thread:get("exhausted")
   end
   io.write(string.format(
      "RESULT requests=%d duration_us=%d ok=%d p50_us=%d p99_us=%d max_us=%d "
         .. "connect_errors=%d read_errors=%d write_errors=%d timeouts=%d status_errors=%d exhausted=%d\n",
      summary.requests, summary.duration, ok_total, latency:percentile(50), latency:percentile(99),
      latency.max, summary.errors.connect, summary.errors.read, summary.errors.write,
      summary.errors.timeout, summary.errors.status, exhausted_any))
end
