// Exports metrics to ringflowd's http listener with the OpenTelemetry JS
// SDK (@opentelemetry/sdk-metrics, npm) and its own OTLP/HTTP exporters,
// nothing changed but the URL: `proto` uses exporter-metrics-otlp-proto
// (application/x-protobuf, cumulative temporality), `json`
// exporter-metrics-otlp-http (application/json, delta temporality where the
// SDK allows it). A counter, an up-down counter, a histogram with explicit
// buckets and an observable gauge, one export.
//   node otel_sdk.js PORT proto|json
// Prints what the exporter was told.
'use strict';
const { MeterProvider, PeriodicExportingMetricReader } = require('@opentelemetry/sdk-metrics');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const http = require('@opentelemetry/exporter-metrics-otlp-http');
const proto = require('@opentelemetry/exporter-metrics-otlp-proto');

const port = Number(process.argv[2]);
const mode = process.argv[3];
const url = `http://127.0.0.1:${port}/v1/metrics`;

async function main() {
  const exporter = mode === 'proto'
    ? new proto.OTLPMetricExporter({ url, timeoutMillis: 5000 })
    : new http.OTLPMetricExporter({
      url, timeoutMillis: 5000,
      temporalityPreference: http.AggregationTemporalityPreference.DELTA,
    });
  // What the exporter was told, for the test to read.
  const exportOnce = exporter.export.bind(exporter);
  exporter.export = (metrics, done) => exportOnce(metrics, (res) => {
    console.log(res.code === 0 ? 'export ok' : `export failed: ${res.error && res.error.message}`);
    done(res);
  });
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3600000 });
  const provider = new MeterProvider({
    // service.name is on the default allow-list; the other is not.
    resource: resourceFromAttributes({ 'service.name': `otel-${mode}`, 'deployment.id': 'd-1' }),
    readers: [reader],
  });
  const meter = provider.getMeter('ringflow-client-test', '1.0.0');
  const requests = meter.createCounter('otel_requests');
  requests.add(5, { route: '/a' });
  requests.add(2, { route: '/a' });
  requests.add(4, { route: '/b' });
  const queue = meter.createUpDownCounter('otel_queue');
  queue.add(10);
  queue.add(-3);
  const latency = meter.createHistogram('otel_latency',
    { advice: { explicitBucketBoundaries: [1, 5, 10] } });
  for (const v of [0.5, 3, 7, 20])
    latency.record(v);
  const temp = meter.createObservableGauge('otel_temp');
  temp.addCallback((r) => r.observe(21.5, { room: 'lab' }));
  await provider.shutdown(); // one export, of everything above
  console.log('done');
}
main().catch((e) => { console.error(e); process.exit(1); });
