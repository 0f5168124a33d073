-- Datasets: JSONL, CSV and Lua tables into Examples, and clear errors for bad rows.
local tide = require "tide"
local csv = require "tide.eval.csv"
local cjson = require "cjson"

local dirs = {}

local function file(name, text)
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. dir)
  dirs[#dirs + 1] = dir
  local path = dir .. "/" .. name
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

teardown(function()
  for _, dir in ipairs(dirs) do os.execute("rm -rf " .. dir) end
end)

describe("dataset.jsonl", function()
  it("loads one Example a line, with declared inputs, integers kept and blank lines skipped", function()
    local path = file("d.jsonl", table.concat({
      '{"content": "draft one", "context": "email", "score": 85, "ratio": 0.5, "note": null}',
      '',
      '   ',
      '{"content": "draft two", "context": "ad", "score": 60, "tags": ["a", "b"]}',
    }, "\n") .. "\n")
    local list = tide.dataset.jsonl(path, {inputs = {"content", "context"}})
    assert.are.equal(2, #list)
    local ex = list[1]
    assert.are.equal("draft one", ex.content)
    assert.are.equal(85, ex.score)
    assert.are.equal("integer", math.type(ex.score))
    assert.are.equal(0.5, ex.ratio)
    assert.is_nil(ex.note)
    assert.are.same({"content", "context"}, ex:input_names())
    assert.are.same({content = "draft one", context = "email"}, setmetatable(ex:inputs(), nil))
    assert.are.same({"a", "b"}, list[2].tags)
    assert.are.equal(60, list[2]:labels().score)
  end)

  it("makes every field an input when no inputs are declared", function()
    local path = file("d.jsonl", '{"b": 1, "a": 2}\n')
    assert.are.same({"a", "b"}, tide.dataset.jsonl(path)[1]:input_names())
  end)

  it("streams rows with their line numbers through each()", function()
    local path = file("d.jsonl", '{"q": "1"}\n\n{"q": "2"}\n{"q": "3"}\n')
    local seen = {}
    for ex, line in tide.dataset.each(path, {inputs = {"q"}}) do
      seen[#seen + 1] = ex.q .. "@" .. line
      if #seen == 2 then break end   -- a consumer may stop early
    end
    assert.are.same({"1@1", "2@3"}, seen)
  end)

  it("names the file and line of a row that is not JSON", function()
    local path = file("bad.jsonl", '{"q": "ok"}\n{"q": "ok"}\n{"q": "broken",\n')
    local msg = error_of(tide.dataset.jsonl, path)
    assert.matches("bad%.jsonl:3: invalid JSON", msg)
  end)

  it("names the line of a row that is not an object, and of a row missing an input", function()
    local path = file("bad.jsonl", '{"q": "ok"}\n[1, 2]\n')
    assert.matches("bad%.jsonl:2: expected a JSON object, got an array",
      error_of(tide.dataset.jsonl, path))
    path = file("bad.jsonl", '{"q": "ok"}\n"text"\n')
    assert.matches('bad%.jsonl:2: expected a JSON object, got "text"', error_of(tide.dataset.jsonl, path))
    path = file("bad.jsonl", '{"q": "ok"}\n\n{"other": 1}\n')
    assert.matches("bad%.jsonl:3: missing input 'q'", error_of(tide.dataset.jsonl, path, {inputs = {"q"}}))
  end)

  it("raises at once on misuse, naming the argument", function()
    assert.matches("bad argument #1 to 'dataset.jsonl'", error_of(tide.dataset.jsonl, 42))
    assert.matches("bad argument 'opts.inputs' to 'dataset.jsonl' %(a non%-empty list of field names expected, got string%)",
      error_of(tide.dataset.jsonl, "x.jsonl", {inputs = "q"}))
    assert.matches("bad argument 'opts.inputs%[2%]' to 'dataset.jsonl' %(string expected, got number%)",
      error_of(tide.dataset.jsonl, "x.jsonl", {inputs = {"q", 3}}))
    assert.matches("bad argument 'opts.format' to 'dataset.each' %(\"jsonl\" or \"csv\" expected, got xml%)",
      error_of(tide.dataset.each, "x.jsonl", {format = "xml"}))
  end)

  it("blames the caller's line for misuse", function()
    local line
    local ok, err = pcall(function()
      line = debug.getinfo(1, "l").currentline + 1
      local list = tide.dataset.from_table({{q = 1}, {a = 2}}, {inputs = {"q"}})
      return list
    end)
    assert.is_false(ok)
    assert.matches("^spec/dataset_spec%.lua:" .. line .. ": dataset%.from_table: row 2: missing input 'q'", err)
    ok, err = pcall(function()
      line = debug.getinfo(1, "l").currentline + 1
      local iter = tide.dataset.each("data.txt")
      return iter
    end)
    assert.is_false(ok)
    assert.matches("^spec/dataset_spec%.lua:" .. line .. ": dataset%.each: cannot tell the format", err)
  end)

  it("names a file it cannot open once, and says how to give a format", function()
    local msg = error_of(tide.dataset.jsonl, "/nonexistent/x.jsonl")
    assert.are.equal("cannot open /nonexistent/x.jsonl: No such file or directory", msg)
    msg = error_of(tide.dataset.each, "data.txt")
    assert.matches("cannot tell the format of 'data%.txt': name it %.jsonl or %.csv, or pass " ..
      "opts%.format = \"jsonl\" | \"csv\" %(tide eval: %-%-format jsonl|csv%)", msg)
    local path = file("data.txt", '{"q": "1"}\n')
    assert.are.equal("1", tide.dataset.load(path, {format = "jsonl"})[1].q)
  end)

  it("reads JSON's null as an absent field, and names the row's fields beside a missing input", function()
    local path = file("d.jsonl", '{"q": "x", "a": null}\n{"qestion": "y", "q": null}\n')
    local msg = error_of(tide.dataset.jsonl, path, {inputs = {"q"}})
    assert.matches("d%.jsonl:2: missing input 'q' %(the row's fields: qestion%)", msg)
    local ex = tide.dataset.jsonl(file("d.jsonl", '{"q": "x", "a": null}\n'))[1]
    assert.are.same({"q"}, ex:input_names())
    assert.is_nil(rawget(ex, "a"))
    ex = tide.dataset.from_table({{q = "x", a = cjson.null}})[1]
    assert.are.same({"q"}, ex:input_names())
    assert.is_nil(rawget(ex, "a"))
    assert.are.same({}, setmetatable(ex:labels(), nil))
  end)
end)

describe("dataset.csv", function()
  it("reads a header row, quoted fields with commas, quotes and newlines, CRLF and a BOM", function()
    local text = "\239\187\191content,context,label\r\n" ..
      '"Hello, world",email,yes\r\n' ..
      '"She said ""hi""",ad,no\r\n' ..
      '"line one\r\nline two\r\n\r\nline four",letter,\r\n' ..
      '\r\n' ..
      'plain,"",maybe\r\n'
    local path = file("d.csv", text)
    local rows = {}
    for ex, line in tide.dataset.each(path, {inputs = {"content"}}) do rows[#rows + 1] = {ex, line} end
    assert.are.equal(4, #rows)
    assert.are.equal("Hello, world", rows[1][1].content)
    assert.are.equal(2, rows[1][2])
    assert.are.equal('She said "hi"', rows[2][1].content)
    assert.are.equal("line one\nline two\n\nline four", rows[3][1].content)
    assert.are.equal("", rows[3][1].label)
    assert.are.equal(4, rows[3][2])
    assert.are.equal("plain", rows[4][1].content)
    assert.are.equal("", rows[4][1].context)
    assert.are.equal(9, rows[4][2])   -- the line numbers count the embedded newlines
    assert.are.same({"content"}, rows[1][1]:input_names())
    assert.are.equal("yes", rows[1][1]:labels().label)
  end)

  it("loads the whole file as a list, values as strings", function()
    local path = file("d.csv", "q,a\n2+2?,4\n3+3?,6\n")
    local list = tide.dataset.csv(path, {inputs = {"q"}})
    assert.are.equal(2, #list)
    assert.are.equal("6", list[2].a)
    assert.are.equal(2, #tide.dataset.load(path, {inputs = {"q"}}))
  end)

  it("names the line of a quoted field that is never closed", function()
    local path = file("bad.csv", 'q,a\nok,1\n"open,2\nmore\n')
    assert.matches("bad%.csv:3: a quoted field opened here is never closed", error_of(tide.dataset.csv, path))
  end)

  it("names the line of a row with the wrong number of fields", function()
    local path = file("bad.csv", 'q,a,b\n1,2,3\n"multi\nline",2,3\n4,5\n')
    assert.matches("bad%.csv:5: 2 fields, but the header has 3", error_of(tide.dataset.csv, path))
  end)

  it("names stray quotes, bad headers and a missing input column", function()
    assert.matches("bad%.csv:2: a quote inside an unquoted field",
      error_of(tide.dataset.csv, file("bad.csv", 'q,a\nsay "hi",1\n')))
    assert.matches("bad%.csv:2: unexpected character 'x' after a closing quote",
      error_of(tide.dataset.csv, file("bad.csv", 'q,a\n"hi"x,1\n')))
    assert.matches("bad%.csv:1: column 'q' appears twice",
      error_of(tide.dataset.csv, file("bad.csv", 'q,q\n1,2\n')))
    assert.matches("bad%.csv:1: column 2 of the header has no name",
      error_of(tide.dataset.csv, file("bad.csv", 'q,\n1,2\n')))
    assert.matches("bad%.csv:1: no column 'content' in the header %(q, a%)",
      error_of(tide.dataset.csv, file("bad.csv", 'q,a\n1,2\n'), {inputs = {"content"}}))
  end)

  it("writes what it reads: encode_row then records round-trips awkward values", function()
    local values = {"plain", "a,b", 'say "hi"', "two\nlines", "", " padded "}
    local line = csv.encode_row(values)
    local lines = {}
    for l in line:gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
    local i = 0
    local fields = csv.records(function() i = i + 1 return lines[i] end)()
    assert.are.same(values, fields)
  end)
end)

describe("dataset.from_table", function()
  it("turns plain tables into Examples and keeps an Example's own inputs", function()
    local list = tide.dataset.from_table({{q = "2+2?", a = "4"}}, {inputs = {"q"}})
    assert.are.same({"q"}, list[1]:input_names())
    local ex = tide.Example{q = "x", a = "y", b = "z"}:with_inputs("q", "b")
    assert.are.same({"b", "q"}, tide.dataset.from_table({ex})[1]:input_names())
  end)

  it("names the row that is not a table or lacks an input", function()
    assert.matches("row 2 is a string", error_of(tide.dataset.from_table, {{q = 1}, "x"}))
    assert.matches("row 2: missing input 'q'",
      error_of(tide.dataset.from_table, {{q = 1}, {a = 2}}, {inputs = {"q"}}))
    assert.matches("bad argument #1 to 'dataset.from_table'", error_of(tide.dataset.from_table, "x"))
  end)
end)
