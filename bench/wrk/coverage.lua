-- wrk script: coverage questions (POST bodies or GET query strings), cycling over the sample.
local dir = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(dir .. "common.lua").install(false)
