-- Spreads requests over the tenants whose tokens are in TOKENS (one per line).
local tokens = {}
for line in io.lines(os.getenv("TOKENS")) do tokens[#tokens + 1] = line end
local counter = 0
local offset = math.random(1, #tokens)
request = function()
  counter = counter + 1
  local token = tokens[((counter + offset) % #tokens) + 1]
  return wrk.format("GET", "/api/v1/crm/contacts?limit=20", { ["authorization"] = "Bearer " .. token })
end
