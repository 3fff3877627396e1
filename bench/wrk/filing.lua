-- wrk script: POST one filing per line, each line a distinct 身份证号 (never repeated in a run).
local dir = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(dir .. "common.lua").install(true)
