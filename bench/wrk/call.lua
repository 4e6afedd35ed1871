-- wrk script: one MCP JSON-RPC request, sent over and over on keep-alive connections.
--
-- Environment (all optional):
--   MCP_METHOD            JSON-RPC method (default "tools/call")
--   MCP_PARAMS            params as JSON (default a tools/call of tool_0 with {"text":"hello"})
--   MCP_SESSION_ID        sent as Mcp-Session-Id when set and not empty
--   MCP_PROTOCOL_VERSION  sent as MCP-Protocol-Version (default "2025-11-25")
--
-- Each request gets its own JSON-RPC id (unique across threads), since a session must not
-- reuse ids. done() prints one line "WRK_JSON {...}" for bench/run.py to parse.

dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

local method = os.getenv("MCP_METHOD") or "tools/call"
local params = os.getenv("MCP_PARAMS") or '{"name":"tool_0","arguments":{"text":"hello"}}'
local session_id = os.getenv("MCP_SESSION_ID")
local prefix = '{"jsonrpc":"2.0","method":"' .. method .. '","params":' .. params .. ',"id":'

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = os.getenv("MCP_PROTOCOL_VERSION") or "2025-11-25"
if session_id and session_id ~= "" then
  wrk.headers["Mcp-Session-Id"] = session_id
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_index", #threads)
end

function init(args)
  next_id = thread_index * 1000000000
end

function request()
  next_id = next_id + 1
  return wrk.format(nil, nil, nil, prefix .. next_id .. "}")
end

function done(summary, latency, requests)
  report(summary, latency, "")
end
