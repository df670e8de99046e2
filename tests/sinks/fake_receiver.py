#!/usr/bin/env python3
"""A scripted HTTP receiver for the forwarding tests: answers each POST with
the next status of its script (the last one repeats), gunzips bodies that say
Content-Encoding: gzip, and appends one line per request to requests.log:
"<monotonic seconds> <status> <lines in the body>". Lines of answered-2xx
requests go to accepted.lp.

usage: fake_receiver.py PORT STATUS[,STATUS...]   e.g. 503,503,429,204
A 429 carries Retry-After: 1. STATUS/SECONDS answers after that long (the
request is logged when it arrives, its lines kept when it is answered)."""
import gzip
import http.server
import sys
import time

port = int(sys.argv[1])
script = [(int(s.split("/")[0]), float(s.split("/")[1]) if "/" in s else 0.0)
          for s in sys.argv[2].split(",")]
count = 0


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        global count
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        status, delay = script[min(count, len(script) - 1)]
        count += 1
        lines = body.count(b"\n")
        with open("requests.log", "a") as f:
            f.write("%.3f %d %d\n" % (time.monotonic(), status, lines))
        time.sleep(delay)
        if 200 <= status < 300:
            with open("accepted.lp", "ab") as f:
                f.write(body)
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
