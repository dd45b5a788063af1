"""Reads a landdb server's change-feed snapshot page by page, and the streamed export, each in one
process over one connection, and prints both times: `feed_read.py URL KEY ROUNDS`. The token is
found at the end of each page without parsing the page (what is measured is the server)."""
import http.client
import re
import sys
import time
from urllib.parse import urlparse

url, key, rounds = urlparse(sys.argv[1]), sys.argv[2], int(sys.argv[3])
headers = {"Authorization": f"Bearer {key}"}
conn = http.client.HTTPConnection(url.hostname, url.port)


def get(path):
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        sys.exit(f"{path}: {r.status} {body[:300]!r}")
    return body


for _ in range(rounds):
    t0 = time.perf_counter()
    after, pages, parcels = "", 0, 0
    while True:
        body = get(f"/collections/parcels/changes?limit=10000{after}")
        pages += 1
        parcels += body.count(b'{"kind":"snapshot"')
        end = body[-800:]
        after = "&after=" + re.search(rb'"next":"([0-9a-f]+)"', end).group(1).decode()
        if b'"snapshotComplete":true' in end or b'"phase":"changes"' in end:
            break
    t1 = time.perf_counter()
    exported = get("/collections/parcels/export?f=geojson").count(b'{"type":"Feature",')
    t2 = time.perf_counter()
    print(f"feed snapshot {t1 - t0:.3f} s ({parcels} parcels, {pages} pages); export {t2 - t1:.3f} s "
          f"({exported} parcels); feed/export speed {(t2 - t1) / (t1 - t0):.2f}")
