// Sends StatsD/DogStatsD metrics with the hot-shots library (npm), as an
// application would, to ringflowd's StatsD UDP listener.
//   node statsd_hotshots.js PORT T0
// T0: Unix seconds; every metric but hs.heartbeat carries a DogStatsD
// timestamp (|T) of T0 + a few seconds, so the test can assert exact times.
// test_statsd_hotshots.c holds the expected values: keep the two in step.
'use strict';
const StatsD = require('hot-shots');

const port = Number(process.argv[2]);
const t0 = Number(process.argv[3]);
if (!port || !t0) {
  console.error('usage: node statsd_hotshots.js PORT T0');
  process.exit(2);
}

// hot-shots decides client-side whether a sampled call is sent
// (Math.random() < rate). Make that decision "always send" so the test is
// deterministic; the datagram still carries |@rate, which is what the server
// must scale by.
Math.random = () => 0;

const sent = [];
const client = new StatsD({
  host: '127.0.0.1',
  port,
  protocol: 'udp',
  prefix: 'hs.',
  globalTags: { env: 'prod' },
  maxBufferSize: 0,       // one datagram per metric: what we count is what went out
  errorHandler: (err) => { console.error('hot-shots error:', err); process.exitCode = 1; },
});
// Record what the library put on the wire (for the test log only).
const origSend = client.sendMessage.bind(client);
client.sendMessage = (message, callback, isTelemetry) => {
  if (message !== '') sent.push(message); // hot-shots does not send empty ones
  origSend(message, callback, isTelemetry);
};

const tags = { route: '/pay', 'url': 'http://shop:8080/pay' };
let pending = 0;
const done = (err) => {
  if (err) { console.error('send failed:', err); process.exitCode = 1; }
  if (--pending === 0) {
    client.close((e) => {
      if (e) { console.error('close failed:', e); process.exitCode = 1; }
      for (const m of sent) console.log(m);
    });
  }
};
const call = (fn, ...args) => { pending++; fn.call(client, ...args, done); };

// Counters, with sample rates (3 @ 0.25 counts as 12, -2 @ 0.5 as -4).
call(client.increment, 'requests', 1, { tags, timestamp: t0 });
call(client.increment, 'requests', 3, { sampleRate: 0.25, tags, timestamp: t0 + 1 });
call(client.decrement, 'requests', 2, { sampleRate: 0.5, tags, timestamp: t0 + 2 });
// Gauge, then signed deltas: 42, +8 -> 50, -15 -> 35.
call(client.gauge, 'queue_depth', 42, { tags: ['canary', 'shard:a'], timestamp: t0 });
call(client.gaugeDelta, 'queue_depth', 8, { tags: ['canary', 'shard:a'], timestamp: t0 + 1 });
call(client.gaugeDelta, 'queue_depth', -15, { tags: ['canary', 'shard:a'], timestamp: t0 + 2 });
// Timers (ms), one sampled at 0.5 (counts twice).
call(client.timing, 'latency', 12.5, { tags: { route: '/pay' }, timestamp: t0 + 3 });
call(client.timing, 'latency', 7, { tags: { route: '/pay' }, timestamp: t0 + 3 });
call(client.timing, 'latency', 100.25, { sampleRate: 0.5, tags: { route: '/pay' }, timestamp: t0 + 4 });
// Histogram and distribution.
call(client.histogram, 'payload_bytes', 512, { timestamp: t0 + 5 });
call(client.histogram, 'payload_bytes', 2048, { timestamp: t0 + 5 });
call(client.distribution, 'render_ms', 3.5, { tags: ['page:home'], timestamp: t0 + 6 });
call(client.distribution, 'render_ms', 4.5, { tags: ['page:home'], timestamp: t0 + 6 });
call(client.distribution, 'render_ms', 10, { tags: ['page:home'], timestamp: t0 + 6 });
// Set: three distinct members, one repeated; the member may contain ':'.
for (const m of ['alice', 'bob', 'alice', 'carol:42']) {
  call(client.set, 'users', m, { timestamp: t0 + 7 });
}
// No timestamp: the server stamps it on receipt.
call(client.increment, 'heartbeat', 1);
