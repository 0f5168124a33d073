--- Per-example result files: one row per finished example, appended and flushed as
-- it finishes, in JSONL or CSV; read back for resuming a run and merging shards.
--
-- A row: {index, id, inputs, outputs, labels, score, error = {kind, message} | nil,
-- latency, cached, usage = {input, output, total, calls, cache_hits}, cost,
-- dataset_size}.  `index` is the example's place in the whole dataset (1-based) and
-- `id` a digest of its fields, so a resumed run can tell its own rows from another
-- dataset's; `labels` are the example's other (gold) fields.
--
-- In CSV each field has its own column: `input.NAME`, `output.NAME`, `label.NAME`
-- (`output` alone when a program returns a single value or a list).  A cell holds a
-- string as it is and anything else as JSON (numbers, booleans, nested tables), as a
-- spreadsheet expects.  CSV has no types, so a cell reads back as JSON when it parses
-- as JSON ("85" → 85, "true" → true), else as a string, and an empty cell as absent:
-- JSONL is the format that keeps every value's type.  A new field seen mid-run widens
-- the header: the file is rewritten once with the new column.  Files of the older layout (all the
-- inputs and outputs as JSON in two columns) are still read, and converted when a
-- run appends to them.
local cjson = require "cjson"
local core = require "tide.core"
local cache = require "tide.cache"
local csv = require "tide.eval.csv"
local normalise = require("tide.eval.dataset").normalise
local redact = require "tide.redact"

local json = cjson.new()          -- our own settings, not the shared module's
json.encode_sparse_array(true)

local M = {}

-- The columns before and after the fields'.
local HEAD = {"index", "id", "score", "error_kind", "error"}
local TAIL = {"latency", "cached", "calls", "input_tokens", "output_tokens", "cost", "dataset_size"}
--- The format of a results path: "jsonl" or "csv" by its extension, nil for others.
function M.format_of(path)
  local ext = path:lower():match("%.(%w+)$")
  if ext == "csv" then return "csv" end
  if ext == "jsonl" then return "jsonl" end
  return nil
end

--- A stable short digest of an example's fields.
function M.example_id(ex)
  local fields = {}
  for k, v in pairs(ex) do fields[tostring(k)] = v end
  return core.sha256(cache.canonical(fields)):sub(1, 16)
end

-- ---- values any program returns, made JSON-safe --------------------------------------

-- JSON's null (cjson.null) counts as absent: in a table the key is dropped, alone it
-- is nil; never the text "userdata: (nil)".
local function plain(v, seen, depth)
  local t = type(v)
  if t == "string" or t == "boolean" then return v end
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return tostring(v) end
    return v
  end
  if v == nil or v == cjson.null then return nil end
  if t ~= "table" then return tostring(v) end
  if seen[v] or depth > 20 then return "<cycle>" end
  seen[v] = true
  local out = {}
  local n = #v
  local is_list = n > 0
  for k in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 or k > n then is_list = false break end
  end
  if is_list then
    for i = 1, n do
      local x = plain(v[i], seen, depth + 1)
      if x == nil then x = cjson.null end   -- a list keeps its places
      out[i] = x
    end
  else
    for k, x in pairs(v) do out[tostring(k)] = plain(x, seen, depth + 1) end
  end
  seen[v] = nil
  return out
end

--- Any Lua value (a Prediction, a table, a number...) as a JSON-safe value; nil and
-- JSON's null give nil.
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

-- ---- CSV cells and columns -------------------------------------------------------------

--- A value as a CSV cell: a string as it is, anything else as JSON.
local function cell(v)
  if v == nil or v == cjson.null then return "" end
  if type(v) == "string" then return v end
  return json.encode(v)
end

local function uncell(s)
  if s == nil or s == "" then return nil end
  local ok, v = pcall(json.decode, s)
  if ok then return normalise(v) end
  return s
end

--- Whether outputs are named fields (one column each) rather than one value.
local function is_fields(v)
  return type(v) == "table" and rawlen(v) == 0
end

local function add_fields(set, prefix, t, value)
  if type(t) ~= "table" then return end
  for k, v in pairs(t) do set[prefix .. "." .. tostring(k)] = value(v) end
end

local function always(_) return true end

