-- tide.mcp against the reference MCP servers from npm (pinned in
-- spec/support/mcp/package-lock.json, installed by make deps): server-everything
-- over stdio and over streamable HTTP, server-filesystem over stdio; their tools
-- inside tide.Predict's tool loop and tide.ReAct with mockllm as the model; and a
-- fake server (spec/support/mcp/fake_server.lua) for what the real ones never do:
-- exit, write garbage, hang, page their tools, ask the client things.
local tide = require "tide"
local mockllm = require "support.mockllm"
local assert_clean = require "support.clean"
local eventually = require "support.eventually"
local servers = require "support.mcp.servers"
local tmpdir = require("support.files").tmpdir
local tool_mod = require "tide.tools.tool"

local PROVIDERS = require("support.lm_server").PROVIDERS

local encode = mockllm.encode   -- a scenario value for the header

local function names(tools)
  local out = {}
  for _, t in ipairs(tools) do out[#out + 1] = t.name end
  table.sort(out)
  return out
end

local function find(tools, name)
  for _, t in ipairs(tools) do if t.name == name then return t end end
end

local function failure(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return err
end

describe("tide.mcp", function()
  local server
  local live = 0   -- children a describe block keeps for all its specs
  setup(function()
    servers.require_installed()
    server = mockllm.start()
  end)
  teardown(function() server:stop() end)
  before_each(function() server:reset() end)
  after_each(function()
    assert.is_true(eventually(function() return tide.stats().processes == live end),
      "a child process was left")
    assert_clean(live)
  end)

  local function lm_for(p, scenario)
    return tide.LM(p.model, {api_key = "sk-spec", base_url = p.base(server), cache = false,
      num_retries = 0, headers = {["X-Mock-Scenario"] = scenario}})
  end

  describe("server-everything over stdio", function()
    local client
    setup(function()
      client = tide.mcp.connect{command = {servers.everything}}
      live = 1
    end)
    teardown(function()
      client:close()
      live = 0
    end)

    it("negotiates the protocol and lists the tools as tide.Tools", function()
      assert.are.equal("2025-11-25", client.protocol_version)
      assert.are.equal("mcp-servers/everything", client.server_info.name)
      local tools = client:tools()
      for _, want in ipairs{"echo", "get-sum", "trigger-long-running-operation", "get-structured-content"} do
        local t = find(tools, want)
        assert.is_truthy(t, want)
        assert.is_true(tool_mod.is_tool(t))
        assert.are.equal("object", t.schema.type)
      end
      assert.are.same({"a", "b"}, find(tools, "get-sum").schema.required)
      assert.is_nil(find(tools, "trigger-sampling-request"))   -- we declared no sampling
    end)

    it("calls tools: text, structured content, and a failed call as a result", function()
      assert.are.same({text = "The sum of 2 and 3 is 5.", is_error = false,
        content = {{type = "text", text = "The sum of 2 and 3 is 5."}}},
        client:call("get-sum", {a = 2, b = 3}))
      local r = client:call("get-structured-content", {location = "New York"})
      assert.are.equal("table", type(r.structured))
      assert.is_number(r.structured.temperature)
      local bad = client:call("no-such-tool", {})
      assert.is_true(bad.is_error)
      assert.matches("no%-such%-tool not found", bad.text)
    end)

    it("runs calls side by side on one server, progress reported per call", function()
      local events = {}
      local function op(tag)
        return function()
          local r = client:call("trigger-long-running-operation", {duration = 0.3, steps = 3},
            {on_progress = function(progress, total) events[#events + 1] = tag .. progress .. "/" .. total end})
          events[#events + 1] = tag .. " done"
          return r.text
        end
      end
      local a, b = tide.gather(op("a"), op("b"))
      assert.matches("Steps: 3", a)
      assert.matches("Steps: 3", b)
      assert.are.equal(8, #events)
      -- both had progress before either finished: they ran at the same time
      local first_done
      for i, e in ipairs(events) do if e:find("done") then first_done = first_done or i end end
      local seen = {}
      for i = 1, first_done - 1 do seen[events[i]:sub(1, 1)] = true end
      assert.are.same({a = true, b = true}, seen)
      assert.is_true(client.counts["notifications/progress"] >= 6)
      assert.is_true(client.counts["notifications/tools/list_changed"] >= 1)   -- read, not a reply
    end)

    it("gives a tool's failure to the model as text", function()
      local sum = find(client:tools(), "get-sum")
      local text, err = sum{a = 1}   -- b is required by the server's schema
      assert.matches("^Error: tool get%-sum was called with bad arguments: missing argument 'b'", text)
      assert.is_truthy(err)
      assert.are.equal("The sum of 1 and 2 is 3.", (sum{a = 1, b = 2}))
    end)

    for _, p in ipairs(PROVIDERS) do
      it("works inside tide.Predict's tool loop (" .. p.name .. ")", function()
        local lm = lm_for(p, "tool_turns=" .. encode('get-sum({"a":2,"b":3})+echo({"message":"hi"})'))
        local agent = tide.Predict("question -> answer", {tools = client:tools()})
        local r = agent({question = "What is 2 + 3?"}, {lm = lm})
        assert.matches("^Mock answer", r.answer)
        assert.are.same({"get-sum", "The sum of 2 and 3 is 5."}, {r.tool_calls[1].name, r.tool_calls[1].result})
        assert.are.same({"echo", "Echo: hi"}, {r.tool_calls[2].name, r.tool_calls[2].result})
        assert.are.equal(2, server:stats().requests)
      end)
    end

    it("works inside tide.ReAct", function()
      local lm = lm_for(PROVIDERS[1], "react=" .. encode('get-sum({"a":20,"b":22})|finish({})'))
      local r = tide.ReAct("question -> answer", {tools = client:tools()})({question = "20 + 22?"}, {lm = lm})
      assert.are.same({"get-sum", {a = 20, b = 22}, "The sum of 20 and 22 is 42."},
        {r.trajectory.tool_name_0, r.trajectory.tool_args_0, r.trajectory.observation_0})
      assert.matches("^Mock answer", r.answer)
    end)
  end)

  it("answers the server's sampling requests with the handler it was given", function()
    local asked
    local client <close> = tide.mcp.connect{command = {servers.everything},
      sampling = function(params)
        asked = params.messages[1].content.text
        return {role = "assistant", model = "mock", content = {type = "text", text = "sampled reply"}}
      end}
    assert.is_truthy(find(client:tools(), "trigger-sampling-request"))
    local r = client:call("trigger-sampling-request", {prompt = "say hi", maxTokens = 5})
    assert.is_false(r.is_error)
    assert.matches("sampled reply", r.text)
    assert.matches("say hi", asked)
  end)

  it("reads files through server-filesystem, inside a Predict", function()
    local dir = tmpdir()
    local f = assert(io.open(dir .. "/notes.txt", "w"))
    f:write("the launch code is 4711\n")
    f:close()
    local fs <close> = tide.mcp.connect{command = {servers.filesystem, dir}}
    local tools = fs:tools()
    assert.is_truthy(find(tools, "read_text_file"))
    assert.is_truthy(find(tools, "list_directory"))
    assert.matches("notes.txt", fs:call("list_directory", {path = dir}).text)
    local big = string.rep("0123456789abcdef\n", 200000)   -- 3.4 MB: one JSON line of many pipe reads
    f = assert(io.open(dir .. "/big.txt", "w"))
    f:write(big)
    f:close()
    assert.are.equal(big, fs:call("read_text_file", {path = dir .. "/big.txt"}).text)
    local outside = fs:call("read_text_file", {path = "/etc/hostname"})
    assert.is_true(outside.is_error)   -- the server's own sandbox
    local lm = lm_for(PROVIDERS[1], "tool_turns=" .. encode('read_text_file({"path":"' .. dir .. '/notes.txt"})'))
    local r = tide.Predict("question -> answer", {tools = tools})({question = "The code?"}, {lm = lm})
    assert.are.equal("the launch code is 4711\n", r.tool_calls[1].result)
    os.execute("rm -rf " .. dir)
  end)

  it("ends the child on close, and a closed client says so", function()
    local client = tide.mcp.connect{command = {servers.everything}}
    local pid = client.transport.proc.pid
    client:close()
    client:close()   -- again: nothing
    assert.is_true(eventually(function() return io.open("/proc/" .. pid .. "/stat") == nil end))
    assert.has_error(function() client:call("echo", {message = "x"}) end,
      "mcp tools/call: the client is closed")
  end)

  describe("server-everything over streamable HTTP", function()
    local http
    setup(function()
      http = servers.everything_http()
      live = 1
    end)
    teardown(function()
      http.stop()
      live = 0
    end)

    it("keeps a session and gets replies as JSON or SSE, progress included", function()
      local client <close> = tide.mcp.connect{url = http.url, headers = {Authorization = "Bearer sk-secret-token"}}
      assert.are.equal("2025-11-25", client.protocol_version)
      assert.matches("^[%w-]+$", client.transport.session)
      local tools = client:tools()
      assert.is_truthy(find(tools, "get-sum"))
      assert.are.equal("The sum of 2 and 3 is 5.", client:call("get-sum", {a = 2, b = 3}).text)
      local steps = 0
      local r = client:call("trigger-long-running-operation", {duration = 0.2, steps = 2},
        {on_progress = function() steps = steps + 1 end})
      assert.matches("Steps: 2", r.text)
      assert.are.equal(2, steps)
      local lm = lm_for(PROVIDERS[2], "tool_turns=" .. encode('echo({"message":"over http"})'))
      local p = tide.Predict("question -> answer", {tools = tools})({question = "Echo?"}, {lm = lm})
      assert.are.equal("Echo: over http", p.tool_calls[1].result)
    end)

    it("answers the server's sampling request sent on the response's event stream", function()
      local client <close> = tide.mcp.connect{url = http.url,
        sampling = function() return {role = "assistant", model = "mock",
          content = {type = "text", text = "sampled over http"}} end}
      local r = client:call("trigger-sampling-request", {prompt = "hi", maxTokens = 5})
      assert.is_false(r.is_error)
      assert.matches("sampled over http", r.text)
    end)

    it("says when the endpoint refuses, without the headers' secrets", function()
      local err = failure(tide.mcp.connect, {url = http.url:gsub("/mcp$", "/nope"),
        headers = {Authorization = "Bearer sk-secret-token"}})
      assert.are.equal("mcp", err.kind)
      assert.are.equal(404, err.status)
      assert.is_nil(tostring(err):find("sk%-secret"))
    end)
  end)

  describe("a server that misbehaves", function()
    it("exits at once: kind mcp, with its exit code and stderr", function()
      local err = failure(tide.mcp.connect, {command = {"sh", "-c", "echo 'no config file' >&2; exit 3"}})
      assert.are.equal("mcp", err.kind)
      assert.are.equal(3, err.exit_code)
      assert.matches("exited with code 3; its stderr ends with: no config file", err.message)
    end)

    it("says what it wrote without the credentials it was given", function()
      local err = failure(tide.mcp.connect, {command = {"sh", "-c", "echo \"bad token $GITHUB_TOKEN\" >&2; exit 1"},
        env = {GITHUB_TOKEN = "ghp-spec-secret-4711"}})
      assert.are.equal("mcp", err.kind)
      assert.matches("bad token %[redacted%]", err.message)
      assert.is_nil(tostring(err):find("4711"))
      assert.is_nil(err.stderr:find("4711"))
    end)

    it("cannot start: kind mcp", function()
      local err = failure(tide.mcp.connect, {command = {"/nonexistent/mcp-server"}})
      assert.are.equal("mcp", err.kind)
      assert.matches("cannot start", err.message)
    end)

    it("writes garbage on stdout: kind mcp, with what it wrote", function()
      local client <close> = tide.mcp.connect{command = servers.fake("garbage")}
      local err = failure(client.call, client, "one", {})
      assert.are.equal("mcp", err.kind)
      assert.matches("not a JSON%-RPC 2.0 message: Server started! %(not JSON%)", err.message)
      assert.are.equal(err, failure(client.call, client, "one", {}))   -- the session is over
    end)

    it("crashes during a call: every waiting call gets kind mcp, not a hang", function()
      local client <close> = tide.mcp.connect{command = servers.fake("crash")}
      local results = tide.gather({function() return client:call("one", {}) end,
        function() return client:call("one", {}) end}, {return_exceptions = true})
      assert.are.equal(2, #results)
      for _, err in ipairs(results) do
        assert.are.equal("mcp", err.kind)
        assert.matches("exited with code 1; its stderr ends with: .*fatal: the tool blew up", err.message)
      end
    end)

    it("hangs: the call times out, the server hears it was cancelled, the session goes on", function()
      local client <close> = tide.mcp.connect{command = servers.fake("hang"), timeout = 0.2}
      local err = failure(client.call, client, "one", {})
      assert.are.equal("timeout", err.kind)
      assert.matches("tools/call got no reply in 0.2 s", err.message)
      assert.is_true(client:ping())
      assert.matches("got notifications/cancelled", client.transport.proc:stderr())
      -- a cancelled call tells the server too
      local call = tide.spawn(client.call, client, "one", {x = 2})
      tide.sleep(0.05)
      call:cancel()
      assert.are.equal("cancelled", select(2, pcall(call.wait, call)).kind)
      assert.is_true(client:ping())
      assert.is_true(eventually(function()
        local _, n = client.transport.proc:stderr():gsub("got notifications/cancelled", "")
        return n == 2
      end))
      -- a tool made from it reports the timeout to the model
      local text = find(client:tools(), "one"){x = 1}
      assert.matches("^Error: tool one failed: .*no reply", text)
    end)

    it("speaks another protocol version: kind mcp naming both", function()
      local err = failure(tide.mcp.connect, {command = servers.fake("version")})
      assert.are.equal("mcp", err.kind)
      assert.matches("speaks MCP 1999%-01%-01; tide speaks 2025%-11%-25", err.message)
    end)

    it("pages its tools, notifies, and asks the client: all read, the requests answered", function()
      local seen = {}
      local client <close> = tide.mcp.connect{command = servers.fake("paged"),
        on_notification = function(method, params) seen[#seen + 1] = method .. " " .. params.data end}
      assert.are.same({"dotted_name", "five", "one", "three", "two"}, names(client:tools()))
      assert.are.equal("dotted.name", find(client:tools(), "dotted_name").mcp_name)
      assert.are.same({"notifications/message page 1", "notifications/message page 2",
        "notifications/message page 3"}, {seen[1], seen[2], seen[3]})
      assert.is_true(eventually(function()
        local log = client.transport.proc:stderr()
        return log:find("got reply s1 +result") ~= nil and log:find("got reply s2 error %-32601") ~= nil
      end))
      assert.are.equal("called dotted.name", client:call("dotted.name", {}).text)
    end)
  end)

  it("names misuse", function()
    assert.has_error(function() tide.mcp.connect{} end,
      "bad argument #1 to 'mcp.connect' (give either command = {prog, args...} (stdio) or " ..
      "url = \"http://…\" (streamable HTTP))")
    assert.has_error(function() tide.mcp.connect{command = "npx"} end)
    assert.has_error(function() tide.mcp.connect{url = "ftp://x"} end)
    assert.has_error(function() tide.mcp.connect{command = {"x"}, sampling = 3} end)
    local client <close> = tide.mcp.connect{command = servers.fake("hang")}
    assert.has_error(function() client:call("one", {}, {timeout = -1}) end)
    assert.has_error(function() client:call(1) end)
  end)
end)
