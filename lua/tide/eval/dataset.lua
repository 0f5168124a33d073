--- Datasets: JSONL files, CSV files and Lua tables as lists of tide.Example.
--
--   local devset = tide.dataset.jsonl("drafts.jsonl", {inputs = {"content", "context"}})
--   local devset = tide.dataset.csv("drafts.csv", {inputs = {"content"}})
--   local devset = tide.dataset.from_table({{q = "2+2?", a = "4"}}, {inputs = {"q"}})
--   for ex, line in tide.dataset.each("big.jsonl", {inputs = {"q"}}) do ... end
--
-- Every example has its input keys declared (ex:inputs(), ex:labels() work), and a
-- bad row raises at once with the file and line: "drafts.jsonl:7: invalid JSON: ...".
-- Without opts.inputs every field of a row is an input.  Reading is streaming: `each`
-- holds one row at a time; the list loaders keep only the examples.  JSON's null is
-- an absent field (a null input is a missing one).
local cjson = require "cjson"
local check = require "tide.check"
local csv = require "tide.eval.csv"
local prediction = require "tide.prediction"

local M = {}

--- normalise(v) → v decoded by cjson, read as it was written: JSON's numbers arrive
-- as floats (85 becomes 85.0), whole numbers go back to integers, and null to nil
-- (results.lua reads its rows with it too).
local function normalise(v)
  if v == cjson.null then return nil end
  if math.type(v) == "float" then return math.tointeger(v) or v end
  if type(v) == "table" then
    local out = {}
    for k, x in pairs(v) do out[k] = normalise(x) end
    return out
  end
  return v
end

local FORMATS = {jsonl = true, csv = true}

local function check_opts(opts, fname)
  if opts == nil then return {} end
  check.type(fname, 2, opts, "table")
  if opts.inputs ~= nil then
    if type(opts.inputs) ~= "table" or #opts.inputs == 0 then
      check.fail(fname, "opts.inputs", "a non-empty list of field names expected, got " ..
        (type(opts.inputs) == "table" and "an empty table" or type(opts.inputs)))
    end
    for i, name in ipairs(opts.inputs) do
      if type(name) ~= "string" then
        check.fail(fname, string.format("opts.inputs[%d]", i), "string expected, got " .. type(name))
      end
    end
  end
  if opts.format ~= nil and not FORMATS[opts.format] then
    check.fail(fname, "opts.format", "\"jsonl\" or \"csv\" expected, got " .. tostring(opts.format))
  end
  return opts
end