--- add_columns(set, inputs, labels): adds the columns these fields need to `set`
-- (the dataset's columns, known before any row, so the first header has them all).
function M.add_columns(set, inputs, labels)
  add_fields(set, "input", inputs, always)
  add_fields(set, "label", labels, always)
  return set
end

--- A row's field cells: column name → text.
local function field_cells(row)
  local cells = {}
  add_fields(cells, "input", row.inputs, cell)
  add_fields(cells, "label", row.labels, cell)
  if is_fields(row.outputs) then
    add_fields(cells, "output", row.outputs, cell)
  elseif row.outputs ~= nil then
    cells.output = cell(row.outputs)
  end
  return cells
end

local PREFIX_RANK = {input = 1, output = 2, label = 3}

local function by_field(a, b)
  local pa, na = a:match("^([^.]*)%.?(.*)$")
  local pb, nb = b:match("^([^.]*)%.?(.*)$")
  if pa ~= pb then return PREFIX_RANK[pa] < PREFIX_RANK[pb] end
  return na < nb
end

--- The header for these field columns (a set of names): HEAD, fields, TAIL.
local function columns_of(set)
  local fields = {}
  for name in pairs(set) do fields[#fields + 1] = name end
  table.sort(fields, by_field)
  local cols = table.move(HEAD, 1, #HEAD, 1, {})
  table.move(fields, 1, #fields, #cols + 1, cols)
  table.move(TAIL, 1, #TAIL, #cols + 1, cols)
  return cols
end

local function csv_line(row, cells, columns)
  local u = row.usage or {}
  local err = row.error
  local fixed = {
    index = row.index, id = row.id, score = row.score,
    error_kind = err and err.kind or "", error = err and err.message or "",
    latency = row.latency and string.format("%.3f", row.latency) or "",
    cached = tostring(row.cached == true), calls = u.calls or 0, input_tokens = u.input or 0,
    output_tokens = u.output or 0, cost = row.cost or 0, dataset_size = row.dataset_size or "",
  }
  local fields = {}
  for i, name in ipairs(columns) do
    local v = fixed[name]
    if v == nil then v = cells[name] or "" end
    fields[i] = v
  end
  return csv.encode_row(fields, #columns)
end

-- ---- JSONL -------------------------------------------------------------------------------

local JSON_KEYS = {"index", "id", "score", "error", "inputs", "outputs", "labels", "latency",
  "cached", "usage", "cost", "dataset_size"}

--- A row as one JSONL line, with its newline.
local function json_line(row)
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

--- A CSV record → a row.  The older layout kept inputs and outputs as JSON texts in
-- columns `inputs` and `outputs`, and no labels.
local function decode_csv_row(header, fields)
  local r, inputs, outputs, labels = {}, {}, {}, {}
  local by_prefix = {input = inputs, output = outputs, label = labels}
  for i, name in ipairs(header) do
    local prefix, field = name:match("^(%a+)%.(.+)$")
    local t = prefix and by_prefix[prefix]
    if t then t[field] = uncell(fields[i]) else r[name] = fields[i] end
  end
  local row = {
    index = number(r.index), id = r.id, score = number(r.score),
    latency = number(r.latency), cached = r.cached == "true", cost = number(r.cost),
    usage = {calls = number(r.calls) or 0, input = number(r.input_tokens) or 0,
             output = number(r.output_tokens) or 0},
    dataset_size = number(r.dataset_size),
    inputs = inputs, labels = labels,
  }
  row.usage.total = row.usage.input + row.usage.output
  if r.error_kind and r.error_kind ~= "" then row.error = {kind = r.error_kind, message = r.error} end
  if not row.error then
    if r.output ~= nil and r.output ~= "" then row.outputs = uncell(r.output) else row.outputs = outputs end
  end
  if r.inputs ~= nil then   -- the older layout
    local ok, v = pcall(json.decode, r.inputs)
    row.inputs = ok and type(v) == "table" and normalise(v) or {}
    local ok2, out = pcall(json.decode, r.outputs or "null")
    if ok2 then row.outputs = normalise(out) else row.outputs = r.outputs end
    row.labels = nil
  end
  return row
end

-- ---- reading -----------------------------------------------------------------------------

--- An iterator over the lines of a text (without their newlines), and a function
-- telling whether the last line was read.
local function text_lines(text)
  local pos = 1
  local function next_line()
    if pos > #text then return nil end
    local nl = text:find("\n", pos, true)
    local line
    if nl then line, pos = text:sub(pos, nl - 1), nl + 1
    else line, pos = text:sub(pos), #text + 1 end
    return line
  end
  return next_line, function() return pos > #text end
end

--- An iterator of (fields, line) over the CSV records of a text.
local function text_records(text)
  local next_line, at_end = text_lines(text)
  return csv.records(next_line), at_end
end

local function read_csv(path, text)
  local rows, dropped = {}, 0
  local records, at_end = text_records(text)
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
      if at_end() and text:sub(-1) ~= "\n" then dropped = dropped + 1 break end
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

local function read_jsonl(path, text)
  local rows, dropped = {}, 0
  local lineno = 0
  local next_line, at_end = text_lines(text)
  for line in next_line do
    lineno = lineno + 1
    if line:find("%S") then
      local ok, row = pcall(json.decode, line)
      if not ok or type(row) ~= "table" or math.type(normalise(row.index)) ~= "integer" then
        if at_end() then dropped = dropped + 1 break end
        error(string.format("%s:%d: not a result row", path, lineno), 0)
      end
      rows[#rows + 1] = normalise(row)
    end
  end
  return rows, dropped
end

--- results.read(path) → rows (in file order), or nil when there is no such file.
-- A last line cut short (the run died while writing it) is dropped and counted in
-- the second value; a bad row anywhere else raises naming its line.  A file that is
-- not .csv is read as JSONL.
function M.read(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  if M.format_of(path) == "csv" then return read_csv(path, text) end
  return read_jsonl(path, text)
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

--- A set of the field columns in a header, or nil when the header is of the older
-- layout (or not a results header at all).
local function field_set(header)
  local set = {}
  for _, name in ipairs(header) do
    if name == "inputs" then return nil end
    local prefix = name:match("^(%a+)%.") or (name == "output" and "output")
    if prefix then
      if not PREFIX_RANK[prefix] then return nil end
      set[name] = true
    end
  end
  return set
end

local function union(a, b)
  local set = {}
  for k in pairs(a or {}) do set[k] = true end
  for k in pairs(b or {}) do set[k] = true end
  return set
end

--- The CSV text of rows under one header (their columns and `hint`'s), and the header.
local function csv_text(rows, hint)
  local set = union(hint)
  local cells = {}
  for i, row in ipairs(rows) do
    cells[i] = field_cells(row)
    for name in pairs(cells[i]) do set[name] = true end
  end
  local columns = columns_of(set)
  local out = {csv.encode_row(columns)}
  for i, row in ipairs(rows) do out[i + 1] = csv_line(row, cells[i], columns) end
  return table.concat(out), columns
end

local function write_file(path, text)
  local ok, err = core.write_atomic(path, text)
  if not ok then error("tide.Evaluate: " .. err, 0) end
end

--- Replaces a results file by these rows (atomically: the old file or the new one,
-- never a mix), as a resumed run does to drop failed and cut-short rows.  `hint`: a
-- set of CSV columns to have even if no row fills them.  → the CSV header.
function M.rewrite(path, rows, format, hint)
  format = format or M.format_of(path) or "jsonl"
  if format == "csv" then
    local text, columns = csv_text(rows, hint)
    write_file(path, text)
    return columns
  end
  local out = {}
  for i, row in ipairs(rows) do out[i] = json_line(row) end
  write_file(path, table.concat(out))
end

local Writer = {}
Writer.__index = Writer

--- The header of the CSV file at path, or nil when it is missing or empty.
local function header_of(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local ok, header = pcall(csv.records(f:lines()))
  f:close()
  if not ok then error(path .. ":" .. header, 0) end
  return header
end

local function set_of(list)
  local set = {}
  for _, name in ipairs(list) do set[name] = true end
  return set
end

--- Opens (or reopens after a rewrite) the file for appending, or anew.
function Writer:open_file(mode)
  local f, err = io.open(self.path, mode)
  if not f then error("tide.Evaluate: cannot write results: " .. err, 0) end
  self.file = f
end

--- The columns of a CSV file being appended to; one of the older layout is rewritten
-- in this one first.
function Writer:adopt_header()
  local header = header_of(self.path)
  if header == nil then return end
  if field_set(header) == nil then
    header = M.rewrite(self.path, M.read(self.path), "csv", self.hint)
  end
  self.columns, self.colset = header, set_of(header)
end

--- results.open(path, {append = bool, format = "jsonl" | "csv", columns = set}) → a
-- writer.  With append the existing rows stay.  A CSV header is written with the
-- first row, holding `columns` (add_columns: the dataset's fields) and the row's.
function M.open(path, opts)
  opts = opts or {}
  local self = setmetatable({format = opts.format or M.format_of(path) or "jsonl", path = path,
    rows = 0, hint = opts.columns}, Writer)
  if self.format == "csv" and opts.append then self:adopt_header() end
  self:open_file(opts.append and "a" or "w")
  return self
end

--- A row with a field the header lacks: the file is rewritten with the new column.
function Writer:widen(row)
  self.file:close()
  self.file = nil
  local rows = M.read(self.path) or {}
  rows[#rows + 1] = row
  local columns = M.rewrite(self.path, rows, "csv", self.hint)
  self.columns, self.colset = columns, set_of(columns)
  self:open_file("a")
end

--- The text a row adds to the file ("" when it widened the file instead).
function Writer:text(row)
  if self.format ~= "csv" then return json_line(row) end
  local cells = field_cells(row)
  if self.columns == nil then
    local text, columns = csv_text({row}, self.hint)
    self.columns, self.colset = columns, set_of(columns)
    return text
  end
  for name in pairs(cells) do
    if not self.colset[name] then
      self:widen(row)
      return ""
    end
  end
  return csv_line(row, cells, self.columns)
end

--- Writes one row and flushes it, so a run that dies loses nothing it finished.
function Writer:write(row)
  local text = self:text(row)
  local ok, err = self.file:write(text)
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

return M
