-- wrk script for a peer without a point lookup: the point as a zero-size bbox
-- (URL_FORMAT with lon, lat, lon, lat), for points read from the file named by POINTS.
local points = {}
local counter = 0

function init(args)
  for line in io.lines(os.getenv("POINTS")) do
    local lon, lat = line:match("(%S+)%s+(%S+)")
    points[#points + 1] = string.format(os.getenv("URL_FORMAT"), lon, lat, lon, lat)
  end
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
