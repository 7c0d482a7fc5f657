-- Licensed under the Apache License, Version 2.0.
-- wrk script used by bench/run: counts non-2xx responses and responses whose
-- body length differs from the expected one, and prints one machine-readable
-- RESULT line at the end.
--   wrk ... -s bench/wrk_check.lua URL -- EXPECTED_BODY_LENGTH
-- With WRK_CHECK_BODY=0 in the environment no per-response callback is
-- installed (used for the 10 MiB file: the length is then checked from the
-- byte count instead, and non-2xx from wrk's own status error counter, which
-- counts status >= 400).

local threads = {}
expect = -1
non2xx = 0
badlen = 0
checked = 0

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   expect = tonumber(args[1] or "-1") or -1
end

if os.getenv("WRK_CHECK_BODY") ~= "0" then
   function response(status, headers, body)
      checked = checked + 1
      if status < 200 or status > 299 then
         non2xx = non2xx + 1
      end
      if expect >= 0 and (body == nil or #body ~= expect) then
         badlen = badlen + 1
      end
   end
end

function done(summary, latency, requests)
   local n2, bl, ck = 0, 0, 0
   for _, t in ipairs(threads) do
      n2 = n2 + (t:get("non2xx") or 0)
      bl = bl + (t:get("badlen") or 0)
      ck = ck + (t:get("checked") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_us=%d bytes=%d err_connect=%d err_read=%d " ..
      "err_write=%d err_status=%d err_timeout=%d non2xx=%d badlen=%d " ..
      "checked=%d p50_us=%d p99_us=%d max_us=%d mean_us=%.1f\n",
      summary.requests, summary.duration, summary.bytes, e.connect, e.read,
      e.write, e.status, e.timeout, n2, bl, ck,
      latency:percentile(50), latency:percentile(99), latency.max,
      latency.mean))
end
