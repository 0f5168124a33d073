--- Settings: tide.configure's globals, tide.context's per-task layers, values
-- unset with false, and no configured LM left behind for the next spec file.
local tide = require "tide"
local settings = require "tide.settings"
local assert_clean = require "support.clean"

describe("settings", function()
  after_each(assert_clean)

  it("layers tide.context over the globals; false unsets a value beneath it", function()
    local a, b = tide.DummyLM{"a"}, tide.DummyLM{"b"}
    tide.configure{lm = a}
    local seen = tide.context({lm = b}, function()
      local inner = tide.context({lm = false}, function() return settings.get("lm") end)
      local child = tide.spawn(function() return settings.get("lm") end):wait()
      return {settings.get("lm"), inner, child}
    end)
    assert.are.equal(b, seen[1])
    assert.is_nil(seen[2])           -- unset inside, though b and a are beneath
    assert.are.equal(b, seen[3])     -- a child task keeps its parent's
    assert.are.equal(a, settings.get("lm"))
  end)

  it("tide.configure{lm = false} unsets the LM; a wrong value names the fix", function()
    tide.configure{lm = tide.DummyLM{"x"}}
    tide.configure{lm = false}
    assert.is_nil(tide.settings.lm)
    local ok, err = pcall(function() local r = tide.configure{adapter = 5}; return r end)
    assert.is_false(ok)
    assert.matches("^[^:]*settings_spec%.lua:%d+: tide%.configure: adapter must be " ..
      "tide%.adapters%.chat or tide%.adapters%.json, or false to unset it", err)
  end)

  it("the spec helper leaves no LM or adapter configured for the next spec file", function()
    tide.configure{lm = tide.DummyLM{"x"}, adapter = tide.adapters.json}
    assert_clean()
    assert.is_nil(tide.settings.lm)
    assert.is_nil(tide.settings.adapter)
  end)
end)
