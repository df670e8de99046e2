// Writes to ringflowd's http listener with the official JavaScript client
// (@influxdata/influxdb-client, npm) exactly as to InfluxDB 2.x: its own
// HTTP transport, POST /api/v2/write?org=&bucket=&precision=, a token, gzip
// above its threshold, batching, default tags. Then a bad line, which the
// client must see refused (HTTP 400, the server's message).
//   node influx_http_v2.js PORT T_S
// Prints what the client was told.
'use strict';
const { InfluxDB, Point } = require('@influxdata/influxdb-client');

const port = Number(process.argv[2]);
const tS = Number(process.argv[3]);
const url = `http://127.0.0.1:${port}`;
const influx = new InfluxDB({ url, token: 'my-token', timeout: 5000 });

async function main() {
  // Seconds precision; the client batches 3 points into one request.
  const w = influx.getWriteApi('my-org', 'js-bucket', 's',
    { batchSize: 100, flushInterval: 0, maxRetries: 0, gzipThreshold: 1 });
  w.useDefaultTags({ app: 'node' });
  for (let i = 0; i < 3; i++) {
    w.writePoint(new Point('js_temp').tag('room', `r${i}`).floatField('c', 20.5 + i)
      .intField('n', i).timestamp(tS + i));
  }
  await w.close();
  console.log('written 3');
  // A line the server refuses: raw line protocol through the same API.
  const bad = influx.getWriteApi('my-org', 'js-bucket', 'ns', { maxRetries: 0 });
  bad.writeRecord('js_bad v=oops');
  try {
    await bad.close();
    console.log('bad accepted');
  } catch (e) {
    console.log(`bad refused: ${e.statusCode} ${e.body || e.message}`);
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
