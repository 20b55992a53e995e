-- wrk script of the load bench (benches/load/run.sh). Arguments after `--`:
--
--   static <expected-status> [token-file]  one request: the file's first token, or none
--   rotate <expected-status> <token-file> [<marker> <limit>]
--                                          the file's tokens in turn, round-robin; with a
--                                          limit, the thread stops after that many
--                                          requests and <marker> is written (warm-ups)
--   stream <expected-status> <token-file> [skip]
--                                          each token of the file once, in order, from
--                                          after its first `skip` lines (default 0); at
--                                          the end it starts again, counted in `wrapped`
--   once   <expected-status> <token-file> <marker> [repeat]
--                                          each token `repeat` times in a row (default
--                                          1), in order; at the end the thread stops and
--                                          <marker> is written
--
-- Every response's status is checked: `done` prints one LOADRESULT line with the count
-- of responses whose status is not the expected one (bad) and the first few of them.

local mode, expected, file, marker, rep
local reqs, n, i, k, sent, limit = {}, 0, 0, 0, 0, nil
local f
bad = 0
wrapped = 0
seen = ""

local function format(token)
   if token == nil then
      return wrk.format("GET", nil, {})
   end
   return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. token })
end

function init(args)
   mode, expected, file, marker = args[1], tonumber(args[2]), args[3], args[4]
   rep = tonumber(args[5] or "1")
   limit = tonumber(args[5] or "")
   if mode == "static" then
      local token = nil
      if file then
         local h = assert(io.open(file, "r"))
         token = h:read("*l")
         h:close()
      end
      if token then
         wrk.headers["Authorization"] = "Bearer " .. token
      end
   elseif mode == "rotate" then
      for line in io.lines(file) do
         n = n + 1
         reqs[n] = format(line)
      end
      assert(n > 0, "no tokens in " .. file)
      request = function()
         i = i % n + 1
         if limit then
            sent = sent + 1
            if sent == limit then
               local m = io.open(marker, "w")
               if m then m:write("done\n") m:close() end
               wrk.thread:stop()
            end
         end
         return reqs[i]
      end
   elseif mode == "stream" or mode == "once" then
      f = assert(io.open(file, "r"))
      if mode == "stream" then
         -- Paired windows each take their own slice of the file.
         for _ = 1, tonumber(args[4] or "0") do
            if f:read("*l") == nil then
               wrapped = wrapped + 1
               f:seek("set", 0)
               break
            end
         end
      end
      local last = nil
      request = function()
         if last and k < rep then
            k = k + 1
            return last
         end
         k = 1
         local token = f:read("*l")
         if token == nil then
            wrapped = wrapped + 1
            if mode == "once" then
               if marker then
                  local m = io.open(marker, "w")
                  if m then m:write("done\n") m:close() marker = nil end
               end
               wrk.thread:stop()
               return last
            end
            f:seek("set", 0)
            token = f:read("*l")
         end
         last = format(token)
         return last
      end
   else
      error("unknown mode " .. tostring(mode))
   end
end

function response(status, headers, body)
   if status ~= expected then
      bad = bad + 1
      if bad <= 3 then
         seen = seen .. status .. ","
      end
   end
end

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function done(summary, latency, requests)
   local b, w, s = 0, 0, ""
   for _, t in ipairs(threads) do
      b = b + t:get("bad")
      w = w + t:get("wrapped")
      s = s .. t:get("seen")
   end
   local e = summary.errors
   if s == "" then s = "-" end
   io.write(string.format(
      "LOADRESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d bad=%d wrapped=%d " ..
      "sock_errors=%d timeouts=%d bad_statuses=%s\n",
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(99), b, w,
      e.connect + e.read + e.write, e.timeout, s))
end
