-- wrk script: GET /collections/parcels/items?bbox=… for ~200 m boxes around the points read
-- from the file named by POINTS (one "lon lat" a line). URL_FORMAT replaces the path
-- (string.format with west, south, east, north), for peers such as tipg.
local boxes = {}
local counter = 0

function init(args)
  -- LANDDB_KEY: the API key sent with every request (landdb answers nothing without one).
  local key = os.getenv("LANDDB_KEY")
  if key then wrk.headers["Authorization"] = "Bearer " .. key end
  for line in io.lines(os.getenv("POINTS")) do
    local lon, lat = line:match("(%S+)%s+(%S+)")
    lon, lat = tonumber(lon), tonumber(lat)
    local format = os.getenv("URL_FORMAT") or "/collections/parcels/items?bbox=%.7f,%.7f,%.7f,%.7f"
    boxes[#boxes + 1] = string.format(format,
      lon - 0.000935, lat - 0.0009, lon + 0.000935, lat + 0.0009)
  end
  counter = math.random(#boxes)
end

function request()
  counter = counter % #boxes + 1
  return wrk.format("GET", boxes[counter])
end

function done(summary, latency, requests)
  io.write(string.format("p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
