// lynx and statsd-client (npm StatsD clients nobody here wrote) send one burst
// through a UDP tee to ringflowd and to Etsy's reference StatsD daemon (npm
// statsd 0.9), which flushes to a Graphite socket of this script. Prints what
// StatsD flushed for the burst as "<measurement> <field> <value>" lines, in
// ringflow's naming (Telegraf's statsd fields), for test_statsd_flush.c to
// compare with ringflowd's store value by value.
//
// Usage: node statsd_flush.js <ringflowd statsd port> <base port>
// (StatsD on base, its management port base+1, the Graphite socket base+2).
'use strict';
const dgram = require('dgram');
const net = require('net');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');
const Lynx = require('lynx');
const StatsDClient = require('statsd-client');

const rfPort = Number(process.argv[2]);
const base = Number(process.argv[3]);
const FLUSH_MS = 2000;
let etsy = null;
const die = (msg) => {
  if (etsy) etsy.kill('SIGKILL');
  process.stderr.write(msg + '\n');
  process.exit(1);
};
setTimeout(() => die('timed out'), 18000).unref();

// ---- Graphite side: StatsD's flushes, one per "stats.statsd.numStats" line.
let pending = [];
const flushes = [];
let onFlush = null;
const graphite = net.createServer((c) => {
  let buf = '';
  c.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const [key, value] = line.split(' ');
      if (key === 'stats.statsd.numStats') {
        flushes.push(pending);
        pending = [];
        if (onFlush) onFlush();
      } else {
        pending.push([key, value]);
      }
    }
  });
});
const nextFlush = () => new Promise((resolve) => { onFlush = () => { onFlush = null; resolve(); }; });

// ---- the tee: every datagram the clients send goes to both servers.
let teeIn = 0, teeOut = 0, clientSent = 0;
const tee = dgram.createSocket('udp4');
const out = dgram.createSocket('udp4');
tee.on('message', (msg) => {
  teeIn++;
  let n = 0;
  const done = () => { if (++n === 2) teeOut++; };
  out.send(msg, rfPort, '127.0.0.1', done);
  out.send(msg, base, '127.0.0.1', done);
  process.stdout.write('# ' + JSON.stringify(msg.toString()) + '\n');
});
const waitFor = async (cond, what) => {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!cond()) die(`waiting for ${what}: sent ${clientSent}, tee in ${teeIn}, out ${teeOut}`);
};

function burst(teePort) {
  // A send that sampling dropped is lynx's "Nothing to send": not an error here.
  const lynx = new Lynx('127.0.0.1', teePort, {
    on_error: (e) => { if (e.message !== 'Nothing to send') die('lynx: ' + e.message); },
  });
  lynx.on('data', () => clientSent++); // one per datagram it sends
  // Sample rates: lynx drops some sends itself and marks the others @rate.
  for (let i = 0; i < 40; i++) lynx.count('lynx.bytes', 5, 0.1);
  for (let i = 0; i < 40; i++) lynx.increment('lynx.hits', 0.5);
  lynx.increment('lynx.hits');
  lynx.decrement('lynx.hits');
  lynx.gauge('lynx.temp', 50);
  lynx.gauge('lynx.temp', '+8');
  lynx.gauge('lynx.temp', '-15');
  for (const v of [10, 20, 30, 40]) lynx.timing('lynx.latency', v);
  for (let i = 0; i < 30; i++) lynx.timing('lynx.sampled_ms', (i * 37) % 101 + 0.25, 0.5);
  for (const m of ['alice', 'bob', 'alice', 'carol']) lynx.set('lynx.users', m);

  // statsd-client packs several metrics per datagram (maxBufferSize 1200).
  const sdc = new StatsDClient({ host: '127.0.0.1', port: teePort, socketTimeout: 50 });
  const sdcSend = sdc._socket._send; // one call per datagram it sends
  sdc._socket._send = function (...a) { clientSent++; return sdcSend.apply(this, a); };
  sdc.counter('sdc.requests', 3);
  sdc.increment('sdc.requests');
  sdc.decrement('sdc.requests', 2);
  sdc.gauge('sdc.queue', 10);
  sdc.gaugeDelta('sdc.queue', 5);
  sdc.gaugeDelta('sdc.queue', -20);
  const render = [12.5, 0.1, 7, 99.99, 3.3, 42, 42, 8.125, 1e-3, 250, 17, 64.5, 5, 0.7, 31];
  for (const v of render) sdc.timing('sdc.render', v);
  for (const m of ['x', 'y', 'z', 'x', 'w', 'y']) sdc.set('sdc.visitors', m);
  // statsd-client sends what it buffered at close; lynx sends at once (the
  // first sends wait for the socket's bind: closed only once the tee has them).
  sdc.close();
  return lynx;
}

// Etsy's graphite names -> ringflow's measurement and field.
function mapKey(key) {
  let m;
  if ((m = /^stats\.counters\.(.+)\.count$/.exec(key))) return [m[1], 'value'];
  if ((m = /^stats\.gauges\.(.+)$/.exec(key))) return [m[1], 'value'];
  if ((m = /^stats\.sets\.(.+)\.count$/.exec(key))) return [m[1], 'value'];
  if ((m = /^stats\.timers\.(.+)\.(count|lower|upper|mean|median|std|sum|upper_90|upper_99)$/.exec(key))) {
    const f = { std: 'stddev', upper_90: '90_percentile', upper_99: '99_percentile' }[m[2]] || m[2];
    return [m[1], f];
  }
  return null;
}

(async () => {
  await new Promise((r) => graphite.listen(base + 2, '127.0.0.1', r));
  await new Promise((r) => tee.bind(0, '127.0.0.1', r));
  const cfg = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rf-etsy-')), 'config.js');
  fs.writeFileSync(cfg, JSON.stringify({
    address: '127.0.0.1', port: base, mgmt_address: '127.0.0.1', mgmt_port: base + 1,
    backends: ['./backends/graphite'], graphiteHost: '127.0.0.1', graphitePort: base + 2,
    flushInterval: FLUSH_MS, percentThreshold: [90, 99], graphite: { legacyNamespace: false },
  }));
  const statsdDir = path.dirname(require.resolve('statsd/package.json'));
  etsy = spawn(process.execPath, [path.join(statsdDir, 'stats.js'), cfg],
    { cwd: statsdDir, stdio: ['ignore', 'ignore', 'inherit'] });
  etsy.on('exit', (code) => { if (code !== null && code !== 0) die('statsd exited ' + code); });
  // Right after one of StatsD's flushes, the burst has the whole interval.
  await nextFlush();
  const lynx = burst(tee.address().port);
  await waitFor(() => clientSent > 0 && teeOut === clientSent, 'the tee to pass every datagram');
  lynx.close();
  const f = nextFlush();
  await f;
  etsy.kill('SIGTERM');
  const flushed = flushes[flushes.length - 1];
  let n = 0;
  for (const [key, value] of flushed) {
    const m = mapKey(key);
    if (!m || !/^(lynx|sdc)\./.test(m[0])) continue;
    process.stdout.write(`${m[0]} ${m[1]} ${value}\n`);
    n++;
  }
  process.stdout.write(`# datagrams ${teeIn}, values ${n}\n`);
  graphite.close();
  tee.close();
  out.close();
  process.exit(0);
})().catch((e) => die(String(e && e.stack || e)));
