-- wrk script: GET /parcels/at for points read from the file named by POINTS (one "lon lat" a
-- line, interior points of real parcels), each thread starting at its own place in the list.
-- URL_FORMAT replaces the path (string.format with lon, lat, lon, lat), for peers such as tipg
-- that take the point as a zero-size bbox.
local points = {}
local counter = 0

local function load()
  for line in io.lines(os.getenv("POINTS")) do
    local lon, lat = line:match("(%S+)%s+(%S+)")
    local format = os.getenv("URL_FORMAT") or "/parcels/at?lon=%s&lat=%s"
    points[#points + 1] = string.format(format, lon, lat, lon, lat)
  end
end

function init(args)
  -- LANDDB_KEY: the API key sent with every request (landdb answers nothing without one).
  local key = os.getenv("LANDDB_KEY")
  if key then wrk.headers["Authorization"] = "Bearer " .. key end
  load()
  counter = math.random(#points)
end

function request()
  counter = counter % #points + 1
  return wrk.format("GET", points[counter])
end

function done(summary, latency, requests)
  io.write(string.format("p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
