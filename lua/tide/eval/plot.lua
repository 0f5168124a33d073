--- Plots as inline SVG text for the HTML report: a histogram (vertical bars), a
-- horizontal bar chart and a matrix of shaded cells.  Pure formatting: numbers in,
-- an <svg> string out, every label escaped; the page needs no script to show them
-- and nothing from the network.  Each bar carries a <title> (a tooltip).
local escape = require("tide.eval.html_escape").escape

local M = {}

-- The plots' colours; the report's spec looks for them in a screenshot.
M.COLOURS = {score = "#4e79a7", latency = "#f28e2b", error = "#e15759", critic = "#59a14f",
  spread = "#b07aa1"}

local AXIS = "#555555"

local function num(v)
  return string.format("%.1f", v)
end

local function text(x, y, s, attrs)
  return string.format('<text x="%s" y="%s"%s>%s</text>', num(x), num(y), attrs or "", escape(s))
end

--- histogram(bins, {colour, width, height, label}) → an SVG of one bar per bin; a
-- bin is {label = text, count = n, title = tooltip text}.  Counts above the bars
-- while they fit, and every k-th bin's label below so the labels never overlap.
function M.histogram(bins, opts)
  local width, height = opts.width or 560, opts.height or 200
  local left, right, top, bottom = 44, 8, 18, 34
  local plot_w, plot_h = width - left - right, height - top - bottom
  local max = 0
  for _, b in ipairs(bins) do if b.count > max then max = b.count end end
  local n = math.max(#bins, 1)
  local step = plot_w / n
  local gap = step > 6 and 2 or 0
  local out = {string.format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" ' ..
    'viewBox="0 0 %d %d" role="img" aria-label="%s" class="plot">', width, height, width, height,
    escape(opts.label or "histogram"))}
  local function add(s) out[#out + 1] = s end
  add(string.format('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s"/>', left, top + plot_h,
    left + plot_w, top + plot_h, AXIS))
  add(string.format('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s"/>', left, top, left,
    top + plot_h, AXIS))
  add(text(left - 4, top + 4, tostring(max), ' text-anchor="end" font-size="11"'))
  add(text(left - 4, top + plot_h, "0", ' text-anchor="end" font-size="11"'))
  local label_every = math.max(1, math.ceil(n * 48 / plot_w))
  for i, b in ipairs(bins) do
    local x = left + (i - 1) * step
    local h = max > 0 and b.count / max * plot_h or 0
    if b.count > 0 and h < 1 then h = 1 end   -- a bin that holds something shows
    add(string.format('<rect x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s</title></rect>',
      num(x + gap / 2), num(top + plot_h - h), num(step - gap), num(h), opts.colour,
      escape(b.title or (b.label .. ": " .. b.count))))
    if b.count > 0 and step >= 18 then
      add(text(x + step / 2, top + plot_h - h - 3, tostring(b.count),
        ' text-anchor="middle" font-size="10"'))
    end
    if (i - 1) % label_every == 0 then
      add(text(x + step / 2, top + plot_h + 14, b.label, ' text-anchor="middle" font-size="11"'))
    end
  end
  if opts.xlabel then
    add(text(left + plot_w / 2, height - 4, opts.xlabel, ' text-anchor="middle" font-size="11" fill="#333"'))
  end
  add("</svg>")
  return table.concat(out)
end

--- hbars(items, {colour, width, label}) → an SVG of one horizontal bar per item
-- {label, value, text (shown after the bar)}, scaled to the largest value.
function M.hbars(items, opts)
  local width, row = opts.width or 560, 22
  local label_w, value_w = 170, 70
  local bar_w = width - label_w - value_w
  local height = #items * row + 4
  local max = 0
  for _, it in ipairs(items) do if it.value > max then max = it.value end end
  local out = {string.format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" ' ..
    'viewBox="0 0 %d %d" role="img" aria-label="%s" class="plot">', width, height, width, height,
    escape(opts.label or "bars"))}
  for i, it in ipairs(items) do
    local y = (i - 1) * row + 2
    local w = max > 0 and it.value / max * bar_w or 0
    if it.value > 0 and w < 1 then w = 1 end
    local label = it.label
    if #label > 26 then label = label:sub(1, 25) .. "…" end
    out[#out + 1] = text(label_w - 6, y + 15, label, ' text-anchor="end" font-size="12"')
    out[#out + 1] = string.format('<rect x="%d" y="%d" width="%s" height="%d" fill="%s"><title>%s</title></rect>',
      label_w, y + 3, num(w), row - 6, opts.colour, escape(it.label .. ": " .. (it.text or it.value)))
    out[#out + 1] = text(label_w + w + 6, y + 15, it.text or tostring(it.value), ' font-size="12"')
  end
  out[#out + 1] = "</svg>"
  return table.concat(out)
end

--- The fill of a cell worth `share` (0..1) of the largest: white to `colour`.
local function shade(colour, share)
  local r, g, b = colour:match("#(%x%x)(%x%x)(%x%x)")
  local function mix(c) return math.floor(255 - (255 - tonumber(c, 16)) * share + 0.5) end
  return string.format("#%02x%02x%02x", mix(r), mix(g), mix(b))
end

--- matrix(names, cell, {colour, label}) → an SVG grid, names across and down;
-- cell(i, j) → value (nil: an empty cell), text.  Darker is larger.
function M.matrix(names, cell, opts)
  local n, size, label_w = #names, 64, 130
  local width, height = label_w + n * size + 4, 24 + n * size + 4
  local max = 0
  for i = 1, n do
    for j = 1, n do
      local v = cell(i, j)
      if v and v > max then max = v end
    end
  end
  local out = {string.format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" ' ..
    'viewBox="0 0 %d %d" role="img" aria-label="%s" class="plot">', width, height, width, height,
    escape(opts.label or "matrix"))}
  for j, name in ipairs(names) do
    local short = #name > 9 and name:sub(1, 8) .. "…" or name
    out[#out + 1] = text(label_w + (j - 0.5) * size, 16, short, ' text-anchor="middle" font-size="11"')
  end
  for i, name in ipairs(names) do
    local y = 24 + (i - 1) * size
    local short = #name > 18 and name:sub(1, 17) .. "…" or name
    out[#out + 1] = text(label_w - 6, y + size / 2 + 4, short, ' text-anchor="end" font-size="11"')
    for j = 1, n do
      local v, label = cell(i, j)
      local x = label_w + (j - 1) * size
      local fill = v and shade(opts.colour, max > 0 and v / max or 0) or "#f4f4f4"
      out[#out + 1] = string.format('<rect x="%d" y="%d" width="%d" height="%d" fill="%s" stroke="#ffffff">' ..
        '<title>%s</title></rect>', x, y, size, size, fill,
        escape(names[i] .. " / " .. names[j] .. ": " .. (label or "-")))
      if label then
        local dark = v and max > 0 and v / max > 0.6
        out[#out + 1] = text(x + size / 2, y + size / 2 + 4, label, ' text-anchor="middle" font-size="12"' ..
          (dark and ' fill="#ffffff"' or ""))
      end
    end
  end
  out[#out + 1] = "</svg>"
  return table.concat(out)
end

return M
