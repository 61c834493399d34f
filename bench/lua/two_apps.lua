-- Mixed load on the two-apps site: alternate between the two groups' mounts.
local paths = { "/api/wsgi/one/", "/api/wsgi/two/" }
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n % 2) + 1])
end