--- The row's field names, sorted, for a message.
local function field_list(fields)
  local names = {}
  for k in pairs(fields) do names[#names + 1] = tostring(k) end
  table.sort(names)
  return #names > 0 and table.concat(names, ", ") or "none"
end

--- fields → an Example with the declared inputs; where names the row in errors.
local function to_example(fields, inputs, where)
  local present = {}
  for k, v in pairs(fields) do
    if v ~= cjson.null then present[k] = v end
  end
  fields = present
  local names = inputs
  if not names then
    names = {}
    for k in pairs(fields) do
      if type(k) == "string" then names[#names + 1] = k end
    end
    table.sort(names)
  end
  for _, name in ipairs(names) do
    if fields[name] == nil then
      error(string.format("%s: missing input '%s' (the row's fields: %s)", where, name,
        field_list(fields)), 0)
    end
  end
  return prediction.example(fields):with_inputs(table.unpack(names))
end

local function open(path, fname)
  if type(path) ~= "string" then check.fail(fname, 1, "file path expected, got " .. type(path)) end
  local f, err = io.open(path, "r")
  if not f then error("cannot open " .. err, 0) end   -- err starts with the path
  return f
end

-- ---- JSONL ----------------------------------------------------------------------

local function jsonl_rows(path, opts)
  local f = open(path, "dataset.jsonl")
  local lineno = 0
  return function()
    for line in f:lines() do
      lineno = lineno + 1
      if line:find("%S") then
        local where = path .. ":" .. lineno
        local ok, v = pcall(cjson.decode, line)
        if not ok then
          f:close()
          error(string.format("%s: invalid JSON: %s", where, tostring(v)), 0)
        end
        if type(v) ~= "table" or (next(v) ~= nil and #v > 0) then
          f:close()
          error(string.format("%s: expected a JSON object, got %s", where,
            type(v) == "table" and "an array" or cjson.encode(v)), 0)
        end
        local okx, ex = pcall(to_example, normalise(v), opts.inputs, where)
        if not okx then f:close(); error(ex, 0) end
        return ex, lineno
      end
    end
    f:close()
    return nil
  end, nil, nil, f   -- a generic for that breaks early closes the file
end

-- ---- CSV ---------------------------------------------------------------------------

local function csv_rows(path, opts)
  local f = open(path, "dataset.csv")
  local lines = f:lines()
  local records = csv.records(lines)
  local function fail(msg)
    f:close()
    error(path .. ":" .. msg, 0)
  end
  local ok, header, hline = pcall(records)
  if not ok then fail(header) end
  if not header then f:close(); return function() return nil end end   -- an empty file
  local seen = {}
  for i, name in ipairs(header) do
    if name == "" then fail(string.format("%d: column %d of the header has no name", hline, i)) end
    if seen[name] then fail(string.format("%d: column '%s' appears twice in the header", hline, name)) end
    seen[name] = true
  end
  if opts.inputs then
    for _, name in ipairs(opts.inputs) do
      if not seen[name] then
        fail(string.format("%d: no column '%s' in the header (%s)", hline, name,
          table.concat(header, ", ")))
      end
    end
  end
  return function()
    local okr, fields, line = pcall(records)
    if not okr then fail(fields) end
    if not fields then f:close(); return nil end
    if #fields ~= #header then
      fail(string.format("%d: %d fields, but the header has %d", line, #fields, #header))
    end
    local row = {}
    for i, name in ipairs(header) do row[name] = fields[i] end
    local okx, ex = pcall(to_example, row, opts.inputs, path .. ":" .. line)
    if not okx then f:close(); error(ex, 0) end
    return ex, line
  end, nil, nil, f
end

-- ---- the public loaders -------------------------------------------------------------

local function format_of(path)
  local ext = path:match("%.([%w]+)$")
  ext = ext and ext:lower()
  if ext == "csv" then return "csv" end
  if ext == "jsonl" or ext == "ndjson" or ext == "json" then return "jsonl" end
  return nil
end

--- dataset.each(path, opts) → an iterator of (example, line) over a JSONL or CSV
-- file (by extension, or opts.format = "jsonl" | "csv"), one row in memory at a time.
function M.each(path, opts)
  opts = check_opts(opts, "dataset.each")
  local format = opts.format or (type(path) == "string" and format_of(path))
  if format == "csv" then return csv_rows(path, opts) end
  if format == "jsonl" then return jsonl_rows(path, opts) end
  check.misuse(string.format("dataset.each: cannot tell the format of '%s': name it .jsonl or "
    .. ".csv, or pass opts.format = \"jsonl\" | \"csv\" (tide eval: --format jsonl|csv)", tostring(path)))
end

local function collect(iter)
  local list = {}
  for ex in iter do list[#list + 1] = ex end
  return list
end

--- dataset.jsonl(path, opts) → a list of Examples, one per non-blank line.
function M.jsonl(path, opts)
  return collect(jsonl_rows(path, check_opts(opts, "dataset.jsonl")))
end

--- dataset.csv(path, opts) → a list of Examples, one per record after the header row.
-- Values stay strings, as CSV has no types.
function M.csv(path, opts)
  return collect(csv_rows(path, check_opts(opts, "dataset.csv")))
end

--- dataset.load(path, opts): jsonl or csv by the file's extension (or opts.format).
function M.load(path, opts)
  return collect(M.each(path, opts))
end

--- dataset.from_table(rows, opts) → a list of Examples from a list of tables (or of
-- Examples); a row without a declared input raises naming its index.
function M.from_table(rows, opts)
  if type(rows) ~= "table" then
    check.fail("dataset.from_table", 1, "list of tables expected, got " .. type(rows))
  end
  opts = check_opts(opts, "dataset.from_table")
  local list = {}
  for i, row in ipairs(rows) do
    if type(row) ~= "table" then
      check.fail("dataset.from_table", 1, string.format("row %d is a %s, not a table", i, type(row)))
    end
    local inputs = opts.inputs
    if not inputs and getmetatable(row) == prediction.Example then inputs = row:input_names() end
    local ok, ex = pcall(to_example, row, inputs, "dataset.from_table: row " .. i)
    if not ok then check.misuse(ex) end
    list[i] = ex
  end
  return list
end

M.format_of = format_of
M.normalise = normalise

return M
