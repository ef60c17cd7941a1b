-- Spreads requests round-robin over the tenants in TOKENS: one tenant per line, its token
-- and, for ROUTE=get, the id of one of its contacts ("<token> <id>"). ROUTE=list (the
-- default) lists 20 contacts; ROUTE=get reads the tenant's contact by id. A third field,
-- the tenant's schema, is sent as `x-eerp-bench-schema` (the native baseline's tenant).
local tenants = {}
for line in io.lines(os.getenv("TOKENS")) do
  local token, id, schema = line:match("^(%S+)%s*(%S*)%s*(%S*)")
  local headers = { ["authorization"] = "Bearer " .. token }
  if schema ~= "" then headers["x-eerp-bench-schema"] = schema end
  tenants[#tenants + 1] = { headers = headers, id = id }
end
local get = os.getenv("ROUTE") == "get"
local counter = 0
local offset = math.random(1, #tenants)
request = function()
  counter = counter + 1
  local tenant = tenants[((counter + offset) % #tenants) + 1]
  local path = "/api/v1/crm/contacts?limit=20"
  if get then path = "/api/v1/crm/contacts/" .. tenant.id end
  return wrk.format("GET", path, tenant.headers)
end
