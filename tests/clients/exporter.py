"""A small Prometheus exporter with fixed values, for test_prometheus_rw:
serves /metrics on 127.0.0.1:PORT until killed.

usage: exporter.py PORT"""
import http.server
import sys

BODY = b"""# HELP rf_test_temperature A gauge.
# TYPE rf_test_temperature gauge
rf_test_temperature{room="a b",site="lab,1"} 21.5
rf_test_temperature{room="c",site="lab,1"} -3.25
# HELP rf_test_requests_total A counter.
# TYPE rf_test_requests_total counter
rf_test_requests_total{code="200"} 1234
# HELP rf_test_ratio A small float.
# TYPE rf_test_ratio gauge
rf_test_ratio 0.125
"""


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
