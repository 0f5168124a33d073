--- tide.retrieve: small in-memory nearest-neighbour search over embeddings,
-- for few-shot KNN demos and RAG passages.
--
--   local knn = tide.retrieve.knn(embedder, trainset, {fields = {"question"}})
--   for _, hit in ipairs(knn:search("What is the capital of France?", 3)) do
--     print(hit.score, hit.item.question)
--   end
--
-- The corpus is embedded once, on the first search (in batches, through the
-- embedder's cache; searches arriving meanwhile wait for it); each search
-- embeds the query and ranks every item by cosine similarity, best first, ties
-- in corpus order.  Linear in the corpus: meant for the thousands of examples
-- a program's demos come from, not for a vector database's millions.
local core = require "tide.core"
local check = require "tide.check"

local M = {}

local Knn = {}
Knn.__index = Knn

-- The text an item is embedded by: a string is itself; a table its `fields`
-- as DSPy's KNN writes them ("name: value" joined by " | "), or opts.text(item).
local function text_of(opts, item, i)
  if opts.text then
    local t = opts.text(item)
    if type(t) ~= "string" then
      check.fail("knn", "opts.text", string.format("returned %s for corpus[%d]: a string expected",
        type(t), i))
    end
    return t
  end
  if type(item) == "string" then return item end
  if type(item) ~= "table" or not opts.fields then
    check.fail("knn", 2, string.format("corpus[%d] is a %s: strings, or tables with "
      .. "opts.fields or opts.text, expected", i, type(item)))
  end
  local parts = {}
  for _, f in ipairs(opts.fields) do
    local v = item[f]
    if v ~= nil then parts[#parts + 1] = f .. ": " .. tostring(v) end
  end
  if #parts == 0 then
    check.fail("knn", 2, string.format("corpus[%d] has none of the fields %s", i,
      table.concat(opts.fields, ", ")))
  end
  return table.concat(parts, " | ")
end

local function norm(v)
  local s = 0
  for i = 1, #v do s = s + v[i] * v[i] end
  return math.sqrt(s)
end

--- knn(embedder, corpus, opts) → a searcher.  corpus: a list of strings or of
-- tables (Examples) with opts.fields = {"question", ...} or opts.text =
-- function(item) → string.
function M.knn(embedder, corpus, opts)
  if type(embedder) ~= "table" or type(embedder.embed) ~= "function" then
    check.fail("knn", 1, "a tide.Embedder expected, got " .. type(embedder))
  end
  check.type("knn", 2, corpus, "table")
  opts = check.type("knn", 3, opts, "table", true) or {}
  check.type("knn", "opts.fields", opts.fields, "table", true)
  if opts.text ~= nil and type(opts.text) ~= "function" then
    check.fail("knn", "opts.text", "a function(item) → string expected, got " .. type(opts.text))
  end
  if #corpus == 0 then check.fail("knn", 2, "an empty corpus: nothing to search") end
  local texts = {}
  for i, item in ipairs(corpus) do texts[i] = text_of(opts, item, i) end
  return setmetatable({embedder = embedder, corpus = corpus, texts = texts,
                       once = core.semaphore(1)}, Knn)
end

--- The corpus's vectors and their norms, made on the first search; searches
-- arriving meanwhile wait for it rather than embed the corpus again.
function Knn:_index()
  if self.vectors == nil then
    self.once:with(function()
      if self.vectors ~= nil then return end
      local vectors = self.embedder:embed(self.texts)
      local norms = {}
      for i, v in ipairs(vectors) do norms[i] = norm(v) end
      self.vectors, self.norms = vectors, norms
    end)
  end
  return self.vectors, self.norms
end

--- knn:search(query, k) → up to k (default 3) {item, score, index}, the most
-- similar first (score: cosine similarity, -1..1).
function Knn:search(query, k)
  check.type("search", 1, query, "string")
  k = math.tointeger(check.number("search", 2, k, {integer = true, min = 1}, true) or 3)
  local vectors, norms = self:_index()
  local q = self.embedder:embed(query)
  local qn = norm(q)
  local scored = {}
  for i, v in ipairs(vectors) do
    if #v ~= #q then
      check.misuse(string.format("knn:search: the query's vector has %d dimensions, the corpus's %d",
        #q, #v))
    end
    local dot = 0
    for j = 1, #q do dot = dot + q[j] * v[j] end
    local d = qn * norms[i]
    scored[i] = {index = i, item = self.corpus[i], score = d > 0 and dot / d or 0}
  end
  table.sort(scored, function(a, b)
    if a.score ~= b.score then return a.score > b.score end
    return a.index < b.index
  end)
  local out = {}
  for i = 1, math.min(k, #scored) do out[i] = scored[i] end
  return out
end

--- knn(query, k): the items alone, best first (DSPy's KNN returns the demos).
function Knn:__call(query, k)
  local items = {}
  for i, hit in ipairs(self:search(query, k)) do items[i] = hit.item end
  return items
end

return M
