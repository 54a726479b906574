#!/usr/bin/env python3
"""Count the events of one Server-Sent Events stream until WANT have come; print the seconds
they took. Usage: sse_count.py HOST PORT PATH TOKEN WANT (scripts/bench-subscriptions)."""
import sys, time, http.client
host, port, path, token, want = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
c = http.client.HTTPConnection(host, port, timeout=30)
c.request("GET", path, headers={"Authorization": "Bearer " + token, "Accept": "text/event-stream"})
r = c.getresponse()
if r.status != 200:
    sys.exit(f"status {r.status}")
n = 0; t0 = time.monotonic(); buf = b""
while n < want:
    chunk = r.read1(65536)
    if not chunk:
        print("EOF at", n); break
    buf += chunk
    lines = buf.split(b"\n"); buf = lines.pop()
    for l in lines:
        if l.startswith(b"id:"):
            n += 1
print(f"{time.monotonic() - t0:.3f}")
if n < want:
    sys.exit(f"only {n} of {want} events came")
