#!/usr/bin/python3
"""TLS and authentication of ringflowd's http listener and /metrics, end to
end with real clients over real sockets.

Certificates are made here with the openssl CLI (a test CA, a server
certificate for 127.0.0.1, a second one for the reload, a client
certificate, and a rogue CA with its own client). Then:
  - curl (--cacert, basic auth, InfluxDB's Token) and python3-influxdb
    (ssl=True, verify_ssl=the test CA) write over HTTPS; every point is
    stored exactly (the json sink's lines are compared value by value);
  - a client that does not trust the server, plain HTTP to the TLS port, no
    client certificate where one is required, one from another CA, a wrong
    password, a wrong and a missing token are refused, each counted under its
    reason in `show listeners`, and the daemon keeps serving;
  - /ping answers without credentials;
  - SIGHUP with a new certificate: new connections see it; SIGHUP with a
    broken one is refused and the running certificate stays;
  - /metrics over TLS with basic auth, scraped by curl, passes
    `promtool check metrics`, and refuses a scraper without credentials;
  - the Prometheus query API answers over TLS (a query thread writes through
    the connection's TLS state);
  - random bytes to the TLS ports, many connections: nothing crashes;
  - a key file that does not load stops the start with an error naming it.
Exit 77 (skip) when a client is missing. Usage: test_tls.py RINGFLOWD RINGFLOW
"""
import base64
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

SKIP = 77


def sh(*args, check=True, **kw):
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=60, **kw)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Daemon:
    def __init__(self, binary, cli, workdir, config):
        self.cli = cli
        self.dir = workdir
        with open(os.path.join(workdir, "ringflowd.yaml"), "w") as f:
            f.write(config)
        self.err = open(os.path.join(workdir, "stderr.log"), "w+")
        self.proc = subprocess.Popen([binary, "--config", "ringflowd.yaml"], cwd=workdir,
                                     stdout=subprocess.DEVNULL, stderr=self.err)
        self.wait_log('msg="running:', 20)

    def log(self):
        with open(os.path.join(self.dir, "stderr.log")) as f:
            return f.read()

    def wait_log(self, text, timeout, count=1):
        end = time.time() + timeout
        while time.time() < end:
            if self.log().count(text) >= count:
                return
            if self.proc.poll() is not None:
                raise AssertionError("ringflowd exited %d:\n%s" % (self.proc.returncode, self.log()))
            time.sleep(0.05)
        raise AssertionError("no %r in the log within %ds:\n%s" % (text, timeout, self.log()))

    def alive(self):
        assert self.proc.poll() is None, "ringflowd died:\n" + self.log()

    def show(self, what):
        r = sh(self.cli, "stat", "--socket", "./run/ringflow.sock", what, cwd=self.dir)
        return r.stdout

    def rejects(self, listener):
        """The http rejects of a listener, summed over workers, from `show listeners --json`."""
        r = sh(self.cli, "stat", "--socket", "./run/ringflow.sock", "--json", "listeners",
               cwd=self.dir)
        doc = json.loads(r.stdout)
        total = {}
        for row in doc["http"]:
            if row["listener"] != listener:
                continue
            for kv in filter(None, row["rejects_by_reason"].split(",")):
                k, v = kv.split("=")
                total[k] = total.get(k, 0) + int(v)
        return total

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(30)
        assert rc == 0, "ringflowd exited %d:\n%s" % (rc, self.log())


