-- wrk script: GET pages with the token of each line (the reviewer queue and its bare baseline), cycling.
local dir = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(dir .. "common.lua").install(false)
