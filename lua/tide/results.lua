--- Per-example result files: one row per finished example, appended and flushed as
-- it finishes, in JSONL or CSV; read back for resuming a run and merging shards.
--
-- A row: {index, id, inputs, outputs, score, error = {kind, message} | nil, latency,
-- cached, usage = {input, output, total, calls, cache_hits}, cost, dataset_size}.
-- `index` is the example's place in the whole dataset (1-based) and `id` a digest of
-- its fields, so a resumed run can tell its own rows from another dataset's.
-- In CSV, inputs and outputs are JSON texts in one column each (the only lossless
-- way to keep any program's outputs in a fixed set of columns).
local cjson = require "cjson"
local core = require "tide.core"
local cache = require "tide.cache"
local csv = require "tide.csv"
local redact = require "tide.redact"

local json = cjson.new()          -- our own settings, not the shared module's
json.encode_sparse_array(true)

local M = {}

M.CSV_COLUMNS = {"index", "id", "score", "error_kind", "error", "latency", "cached", "calls",
  "input_tokens", "output_tokens", "cost", "inputs", "outputs", "dataset_size"}

--- The format of a results path: "csv" for .csv, else "jsonl".
function M.format_of(path)
  return path:lower():match("%.csv$") and "csv" or "jsonl"
end

--- A stable short digest of an example's fields.
function M.example_id(ex)
  local fields = {}
  for k, v in pairs(ex) do fields[tostring(k)] = v end
  return core.sha256(cache.canonical(fields)):sub(1, 16)
end

-- ---- values any program returns, made JSON-safe --------------------------------------

local function plain(v, seen, depth)
  local t = type(v)
  if t == "string" or t == "boolean" then return v end
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return tostring(v) end
    return v
  end
  if t ~= "table" then return v == nil and cjson.null or tostring(v) end
  if seen[v] or depth > 20 then return "<cycle>" end
  seen[v] = true
  local out = {}
  local n = #v
  local is_list = n > 0
  for k in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 or k > n then is_list = false break end
  end
  if is_list then
    for i = 1, n do out[i] = plain(v[i], seen, depth + 1) end
  else
    for k, x in pairs(v) do out[tostring(k)] = plain(x, seen, depth + 1) end
  end
  seen[v] = nil
  return out
end

--- Any Lua value (a Prediction, a table, a number...) as a JSON-safe value.
function M.plain(v)
  return plain(v, {}, 0)
end

-- ---- secrets ---------------------------------------------------------------------------

--- A function that replaces every known secret (the providers' key variables, plus
-- `extra`) inside a string or a table's strings with "[redacted]".  A provider's
-- error text or a program's own message may quote a key; a results file must never
-- hold one.
function M.redactor(extra, env)
  local secrets = redact.known_keys(env)
  for _, v in ipairs(extra or {}) do secrets[#secrets + 1] = v end
  return function(v) return redact.value(v, secrets) end
end

-- ---- encoding -------------------------------------------------------------------------

local function csv_fields(row)
  local u = row.usage or {}
  local err = row.error
  return {
    row.index, row.id, row.score, err and err.kind or "", err and err.message or "",
    row.latency and string.format("%.3f", row.latency) or "", tostring(row.cached == true),
    u.calls or 0, u.input or 0, u.output or 0, row.cost or 0,
    json.encode(row.inputs or {}), json.encode(row.outputs == nil and cjson.null or row.outputs),
    row.dataset_size or "",
  }
end

local JSON_KEYS = {"index", "id", "score", "error", "inputs", "outputs", "latency", "cached",
  "usage", "cost", "dataset_size"}

--- A row as one line of the format, with its newline.
function M.encode(row, format)
  if format == "csv" then return csv.encode_row(csv_fields(row), #M.CSV_COLUMNS) end
  -- keys in a fixed order, the ones a reader scans for first
  local parts = {}
  for _, k in ipairs(JSON_KEYS) do
    local v = row[k]
    if k == "latency" and v then v = math.floor(v * 1e4 + 0.5) / 1e4 end
    parts[#parts + 1] = json.encode(k) .. ":" .. json.encode(v == nil and cjson.null or v)
  end
  return "{" .. table.concat(parts, ",") .. "}\n"
end

local function number(s)
  if s == nil or s == "" then return nil end
  local n = tonumber(s)
  return n and (math.tointeger(n) or n)
end

local function normalise(v)
  if v == cjson.null then return nil end
  if math.type(v) == "float" then return math.tointeger(v) or v end
  if type(v) == "table" then
    for k, x in pairs(v) do v[k] = normalise(x) end
  end
  return v
end

local function decode_csv_row(header, fields)
  local r = {}
  for i, name in ipairs(header) do r[name] = fields[i] end
  local row = {
    index = number(r.index), id = r.id, score = number(r.score),
    latency = number(r.latency), cached = r.cached == "true", cost = number(r.cost),
    usage = {calls = number(r.calls) or 0, input = number(r.input_tokens) or 0,
             output = number(r.output_tokens) or 0},
    dataset_size = number(r.dataset_size),
  }
  row.usage.total = row.usage.input + row.usage.output
  if r.error_kind and r.error_kind ~= "" then row.error = {kind = r.error_kind, message = r.error} end
  local ok, inputs = pcall(json.decode, r.inputs or "{}")
  row.inputs = ok and normalise(inputs) or {}
  local ok2, outputs = pcall(json.decode, r.outputs or "null")
  if ok2 then row.outputs = normalise(outputs) else row.outputs = r.outputs end
  return row
end

-- ---- reading -----------------------------------------------------------------------------

--- results.read(path) → rows (in file order), or nil when there is no such file.
-- A last line cut short (the run died while writing it) is dropped and counted in
-- the second value; a bad row anywhere else raises naming its line.
function M.read(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  local rows, dropped = {}, 0
  local format = M.format_of(path)
  if format == "csv" then
    local pos = 1
    local function next_line()
      if pos > #text then return nil end
      local nl = text:find("\n", pos, true)
      local line
      if nl then line, pos = text:sub(pos, nl - 1), nl + 1
      else line, pos = text:sub(pos), #text + 1 end
      return line
    end
    local records = csv.records(next_line)
    local ok, header = pcall(records)
    if not ok then error(path .. ":" .. header, 0) end
    if not header then return rows, 0 end
    while true do
      local okr, fields, line = pcall(records)
      if not okr then
        -- a quoted field left open can only be the tail of a row cut short
        if fields:find("never closed", 1, true) then dropped = dropped + 1 break end
        error(path .. ":" .. fields, 0)
      end
      if not fields then break end
      if #fields ~= #header or number(fields[1]) == nil then
        if pos > #text and text:sub(-1) ~= "\n" then dropped = dropped + 1 break end
        error(string.format("%s:%d: not a result row", path, line), 0)
      end
      rows[#rows + 1] = decode_csv_row(header, fields)
    end
    if #rows > 0 and text:sub(-1) ~= "\n" and dropped == 0 then   -- last row unterminated
      rows[#rows] = nil
      dropped = 1
    end
    return rows, dropped
  end
  local lineno = 0
  local pos = 1
  while pos <= #text do
    local nl = text:find("\n", pos, true)
    local line = text:sub(pos, (nl or #text + 1) - 1)
    pos = (nl or #text) + 1
    lineno = lineno + 1
    if line:find("%S") then
      local ok, row = pcall(json.decode, line)
      if not ok or type(row) ~= "table" or math.type(normalise(row.index)) ~= "integer" then
        if pos > #text then dropped = dropped + 1 break end
        error(string.format("%s:%d: not a result row", path, lineno), 0)
      end
      rows[#rows + 1] = normalise(row)
    end
  end
  return rows, dropped
end

--- results.merge(paths, warn) → the rows of several result files (the shards of one
-- run) in dataset order, the dataset's size, and the indices no file holds.  A row in
-- two files is kept once (a finished one over a failed one); two different examples
-- at one index, or rows of datasets of different sizes, raise.
function M.merge(paths, warn)
  local by_index, order = {}, {}
  local size
  for _, path in ipairs(paths) do
    local rows, dropped = M.read(path)
    if not rows then error("no such file: " .. path, 0) end
    if dropped > 0 and warn then warn(path .. ": dropped a last row cut short") end
    for _, row in ipairs(rows) do
      size = size or row.dataset_size
      if row.dataset_size and row.dataset_size ~= size then
        error(string.format("%s: row %d is from a dataset of %d rows, the others of %d", path,
          row.index, row.dataset_size, size), 0)
      end
      local old = by_index[row.index]
      if old and old.id ~= row.id then
        error(string.format("%s: row %d is a different example than in another file", path,
          row.index), 0)
      end
      if not old then order[#order + 1] = row.index end
      if not old or (old.error and not row.error) then by_index[row.index] = row end
    end
  end
  table.sort(order)
  local rows, missing = {}, {}
  for i, index in ipairs(order) do rows[i] = by_index[index] end
  for i = 1, size or 0 do
    if not by_index[i] then missing[#missing + 1] = i end
  end
  return rows, size, missing
end

-- ---- writing -------------------------------------------------------------------------------

local Writer = {}
Writer.__index = Writer

--- results.open(path, {append = bool, format = "jsonl" | "csv"}) → a writer.
-- With append the existing rows stay; a CSV header is written when the file is new
-- or empty.
function M.open(path, opts)
  opts = opts or {}
  local format = opts.format or M.format_of(path)
  local f, err = io.open(path, opts.append and "a" or "w")
  if not f then error("tide.Evaluate: cannot write results: " .. err, 0) end
  if format == "csv" and f:seek("end") == 0 then
    f:write(csv.encode_row(M.CSV_COLUMNS))
    f:flush()
  end
  return setmetatable({file = f, format = format, path = path, rows = 0}, Writer)
end

--- Writes one row and flushes it, so a run that dies loses nothing it finished.
function Writer:write(row)
  local ok, err = self.file:write(M.encode(row, self.format))
  if ok then ok, err = self.file:flush() end
  if not ok then error("tide.Evaluate: cannot write " .. self.path .. ": " .. tostring(err), 0) end
  self.rows = self.rows + 1
end

function Writer:close()
  if self.file then
    self.file:close()
    self.file = nil
  end
end
Writer.__close = Writer.close

--- Replaces a results file by these rows (atomically: the old file or the new one,
-- never a mix), as a resumed run does to drop failed and cut-short rows.
function M.rewrite(path, rows, format)
  format = format or M.format_of(path)
  local out = {}
  if format == "csv" then out[1] = csv.encode_row(M.CSV_COLUMNS) end
  for _, row in ipairs(rows) do out[#out + 1] = M.encode(row, format) end
  local ok, err = core.write_atomic(path, table.concat(out))
  if not ok then error("tide.Evaluate: " .. err, 0) end
end

return M