def make_pki(d):
    def req(name, cn, ca=None, san=None):
        ext = os.path.join(d, name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:%s\n" % ("TRUE" if ca is None else "FALSE"))
            if san:
                f.write("subjectAltName=%s\n" % san)
        key, pem = os.path.join(d, name + ".key"), os.path.join(d, name + ".pem")
        if ca is None:
            sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-nodes", "-keyout", key, "-out", pem, "-days", "2", "-subj", "/CN=" + cn,
               "-addext", "basicConstraints=critical,CA:TRUE")
        else:
            csr = os.path.join(d, name + ".csr")
            sh("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + cn)
            sh("openssl", "x509", "-req", "-in", csr, "-CA", os.path.join(d, ca + ".pem"), "-CAkey",
               os.path.join(d, ca + ".key"), "-CAcreateserial", "-out", pem, "-days", "2",
               "-extfile", ext)
        return pem

    make = req
    make("ca", "ringflow test CA")
    make("server", "first", ca="ca", san="IP:127.0.0.1")
    make("server2", "second", ca="ca", san="IP:127.0.0.1")
    make("client", "client", ca="ca")
    make("rogue", "rogue CA")
    make("rogueclient", "rogue client", ca="rogue")


def curl(*args):
    """(status, stdout, stderr) of curl -s; status 0 when the transfer failed."""
    r = sh("curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10", *args, check=False)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body, r.stderr


def tls_peer_cn(port, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            subject = dict(x[0] for x in t.getpeercert()["subject"])
            return subject["commonName"]


def iso_ns(t):
    """'2026-12-07T21:43:03.000000000Z' as nanoseconds since the epoch."""
    import calendar
    base, frac = t.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) * 10**9 + int(frac)


def seen_points(d, measurement):
    """The json sink's events of a measurement: one a field, as
    (tags dict, field, value, time ns)."""
    out = []
    path = os.path.join(d, "seen.jsonl")
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            ev = json.loads(line)
            key, _, field = ev["series"].rpartition(" ")
            parts = key.split(",")
            if parts[0] != measurement:
                continue
            tags = dict(p.split("=", 1) for p in parts[1:])
            out.append((tags, field, ev["value"], iso_ns(ev["time"])))
    return out


def wait_points(d, measurement, n, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        pts = seen_points(d, measurement)
        if len(pts) >= n:
            time.sleep(0.3)  # and no more than n
            return seen_points(d, measurement)
        time.sleep(0.1)
    raise AssertionError("%d of %d %s points in seen.jsonl" % (len(seen_points(d, measurement)),
                                                                n, measurement))


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    binary, cli = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    for tool in ("openssl", "curl"):
        if not shutil.which(tool):
            print("SKIP: no " + tool)
            return SKIP
    try:
        import influxdb  # noqa: F401
    except ImportError:
        print("SKIP: no python3-influxdb")
        return SKIP
    promtool = shutil.which("promtool")

    d = tempfile.mkdtemp(prefix="rf-tls-")
    try:
        run(binary, cli, d, promtool)
    finally:
        if os.environ.get("RF_KEEP_TMP"):
            print("kept", d)
        else:
            shutil.rmtree(d, ignore_errors=True)
    print("ok")
    return 0


def run(binary, cli, d, promtool):
    make_pki(d)
    ca = os.path.join(d, "ca.pem")
    # The served certificate's paths stay; the reload test copies others over them.
    shutil.copy(os.path.join(d, "server.pem"), os.path.join(d, "live.pem"))
    shutil.copy(os.path.join(d, "server.key"), os.path.join(d, "live.key"))
    sha = base64.b64encode(hashlib.sha1(b"s3cret").digest()).decode()
    crypted = sh("openssl", "passwd", "-6", "-salt", "ringflow", "cr7pt").stdout.strip()
    with open(os.path.join(d, "users"), "w") as f:
        f.write("# user:secret\nalice:{SHA}%s\nbob:%s\ncarol:plainpw\n" % (sha, crypted))
    with open(os.path.join(d, "tokens"), "w") as f:
        f.write("tok-123\n")
    web, mtls, prom = free_port(), free_port(), free_port()
    config = f"""engine: {{workers: 2, idle: {{sleep: 5ms}}}}
listeners:
  - name: web
    transport: tcp
    protocol: http
    port: {web}
    tls: {{cert_file: {d}/live.pem, key_file: {d}/live.key}}
    auth: {{basic_file: {d}/users, bearer_token_file: {d}/tokens}}
  - name: mtls
    transport: tcp
    protocol: http
    port: {mtls}
    tls: {{cert_file: {d}/server.pem, key_file: {d}/server.key, client_ca_file: {ca}, min_version: "1.3"}}
stats:
  prometheus:
    listen: 127.0.0.1:{prom}
    tls: {{cert_file: {d}/live.pem, key_file: {d}/live.key}}
    auth: {{basic_file: {d}/users}}
pipeline:
  batch: {{max_events: 1000, interval: 50ms}}
  sinks:
    - {{name: store, type: store}}
    - {{name: seen, type: json, path: ./seen.jsonl}}
  routes:
    - {{subject: "telemetry.>", sinks: [store, seen]}}
"""
    dm = Daemon(binary, cli, d, config)
    try:
        scenario(dm, d, ca, web, mtls, prom, promtool)
    except BaseException:
        print(dm.log()[-6000:], file=sys.stderr)
        dm.proc.kill()
        dm.proc.wait()
        raise
    dm.stop()

    # A key that does not load: the daemon does not start, and says which file.
    bad = config.replace(f"{d}/live.key", f"{d}/missing.key")
    with open(os.path.join(d, "bad.yaml"), "w") as f:
        f.write(bad)
    r = subprocess.run([binary, "--config", "bad.yaml"], cwd=d, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0 and "missing.key" in r.stderr, (r.returncode, r.stderr[-2000:])


def scenario(dm, d, ca, web, mtls, prom, promtool):
    url = f"https://127.0.0.1:{web}"
    t0 = int(time.time()) - 600

    # 1. curl writes over HTTPS with each kind of credential.
    body = "".join(f"tls_curl,host=h{i} v={i}i {t0 + i}\n" for i in range(50))
    for tag, creds in (("alice", ["-u", "alice:s3cret"]), ("bob", ["-u", "bob:cr7pt"]),
                       ("carol", ["-u", "carol:plainpw"]),
                       ("token", ["-H", "Authorization: Token tok-123"]),
                       ("bearer", ["-H", "Authorization: Bearer tok-123"])):
        lines = body.replace("tls_curl,", f"tls_curl,who={tag},")
        code, out, err = curl("--cacert", ca, *creds, "--data-binary", lines,
                              f"{url}/write?db=t&precision=s")
        assert code == 204, (creds, code, out, err)
    pts = wait_points(d, "tls_curl", 250)
    assert len(pts) == 250, len(pts)
    got = sorted((tags["who"], tags["host"], v, t // 10**9) for tags, field, v, t in pts
                 if field == "v")
    want = sorted((who, f"h{i}", i, t0 + i) for who in ("alice", "bob", "carol", "token", "bearer")
                  for i in range(50))
    assert got == want, (got[:5], want[:5])

    # The query API answers on a query thread (storage/promapi), through the
    # TLS state the worker hands it; also after an answer on the same
    # connection (curl reuses it for the second URL).
    for _ in range(5):
        code, out, err = curl("--cacert", ca, "-u", "alice:s3cret",
                              f"{url}/api/v1/label/__name__/values")
        assert code == 200 and '"status":"success"' in out, (code, out, err)
    r = sh("curl", "-s", "--max-time", "10", "--cacert", ca, "-u", "alice:s3cret", f"{url}/ping",
           f"{url}/api/v1/label/__name__/values", check=False)
    assert '"status":"success"' in r.stdout, (r.stdout, r.stderr)

    # 2. python3-influxdb over TLS, verifying the server against the test CA.
    from influxdb import InfluxDBClient
    cl = InfluxDBClient(host="127.0.0.1", port=web, username="alice", password="s3cret",
                        database="py", ssl=True, verify_ssl=ca, timeout=10)
    assert cl.ping()
    points = [{"measurement": "tls_py", "tags": {"n": str(i)}, "time": (t0 + i) * 10**9,
               "fields": {"x": i * 0.5, "k": i * 1000003}} for i in range(100)]
    assert cl.write_points(points, time_precision="n", batch_size=30)
    pts = wait_points(d, "tls_py", 200)
    got = sorted((int(tags["n"]), field, v, t) for tags, field, v, t in pts)
    want = sorted([(i, "x", i * 0.5, (t0 + i) * 10**9) for i in range(100)] +
                  [(i, "k", i * 1000003, (t0 + i) * 10**9) for i in range(100)])
    assert got == want, (got[:4], want[:4])
    bad = InfluxDBClient(host="127.0.0.1", port=web, username="alice", password="nope",
                         database="py", ssl=True, verify_ssl=ca, timeout=10)
    try:
        bad.write_points(points[:1], time_precision="n")
        raise AssertionError("a wrong password wrote")
    except Exception as e:  # influxdb.exceptions.InfluxDBClientError
        assert "401" in str(getattr(e, "code", "")) or "401" in str(e), e

    # 3. Refusals, each counted under its reason; the daemon serves on.
    base = dm.rejects("web")
    code, _, _ = curl("--cacert", ca, "--data-binary", "x v=1", f"{url}/write?db=t")
    assert code == 401
    r = sh("curl", "-s", "-D", "-", "-o", "/dev/null", "--cacert", ca, "--data-binary", "x v=1",
           f"{url}/write?db=t", check=False)
    assert "www-authenticate: basic" in r.stdout.lower(), r.stdout
    code, _, _ = curl("--cacert", ca, "-u", "alice:wrong", "--data-binary", "x v=1", f"{url}/write?db=t")
    assert code == 401
    code, _, _ = curl("--cacert", ca, "-u", "nobody:x", "--data-binary", "x v=1", f"{url}/write?db=t")
    assert code == 401
    code, _, _ = curl("--cacert", ca, "-H", "Authorization: Token wrong", "--data-binary",
                      "x v=1", f"{url}/write?db=t")
    assert code == 401
    code, _, _ = curl("--cacert", ca, f"{url}/ping")  # open: health checks
    assert code == 204, code
    code, _, err = curl("--data-binary", "x v=1", f"{url}/write?db=t")  # no CA: curl refuses
    assert code == 0, (code, err)
    code, _, _ = curl("--data-binary", "x v=1", f"http://127.0.0.1:{web}/write?db=t")
    assert code != 204
    time.sleep(0.3)
    now = dm.rejects("web")
    delta = {k: now.get(k, 0) - base.get(k, 0) for k in now}
    assert delta.get("auth_missing") == 2, delta
    assert delta.get("auth_bad") == 3, delta
    assert delta.get("tls_handshake_failed") == 2, delta  # unknown CA alert, plain HTTP
    assert not seen_points(d, "x"), "a refused write was stored"

    # Client certificates.
    murl = f"https://127.0.0.1:{mtls}/write?db=m"
    code, _, _ = curl("--cacert", ca, "--cert", f"{d}/client.pem", "--key", f"{d}/client.key",
                      "--data-binary", f"tls_mtls v=7 {t0}", murl + "&precision=s")
    assert code == 204, code
    code, _, _ = curl("--cacert", ca, "--data-binary", f"tls_nocert v=1 {t0}", murl)
    assert code != 204
    code, _, _ = curl("--cacert", ca, "--cert", f"{d}/rogueclient.pem", "--key",
                      f"{d}/rogueclient.key", "--data-binary", f"tls_rogue v=1 {t0}", murl)
    assert code != 204
    code, _, _ = curl("--cacert", ca, "--tls-max", "1.2", "--cert", f"{d}/client.pem", "--key",
                      f"{d}/client.key", "--data-binary", f"tls_old v=1 {t0}", murl)
    assert code == 0  # min_version 1.3
    time.sleep(0.3)
    m = dm.rejects("mtls")
    assert m.get("client_cert_missing") == 1, m
    assert m.get("client_cert_invalid") == 1, m
    assert m.get("tls_handshake_failed") == 1, m
    assert [v for _, _, v, _ in wait_points(d, "tls_mtls", 1)] == [7]
    assert not seen_points(d, "tls_nocert") and not seen_points(d, "tls_rogue")
    dm.alive()

    # 4. /metrics over TLS with basic auth.
    purl = f"https://127.0.0.1:{prom}/metrics"
    code, _, _ = curl("--cacert", ca, purl)
    assert code == 401
    code, text, _ = curl("--cacert", ca, "-u", "carol:plainpw", purl)
    assert code == 200, code
    assert 'ringflow_http_rejects_total{' in text and 'reason="auth_bad"' in text
    assert 'ringflow_ops_http_rejects_total{reason="auth_missing"} 1' in text, \
        [line for line in text.splitlines() if "ops_http_rejects" in line]
    if promtool:
        r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
        problems = [line for line in (r.stdout + r.stderr).splitlines()
                    if "error" in line.lower() or "parse" in line.lower()]
        assert not problems, problems[:10]

    # 5. SIGHUP: a new certificate for new connections; a broken one is refused.
    assert tls_peer_cn(web, ca) == "first"
    assert tls_peer_cn(prom, ca) == "first"
    shutil.copy(f"{d}/server2.pem", f"{d}/live.pem")
    shutil.copy(f"{d}/server2.key", f"{d}/live.key")
    dm.proc.send_signal(signal.SIGHUP)
    dm.wait_log("reload applied", 20)
    assert tls_peer_cn(web, ca) == "second"
    assert tls_peer_cn(prom, ca) == "second"
    with open(f"{d}/live.pem", "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
    dm.proc.send_signal(signal.SIGHUP)
    dm.wait_log("reload refused", 20)
    assert tls_peer_cn(web, ca) == "second"
    code, _, _ = curl("--cacert", ca, "-u", "alice:s3cret", "--data-binary",
                      f"tls_after v=1 {t0}", f"{url}/write?db=t&precision=s")
    assert code == 204, code
    # Credentials are re-read too.
    with open(f"{d}/tokens", "w") as f:
        f.write("tok-456\n")
    shutil.copy(f"{d}/server2.pem", f"{d}/live.pem")
    dm.proc.send_signal(signal.SIGHUP)
    dm.wait_log("reload applied", 20, count=2)
    code, _, _ = curl("--cacert", ca, "-H", "Authorization: Token tok-123", f"{url}/query")
    assert code == 401
    code, _, _ = curl("--cacert", ca, "-H", "Authorization: Token tok-456", "--data-binary",
                      f"tls_tok v=1 {t0}", f"{url}/write?db=t&precision=s")
    assert code == 204, code

    # 6. Random bytes, TLS-looking and not, never crash the daemon.
    rnd = random.Random(21)
    for i in range(200):
        port = (web, mtls, prom)[i % 3]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                head = b"\x16\x03\x01" if i % 2 else b""
                s.sendall(head + bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 3000))))
                s.shutdown(socket.SHUT_WR)
                s.settimeout(2)
                try:
                    while s.recv(4096):
                        pass
                except OSError:
                    pass
        except OSError:
            pass
    dm.alive()
    code, _, _ = curl("--cacert", ca, "-u", "alice:s3cret", "--data-binary",
                      f"tls_end v=1 {t0}", f"{url}/write?db=t&precision=s")
    assert code == 204, code
    assert len(wait_points(d, "tls_end", 1)) == 1


if __name__ == "__main__":
    sys.exit(main())
