-- wrk script: plain GETs of the URL given on the command line (a floor for the machine: e.g. a
-- health endpoint of a server that is not the router). done() prints "WRK_JSON {...}" like
-- call.lua, for bench/harness.py to parse.

dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

function done(summary, latency, requests)
  report(summary, latency, "")
end
