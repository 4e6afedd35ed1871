-- wrk script: MCP session churn. Run with as many threads as connections (-t N -c N), so that
-- each thread drives one connection and its responses arrive in order.
--
-- One cycle: initialize, notifications/initialized, tools/list, tools/call, DELETE.
-- Environment (all optional):
--   MCP_TOOL              tool to call (default "tool_0")
--   MCP_PROTOCOL_VERSION  protocol version to ask for and send (default "2025-11-25")
--
-- done() prints one line "WRK_JSON {...}" with the completed cycles and the failed steps.

dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

local tool = os.getenv("MCP_TOOL") or "tool_0"
local version = os.getenv("MCP_PROTOCOL_VERSION") or "2025-11-25"

local bodies = {
  '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"' .. version
    .. '","capabilities":{},"clientInfo":{"name":"wrk-churn","version":"1"}}}',
  '{"jsonrpc":"2.0","method":"notifications/initialized"}',
  '{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}',
  '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"' .. tool
    .. '","arguments":{"text":"hello"}}}',
  nil,
}
local expected = { [1] = { [200] = true }, [2] = { [200] = true, [202] = true, [204] = true },
  [3] = { [200] = true }, [4] = { [200] = true }, [5] = { [200] = true, [202] = true, [204] = true } }

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  step, session_id, cycles, failures = 1, nil, 0, 0
end

local function headers_for(with_session)
  local h = { ["Content-Type"] = "application/json",
              ["Accept"] = "application/json, text/event-stream" }
  if with_session then
    h["Mcp-Session-Id"] = session_id
    h["MCP-Protocol-Version"] = version
  end
  return h
end

function request()
  if step == 1 then
    return wrk.format("POST", nil, headers_for(false), bodies[1])
  elseif step == 5 then
    return wrk.format("DELETE", nil, headers_for(true), nil)
  end
  return wrk.format("POST", nil, headers_for(true), bodies[step])
end

local function header(headers, name)
  for key, value in pairs(headers) do
    if string.lower(key) == name then
      return value
    end
  end
  return nil
end

function response(status, headers, body)
  if not expected[step][status] then
    failures = failures + 1
    step, session_id = 1, nil
    return
  end
  if step == 1 then
    session_id = header(headers, "mcp-session-id")
    if not session_id then
      failures = failures + 1
      return
    end
  end
  if step == 5 then
    cycles = cycles + 1
    step, session_id = 1, nil
  else
    step = step + 1
  end
end

function done(summary, latency, requests)
  local cycles_total, failures_total = 0, 0
  for _, thread in ipairs(threads) do
    cycles_total = cycles_total + thread:get("cycles")
    failures_total = failures_total + thread:get("failures")
  end
  report(summary, latency, string.format('"cycles":%d,"failures":%d,', cycles_total, failures_total))
end
