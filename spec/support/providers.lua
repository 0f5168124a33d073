--- What the provider specs share: a fake environment, a chat request, a resolved
-- config and a way to run SSE events through a provider, without any network.
local assert = require "luassert"
local providers = require "tide.providers"

local M = {}

--- A fake environment for resolve.
function M.env_of(t)
  return function(name) return t[name] end
end

--- The error a call raises (it must raise).
function M.raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return err
end

function M.is_int(x)
  return math.type(x) == "integer"
end

--- Usage counts equal to these, and integers (not floats that print the same).
-- parts: the cached and reasoning counts the server reported, if any.
function M.assert_usage(u, input, output, total, parts)
  local want = {input = input, output = output, total = total}
  for k, v in pairs(parts or {}) do want[k] = v end
  assert.are.same(want, u)
  for k in pairs(parts or {}) do assert.is_true(M.is_int(u[k]), k) end
  assert.is_true(M.is_int(u.input) and M.is_int(u.output) and M.is_int(u.total))
end

-- Two system messages, a past turn and two user messages in a row: the shapes
-- each provider has to fold into its own format.
M.CHAT = {
  messages = {
    {role = "system", content = "You are terse."},
    {role = "system", content = "Answer in English."},
    {role = "user", content = "Name a colour."},
    {role = "assistant", content = "Red."},
    {role = "user", content = "Another."},
    {role = "user", content = "Just one word."},
  },
}

--- CHAT with fields added or replaced.
function M.request(fields)
  local req = {}
  for k, v in pairs(M.CHAT) do req[k] = v end
  for k, v in pairs(fields or {}) do req[k] = v end
  return req
end

--- The config resolve gives for a model, with a test key and an empty environment.
function M.cfg_for(model, opts)
  local o = {api_key = "sk-test", env = M.env_of{}}
  for k, v in pairs(opts or {}) do o[k] = v end
  return select(2, providers.resolve(model, o))
end

--- Runs a list of SSE events through a provider; returns the text and the state.
function M.stream(provider, events)
  local state, out, done = {}, {}, false
  for _, ev in ipairs(events) do
    assert.is_false(done, "an event after the end marker")
    local delta
    delta, done = provider.stream_event(state, ev)
    if delta then out[#out + 1] = delta end
  end
  return table.concat(out), state, done
end

return M
