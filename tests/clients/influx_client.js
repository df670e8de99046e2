// Produces InfluxDB line protocol with the official JavaScript client
// (@influxdata/influxdb-client, npm) and sends it to ringflowd:
//   TCP  through the client's own WriteApi (batching, default tags, time
//        conversion), with a transport that writes the request body to a TCP
//        socket instead of POSTing it to /api/v2/write;
//   UDP  Point.toLineProtocol() lines, in one datagram.
//   node influx_client.js PORT T_NS
// T_NS: the base timestamp in ns (a string: it does not fit a double).
// Prints every line it sent. test_influx_client.c holds the expected values.
'use strict';
const net = require('net');
const dgram = require('dgram');
const { InfluxDB, Point } = require('@influxdata/influxdb-client');

const port = Number(process.argv[2]);
const tNs = process.argv[3];
if (!port || !/^[0-9]+$/.test(tNs || '')) {
  console.error('usage: node influx_client.js PORT T_NS');
  process.exit(2);
}
const tMs = Number(BigInt(tNs) / 1000000n);

function points(transport) {
  return [
    new Point('disk io,raw')
      .tag('host name', 'web 01')
      .tag('path', '/var/lib,data')
      .tag('k=v', 'a=b')
      .tag('transport', transport)
      .floatField('read bytes', 1234.5)
      .intField('ops', -42)
      .intField('max_safe', 9007199254740991)
      .uintField('total', '18446744073709551615')
      .booleanField('healthy', true)
      .booleanField('degraded', false)
      .stringField('note', 'he said "hi" \\ ok, a=b')
      .floatField('tiny', 2.5e-300)
      .floatField('big', -1.7976931348623157e308)
      .floatField('whole', 3)
      .timestamp(tNs),
    // A Date: the client converts it to ns (ms precision) itself.
    new Point('cpu').tag('host', 'a').tag('transport', transport)
      .floatField('usage', 0.1)
      .timestamp(new Date(tMs + 1)),
  ];
}

// ---- TCP through WriteApi ----
function viaWriteApi() {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port }, () => {
      const transport = {
        // WriteApi calls send(path, body, options, callbacks) per batch.
        send(path, body, options, callbacks) {
          if (!path.startsWith('/api/v2/write') || !path.includes('precision=ns')) {
            callbacks.error(new Error('unexpected write path ' + path));
            return;
          }
          process.stdout.write(body + '\n');
          sock.write(body + '\n', (err) => {
            if (err) return callbacks.error(err);
            callbacks.responseStarted({}, 204);
            callbacks.complete();
          });
        },
        request() { return Promise.reject(new Error('not used')); },
        iterate() { throw new Error('not used'); },
      };
      const influx = new InfluxDB({ url: 'http://127.0.0.1:1', transport });
      const writeApi = influx.getWriteApi('org', 'bucket', 'ns', {
        defaultTags: { source: 'writeapi' },
        flushInterval: 0,
        maxRetries: 0,
      });
      writeApi.writePoints(points('tcp'));
      writeApi.close()
        .then(() => sock.end(() => resolve()))
        .catch(reject);
    });
    sock.on('error', reject);
  });
}

// ---- UDP with Point.toLineProtocol ----
function viaUdp() {
  return new Promise((resolve, reject) => {
    const body = points('udp').map((p) => p.toLineProtocol()).join('\n') + '\n';
    process.stdout.write(body);
    const s = dgram.createSocket('udp4');
    s.send(Buffer.from(body), port, '127.0.0.1', (err) => {
      s.close();
      if (err) reject(err); else resolve();
    });
  });
}

viaWriteApi()
  .then(viaUdp)
  .catch((err) => { console.error(err); process.exit(1); });
