-- luacheck's settings for `make lint` (luacheck lua spec scripts fuzz).
std = "lua54"
-- the library's longest lines; the C and the README wrap near the same width
max_line_length = 120
exclude_files = {"build*/**", "scripts/bench/node*/**"}

-- Specs quote whole error messages, command lines and wire bodies so that a failure
-- can be found with grep: their lines may run longer, and lines inside long strings
-- (JSON fixtures) are not counted.  `ok, err = pcall(...)` may leave ok unread where the
-- assertions on err prove the call failed.
files["spec"] = {std = "+busted", max_code_line_length = 140, max_string_line_length = false,
                 ignore = {"311/ok"}}

-- Deliberate patterns, one file each (a finding elsewhere still fails the lint):
-- a Python line continuation is an escape that adds nothing
files["lua/tide/adapters/coerce.lua"] = {ignore = {"542"}}
-- the first dropped count starts the note
files["lua/tide/providers/common.lua"] = {ignore = {"321/note"}}
-- the type reader's fail raises a type error, not the signature error of the outer fail
files["lua/tide/signature.lua"] = {ignore = {"431/fail"}}
-- `local n, s = r.n, nil`: s is set on every branch below
files["lua/tide/sse.lua"] = {ignore = {"311/s"}}
-- a to-be-closed guard is used by going out of scope
files["spec/task_spec.lua"] = {ignore = {"211/guard"}}
-- p = nil lets the collector free the parser whose memory is measured
files["spec/sse_spec.lua"] = {ignore = {"311/p"}}
-- a for loop that breaks after the first piece: leaving a stream early is the subject
files["spec/stream_spec.lua"] = {ignore = {"512", "431/cjson"}}
