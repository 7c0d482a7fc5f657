-- Licensed under the Apache License, Version 2.0 (see LICENSE).
-- wrk script of the soak harness: every response is checked (status 200
-- and body length), requests are paced (a delay per request keeps the
-- client's CPU modest), one machine-readable RESULT line at the end.
--   wrk ... -s soak/wrk_check.lua URL -- BODY_LENGTH DELAY_MS

local threads = {}
expect = -1
pause = 0
non2xx = 0
badlen = 0
checked = 0

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   expect = tonumber(args[1] or "-1") or -1
   pause = tonumber(args[2] or "0") or 0
end

function delay()
   return pause
end

function response(status, headers, body)
   checked = checked + 1
   if status ~= 200 then
      non2xx = non2xx + 1
   end
   if expect >= 0 and (body == nil or #body ~= expect) then
      badlen = badlen + 1
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
      "RESULT requests=%d bytes=%d err_connect=%d err_read=%d err_write=%d " ..
      "err_status=%d err_timeout=%d non2xx=%d badlen=%d checked=%d\n",
      summary.requests, summary.bytes, e.connect, e.read, e.write, e.status,
      e.timeout, n2, bl, ck))
end
