/* ringflow load: a synthetic telemetry generator.
 *
 * Sends line protocol, StatsD or Graphite to a running engine over UDP or TCP,
 * open-loop at a fixed event rate or as fast as it can. Values follow a shape
 * per series (random walk with N decimals, monotonic counter, constant), so the
 * stream resembles what collectors send and compresses like real data.
 *
 * Probe lines: with --critical F, a fraction F of lines is replaced by a probe,
 * in the protocol's own syntax:
 *     influx    rf_probe,gen=ringflow-load seq=<n>i,sent_mono_ns=<CLOCK_MONOTONIC ns>i
 *     statsd    rf_probe.sent_mono_ns:<CLOCK_MONOTONIC ns>|g|#gen:ringflow-load
 *     graphite  rf_probe.sent_mono_ns <CLOCK_MONOTONIC ns> -1
 * which a configuration can route down the critical path; whoever receives the
 * engine's critical output on the same host computes end-to-end latency as
 * now(CLOCK_MONOTONIC) - sent_mono_ns. The summary's probe count is every probe
 * line sent, whatever the protocol (only line protocol carries the sequence
 * number: in StatsD and Graphite it would have to be a tag, a new series per
 * probe).
 *
 * Churn (--churn RATE): the live series are a window of --series numbers
 * that moves RATE numbers a minute, so RATE new series replace RATE old ones
 * every minute (pod names, autoscaled hosts): series number = slot + window
 * start. The window follows the stream's own clock: real time when sending,
 * simulated time with --record.
 *
 * Recording (--record FILE): instead of sending, writes the stream to a
 * recording (storage/recfile) in simulated time, one record per datagram:
 * --duration is simulated, --rate events per simulated second, the records'
 * times advance with it (wall from now, monotonic from 0), and --timestamps
 * gives each line its simulated time. `ringflow replay FILE --into DIR` then
 * runs a day of traffic in minutes (scripts/churn.sh).
 *
 * The hot loop formats into a preallocated buffer and sends batches of
 * datagrams with one sendmmsg call; nothing is allocated per event.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "core/config/config.h"
#include "storage/recfile/recfile.h"
#include "tools/load/load.h"
#include "tools/net/net_addr.h"

#define LOAD_MAX_DGRAMS 64
#define LOAD_MAX_PAYLOAD 65000
#define LOAD_MAX_SOCKETS 256

typedef enum {
    SHAPE_WALK,
    SHAPE_COUNTER,
    SHAPE_CONST
} load_shape;
typedef enum {
    PROTO_INFLUX,
    PROTO_STATSD,
    PROTO_GRAPHITE
} load_proto;

typedef struct load_opts {
    char host[256];
    char port[16];
    bool tcp;
    load_proto proto;
    double rate; /* events/s; 0 = max */
    double duration_s;
    uint64_t count; /* events; 0 = by duration */
    uint32_t series;
    uint32_t tags;
    uint32_t fields;
    load_shape shape;
    uint32_t decimals;
    uint32_t payload;
    double critical;
    uint64_t seed;
    bool timestamps;
    bool json;
    bool quiet;
    uint32_t sockets; /* sockets (UDP source ports / TCP connections) used in turn */
    /* Bursts: for burst_len_s out of every burst_every_s seconds the rate is
     * burst_rate instead of rate (0 = no bursts). */
    double burst_rate;
    double burst_len_s;
    double burst_every_s;
    double churn;      /* series replaced per minute (0 = the same series throughout) */
    char record[1024]; /* --record: write a recording in simulated time instead of sending */
} load_opts;

typedef struct load_series {
    int64_t scaled; /* value * 10^decimals (walk, const) or the counter */
} load_series;

static volatile sig_atomic_t g_stop;
static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* xorshift64*: fast, good enough for synthetic values. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ull;
}

static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

static double rng_normal(uint64_t *s)
{
    double u1 = rng_unit(s), u2 = rng_unit(s);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static char *put_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put_i64(char *p, int64_t v)
{
    if (v < 0) {
        *p++ = '-';
        return put_u64(p, (uint64_t)(-(v + 1)) + 1);
    }
    return put_u64(p, (uint64_t)v);
}

/* Writes a scaled integer as a decimal with `dec` digits after the point. */
static char *put_scaled(char *p, int64_t scaled, uint32_t dec, const int64_t *pow10)
{
    if (dec == 0)
        return put_i64(p, scaled);
    uint64_t mag = scaled < 0 ? (uint64_t)(-(scaled + 1)) + 1 : (uint64_t)scaled;
    if (scaled < 0)
        *p++ = '-';
    p = put_u64(p, mag / (uint64_t)pow10[dec]);
    *p++ = '.';
    uint64_t frac = mag % (uint64_t)pow10[dec];
    for (int64_t d = pow10[dec] / 10; d > 0; d /= 10) {
        *p++ = (char)('0' + (frac / (uint64_t)d) % 10);
    }
    return p;
}

static char *put_str(char *p, const char *s)
{
    while (*s)
        *p++ = *s++;
    return p;
}

typedef struct load_gen {
    const load_opts *o;
    load_series *series;
    uint64_t rng;
    uint64_t next_series;
    uint64_t probe_seq;
    uint64_t probe_threshold; /* rng value below which a line is a probe */
    int64_t start_wall;       /* the stream's clock at its start (churn) */
    uint64_t churn_base;      /* --churn: the live window's first series number */
    int64_t pow10[19];
} load_gen;

static void advance_value(load_gen *g, load_series *s)
{
    switch (g->o->shape) {
    case SHAPE_WALK:
        s->scaled += (int64_t)llround(rng_normal(&g->rng) * (double)g->pow10[g->o->decimals]);
        break;
    case SHAPE_COUNTER: s->scaled += (int64_t)(rng_next(&g->rng) % 100); break;
    case SHAPE_CONST: break;
    }
}

/* Formats one line into p (room for at least 1 KiB); returns the end and the
 * number of events it carries. */
static char *format_line(load_gen *g, char *p, int64_t wall_ns, uint32_t *events)
{
    const load_opts *o = g->o;
    if (o->critical > 0 && rng_next(&g->rng) < g->probe_threshold) {
        /* A probe: always line protocol semantics for influx; for the other
         * protocols the same idea in their syntax. */
        int64_t mono = rf_clock_mono_ns();
        g->probe_seq++; /* counts probes of every protocol for the summary */
        switch (o->proto) {
        case PROTO_INFLUX:
            p = put_str(p, "rf_probe,gen=ringflow-load seq=");
            p = put_u64(p, g->probe_seq);
            p = put_str(p, "i,sent_mono_ns=");
            p = put_i64(p, mono);
            *p++ = 'i';
            break;
        case PROTO_STATSD:
            p = put_str(p, "rf_probe.sent_mono_ns:");
            p = put_i64(p, mono);
            p = put_str(p, "|g|#gen:ringflow-load");
            break;
        case PROTO_GRAPHITE:
            p = put_str(p, "rf_probe.sent_mono_ns ");
            p = put_i64(p, mono);
            p = put_str(p, " -1");
            break;
        }
        *p++ = '\n';
        *events = 1;
        return p;
    }

    uint64_t idx = g->next_series++;
    if (g->next_series == o->series)
        g->next_series = 0;
    load_series *s = &g->series[idx];
    uint32_t nf = o->proto == PROTO_INFLUX ? o->fields : 1;
    if (o->churn > 0) {
        /* The window's start after `wall_ns - start` of the stream; slot idx
         * holds the one number of the window that is idx modulo --series,
         * so the oldest numbers leave as the new ones come. */
        const double minutes = (double)(wall_ns - g->start_wall) / (60.0 * RF_NS_PER_S);
        const uint64_t base = minutes > 0 ? (uint64_t)(minutes * o->churn) : 0;
        const uint64_t n = o->series;
        idx = base + (idx + n - base % n) % n;
    }

    switch (o->proto) {
    case PROTO_INFLUX:
        p = put_str(p, "load,series=s");
        p = put_u64(p, idx);
        for (uint32_t t = 1; t < o->tags; t++) {
            p = put_str(p, ",t");
            p = put_u64(p, t);
            p = put_str(p, "=v");
            p = put_u64(p, idx % (7 * t + 3));
        }
        *p++ = ' ';
        for (uint32_t f = 0; f < nf; f++) {
            advance_value(g, s);
            if (f)
                *p++ = ',';
            *p++ = 'f';
            p = put_u64(p, f);
            *p++ = '=';
            if (o->shape == SHAPE_COUNTER) {
                p = put_i64(p, s->scaled);
                *p++ = 'i';
            } else {
                p = put_scaled(p, s->scaled + (int64_t)f * g->pow10[o->decimals], o->decimals,
                               g->pow10);
            }
        }
        if (o->timestamps) {
            *p++ = ' ';
            p = put_i64(p, wall_ns);
        }
        break;
    case PROTO_STATSD:
        advance_value(g, s);
        p = put_str(p, "load.s");
        p = put_u64(p, idx);
        *p++ = ':';
        if (o->shape == SHAPE_COUNTER) {
            p = put_u64(p, (uint64_t)(rng_next(&g->rng) % 100));
            p = put_str(p, "|c");
        } else {
            p = put_scaled(p, s->scaled, o->decimals, g->pow10);
            p = put_str(p, "|g");
        }
        if (o->tags > 1) {
            p = put_str(p, "|#");
            for (uint32_t t = 1; t < o->tags; t++) {
                if (t > 1)
                    *p++ = ',';
                *p++ = 't';
                p = put_u64(p, t);
                p = put_str(p, ":v");
                p = put_u64(p, idx % (7 * t + 3));
            }
        }
        break;
    case PROTO_GRAPHITE:
        advance_value(g, s);
        p = put_str(p, "load.s");
        p = put_u64(p, idx);
        for (uint32_t t = 1; t < o->tags; t++) {
            p = put_str(p, ";t");
            p = put_u64(p, t);
            p = put_str(p, "=v");
            p = put_u64(p, idx % (7 * t + 3));
        }
        *p++ = ' ';
        p = put_scaled(p, s->scaled, o->decimals, g->pow10);
        *p++ = ' ';
        if (o->timestamps)
            p = put_i64(p, wall_ns / RF_NS_PER_S);
        else
            p = put_str(p, "-1");
        break;
    }
    *p++ = '\n';
    *events = nf;
    return p;
}

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: ringflow load [OPTIONS]\n"
        "Sends synthetic telemetry to a running engine.\n\n"
        "  --target HOST:PORT     where to send (default 127.0.0.1:8089)\n"
        "  --transport udp|tcp    (default udp)\n"
        "  --protocol influx|statsd|graphite (default influx)\n"
        "  --rate N               events per second (500k, 2M), 0 = as fast as possible (default "
        "100000)\n"
        "  --duration TIME        how long: seconds, or 30s, 2m (default 10)\n"
        "  --count N              stop after N events instead\n"
        "  --series N             distinct series (default 1000)\n"
        "  --tags N               tags per series, including series=sN (default 3)\n"
        "  --fields N             fields per line protocol line (default 1)\n"
        "  --shape walk|counter|const  value shape (default walk)\n"
        "  --decimals D           decimals of walk/const values, 0..9 (default 2)\n"
        "  --payload BYTES        largest datagram or write (default 8192)\n"
        "  --critical F           fraction of lines sent as rf_probe lines (default 0)\n"
        "  --timestamps           send explicit timestamps (default: the engine stamps receipt)\n"
        "  --seed N               PRNG seed (default 1): the same seed sends the same stream\n"
        "  --burst RATE:LEN:EVERY send at RATE events/s for LEN seconds out of every EVERY\n"
        "                         seconds, at --rate the rest of the time (e.g. 2e6:0.2:2)\n"
        "  --sockets N            send from N sockets in turn, one batch each (default 1): N\n"
        "                         source ports (TCP: connections), so SO_REUSEPORT spreads the\n"
        "                         flows over the engine's workers\n"
        "  --churn RATE           series replaced per minute: RATE new series numbers take the\n"
        "                         place of the RATE oldest every minute (default 0)\n"
        "  --record FILE          write the stream to a recording in simulated time instead of\n"
        "                         sending it (--duration and --rate are simulated; replay it with\n"
        "                         ringflow replay FILE --into DIR)\n"
        "  --json                 summary as JSON\n"
        "  --quiet                no progress lines\n");
}

static int parse_opts(int argc, char **argv, load_opts *o)
{
    *o = (load_opts){.rate = 100000,
                     .duration_s = 10,
                     .series = 1000,
                     .tags = 3,
                     .fields = 1,
                     .shape = SHAPE_WALK,
                     .decimals = 2,
                     .payload = 8192,
                     .seed = 1,
                     .sockets = 1};
    snprintf(o->host, sizeof(o->host), "127.0.0.1");
    snprintf(o->port, sizeof(o->port), "8089");
    static const struct option opts[] = {{"target", required_argument, NULL, 't'},
                                         {"transport", required_argument, NULL, 'T'},
                                         {"protocol", required_argument, NULL, 'p'},
                                         {"rate", required_argument, NULL, 'r'},
                                         {"duration", required_argument, NULL, 'd'},
                                         {"count", required_argument, NULL, 'n'},
                                         {"series", required_argument, NULL, 's'},
                                         {"tags", required_argument, NULL, 'g'},
                                         {"fields", required_argument, NULL, 'f'},
                                         {"shape", required_argument, NULL, 'S'},
                                         {"decimals", required_argument, NULL, 'D'},
                                         {"payload", required_argument, NULL, 'P'},
                                         {"critical", required_argument, NULL, 'c'},
                                         {"seed", required_argument, NULL, 'e'},
                                         {"timestamps", no_argument, NULL, 'm'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"sockets", required_argument, NULL, 'k'},
                                         {"burst", required_argument, NULL, 'b'},
                                         {"churn", required_argument, NULL, 'C'},
                                         {"record", required_argument, NULL, 'R'},
                                         {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 't':
            if (rf_net_target_option("load", optarg, o->host, sizeof(o->host), o->port,
                                     sizeof(o->port)) < 0)
                return 2;
            break;
        case 'T':
            if (rf_net_transport_option("load", optarg, &o->tcp) < 0)
                return 2;
            break;
        case 'p':
            if (!strcmp(optarg, "influx"))
                o->proto = PROTO_INFLUX;
            else if (!strcmp(optarg, "statsd"))
                o->proto = PROTO_STATSD;
            else if (!strcmp(optarg, "graphite"))
                o->proto = PROTO_GRAPHITE;
            else {
                fprintf(stderr,
                        "ringflow load: --protocol is influx, statsd or graphite, got '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'S':
            if (!strcmp(optarg, "walk"))
                o->shape = SHAPE_WALK;
            else if (!strcmp(optarg, "counter"))
                o->shape = SHAPE_COUNTER;
            else if (!strcmp(optarg, "const"))
                o->shape = SHAPE_CONST;
            else {
                fprintf(stderr, "ringflow load: --shape is walk, counter or const, got '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'r':
            /* 500000, 500k, 1.5M, 2G: events per second. */
            o->rate = strtod(optarg, &end);
            if (end != optarg && (*end == 'k' || *end == 'K' || *end == 'M' || *end == 'G') &&
                end[1] == '\0') {
                o->rate *= *end == 'G' ? 1e9 : *end == 'M' ? 1e6 : 1e3;
                end++;
            }
            break;
        case 'd': {
            /* Seconds, or a duration with a unit as in the configuration (5s, 2m). */
            uint64_t ns;
            o->duration_s = strtod(optarg, &end);
            if (*end && rf_cfg_parse_duration(optarg, &ns) == 0) {
                o->duration_s = (double)ns / 1e9;
                end = optarg + strlen(optarg);
            }
            break;
        }
        case 'n': o->count = strtoull(optarg, &end, 10); break;
        case 's': o->series = (uint32_t)strtoul(optarg, &end, 10); break;
        case 'g': o->tags = (uint32_t)strtoul(optarg, &end, 10); break;
        case 'f': o->fields = (uint32_t)strtoul(optarg, &end, 10); break;
        case 'D': o->decimals = (uint32_t)strtoul(optarg, &end, 10); break;
        case 'P': o->payload = (uint32_t)strtoul(optarg, &end, 10); break;
        case 'c': o->critical = strtod(optarg, &end); break;
        case 'e': o->seed = strtoull(optarg, &end, 10); break;
        case 'm': o->timestamps = true; break;
        case 'j': o->json = true; break;
        case 'q': o->quiet = true; break;
        case 'k': o->sockets = (uint32_t)strtoul(optarg, &end, 10); break;
        case 'C': o->churn = strtod(optarg, &end); break;
        case 'R': snprintf(o->record, sizeof(o->record), "%s", optarg); break;
        case 'b':
            if (sscanf(optarg, "%lf:%lf:%lf", &o->burst_rate, &o->burst_len_s, &o->burst_every_s) !=
                    3 ||
                !(o->burst_rate > 0) || !(o->burst_len_s > 0) ||
                !(o->burst_every_s > o->burst_len_s)) {
                fprintf(stderr,
                        "ringflow load: --burst wants RATE:LEN:EVERY with RATE > 0 and "
                        "0 < LEN < EVERY (seconds), got '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 1;
        default: usage(stderr); return 2;
        }
        if (end && *end) {
            fprintf(stderr, "ringflow load: '%s' is not a number\n", optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ringflow load: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    const char *bad = NULL;
    if (o->rate < 0)
        bad = "--rate must be >= 0";
    else if (o->duration_s <= 0 && !o->count)
        bad = "--duration must be > 0";
    else if (o->series < 1 || o->series > 100000000)
        bad = "--series must be 1..100000000";
    else if (o->tags < 1 || o->tags > 64)
        bad = "--tags must be 1..64";
    else if (o->fields < 1 || o->fields > 64)
        bad = "--fields must be 1..64";
    else if (o->decimals > 9)
        bad = "--decimals must be 0..9";
    else if (o->payload < 1200 || o->payload > LOAD_MAX_PAYLOAD)
        bad = "--payload must be 1200..65000";
    else if (o->critical < 0 || o->critical > 1)
        bad = "--critical must be 0..1";
    else if (o->sockets < 1 || o->sockets > LOAD_MAX_SOCKETS)
        bad = "--sockets must be 1..256";
    else if (o->burst_rate > 0 && o->rate <= 0)
        bad = "--burst needs a fixed --rate (> 0) between bursts";
    else if (!(o->churn >= 0) || o->churn > 1e9)
        bad = "--churn must be 0..1e9 series a minute";
    else if (o->record[0] && (o->rate <= 0 || o->tcp))
        bad = "--record needs a fixed --rate (> 0) and udp";
    if (bad) {
        fprintf(stderr, "ringflow load: %s\n", bad);
        return 2;
    }
    return 0;
}

/* Events that should have been sent t seconds after the start: the integral
 * of the rate, which with bursts is piecewise constant over each period. */
static double events_due(const load_opts *o, double t)
{
    if (o->burst_rate <= 0)
        return t * o->rate;
    const double per =
        o->burst_rate * o->burst_len_s + o->rate * (o->burst_every_s - o->burst_len_s);
    double k = floor(t / o->burst_every_s), rem = t - k * o->burst_every_s;
    double in = rem < o->burst_len_s
                    ? o->burst_rate * rem
                    : o->burst_rate * o->burst_len_s + o->rate * (rem - o->burst_len_s);
    return k * per + in;
}

static int open_socket(const load_opts *o, struct sockaddr_storage *dst, socklen_t *dlen)
{
    rf_err err;
    const rf_net_socket_opts so = {.socktype = o->tcp ? SOCK_STREAM : SOCK_DGRAM,
                                   .sndbuf = 8 << 20};
    int fd = rf_net_socket(o->host, o->port, &so, dst, dlen, &err);
    if (fd < 0)
        fprintf(stderr, "ringflow load: %s\n", err.msg);
    return fd;
}

/* --record: the stream in simulated time, one record per datagram, on the
 * listener name "load" (a replay configuration names its listener so to
 * give it settings of its own). Steps of 100 ms of simulated time. */
#define LOAD_RECORD_STEP_NS (100 * RF_NS_PER_MS)

static int record_stream(const load_opts *o, load_gen *g, char *buf)
{
    static const uint8_t protocols[] = {[PROTO_INFLUX] = RF_REC_INFLUX,
                                        [PROTO_STATSD] = RF_REC_STATSD,
                                        [PROTO_GRAPHITE] = RF_REC_GRAPHITE};
    rf_rec_writer *w = NULL;
    const rf_rec_writer_options wo = {.path = o->record};
    rf_err err = {0};
    if (rf_rec_writer_open(&w, &wo, &err) != 0) {
        fprintf(stderr, "ringflow load: %s\n", err.msg);
        return 1;
    }
    const int64_t end = (int64_t)(o->duration_s * 1e9);
    uint64_t events = 0, lines = 0, records = 0, bytes = 0;
    int rc = 0;
    for (int64_t t = 0; t < end && !g_stop && rc == 0; t += LOAD_RECORD_STEP_NS) {
        double due = events_due(o, (double)(t + LOAD_RECORD_STEP_NS) * 1e-9);
        if (o->count && due > (double)o->count)
            due = (double)o->count;
        const int64_t wall = g->start_wall + t;
        while ((double)events < due && rc == 0) {
            char *p = buf;
            while ((size_t)(p - buf) + 1024 <= o->payload && (double)events < due) {
                uint32_t ev;
                p = format_line(g, p, wall, &ev);
                events += ev;
                lines++;
            }
            const rf_rec r = {
                .wall_ns = wall,
                .mono_ns = t,
                .transport = RF_REC_UDP,
                .protocol = protocols[o->proto],
                .src_port = 40000,
                .src_family = 4,
                .src_addr = {127, 0, 0, 1},
                .name = "load",
                .payload = (const uint8_t *)buf,
                .payload_len = (uint32_t)(p - buf),
            };
            rc = rf_rec_writer_append(w, &r, &err);
            records++;
            bytes += r.payload_len;
        }
    }
    if (rf_rec_writer_close(w, rc ? NULL : &err) != 0 && rc == 0)
        rc = -1;
    if (rc) {
        fprintf(stderr, "ringflow load: %s: %s\n", o->record, err.msg);
        return 1;
    }
    if (o->json)
        printf("{\"events\":%lu,\"lines\":%lu,\"records\":%lu,\"bytes\":%lu,"
               "\"simulated_s\":%.3f}\n",
               (unsigned long)events, (unsigned long)lines, (unsigned long)records,
               (unsigned long)bytes, o->duration_s);
    else
        printf("recorded %lu events in %lu lines, %lu records, %lu bytes, %.3f s simulated, "
               "into %s\n",
               (unsigned long)events, (unsigned long)lines, (unsigned long)records,
               (unsigned long)bytes, o->duration_s, o->record);
    return 0;
}

static int load_prepare(const load_opts *o, load_gen *g)
{
    g->o = o;
    g->rng = o->seed ? o->seed : 1;
    g->series = calloc(o->series, sizeof(load_series));
    if (!g->series)
        return -ENOMEM;
    g->pow10[0] = 1;
    for (int i = 1; i < 19; i++)
        g->pow10[i] = g->pow10[i - 1] * 10;
    for (uint32_t i = 0; i < o->series; i++)
        g->series[i].scaled = (int64_t)(rng_next(&g->rng) % 10000) * g->pow10[o->decimals] / 100;
    g->probe_threshold = (uint64_t)(o->critical * 18446744073709551615.0);
    g->start_wall = rf_clock_wall_ns();
    return 0;
}

int rf_cli_load(int argc, char **argv)
{
    load_opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (o.record[0]) {
        load_gen rg = {0};
        char *rbuf = malloc(LOAD_MAX_PAYLOAD);
        rc = !rbuf || load_prepare(&o, &rg) < 0 ? 1 : record_stream(&o, &rg, rbuf);
        free(rbuf);
        free(rg.series);
        return rc;
    }

    struct sockaddr_storage dst;
    socklen_t dlen;
    /* Each socket has its own source port: a separate flow for the kernel's
     * SO_REUSEPORT hash. Batches go to them in turn. */
    int fds[LOAD_MAX_SOCKETS];
    for (uint32_t i = 0; i < o.sockets; i++) {
        fds[i] = open_socket(&o, &dst, &dlen);
        if (fds[i] < 0) {
            while (i-- > 0)
                close(fds[i]);
            return 1;
        }
    }
    uint32_t next_fd = 0;
    int fd = fds[0];

    load_gen g = {0};
    char *buf = malloc((size_t)LOAD_MAX_DGRAMS * LOAD_MAX_PAYLOAD);
    if (load_prepare(&o, &g) < 0 || !buf) {
        fprintf(stderr, "ringflow load: out of memory\n");
        free(buf);
        free(g.series);
        for (uint32_t i = 0; i < o.sockets; i++)
            close(fds[i]);
        return 1;
    }

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct mmsghdr msgs[LOAD_MAX_DGRAMS];
    struct iovec iov[LOAD_MAX_DGRAMS];
    uint64_t events = 0, lines = 0, dgrams = 0, bytes = 0, errors = 0;
    const int64_t t0 = rf_clock_mono_ns();
    const int64_t end_ns = o.count ? INT64_MAX : t0 + (int64_t)(o.duration_s * 1e9);
    int64_t next_report = t0 + RF_NS_PER_S;
    uint64_t last_events = 0;
    /* About how many lines fill one datagram (lines are ~40-300 bytes). */
    const uint64_t fill_lines = o.tcp ? 64 : (o.payload / 128 > 1 ? o.payload / 128 : 1);
    int64_t last_send_ns = t0;

    while (!g_stop) {
        int64_t now = rf_clock_mono_ns();
        if (now >= end_ns || (o.count && events >= o.count))
            break;
        uint64_t budget = UINT64_MAX;
        if (o.rate > 0) {
            double due = events_due(&o, (double)(now - t0) * 1e-9);
            if ((double)events >= due) {
                struct timespec ts = {0, 100 * 1000};
                nanosleep(&ts, NULL);
                continue;
            }
            budget = (uint64_t)(due - (double)events) + 1;
            /* Collectors send full datagrams: wait (at most 1 ms) until a
             * datagram's worth of lines is due instead of sending a line or
             * two at a time, which would measure per-datagram costs only. */
            if (budget < fill_lines && now - last_send_ns < RF_NS_PER_MS) {
                struct timespec ts = {0, 50 * 1000};
                nanosleep(&ts, NULL);
                continue;
            }
        }
        if (o.count && o.count - events < budget)
            budget = o.count - events;

        /* Fill up to LOAD_MAX_DGRAMS datagrams (or one TCP write). */
        last_send_ns = now;
        int64_t wall = rf_clock_wall_ns();
        unsigned nd = 0;
        uint64_t batch_events = 0;
        while (nd < (o.tcp ? 1u : (unsigned)LOAD_MAX_DGRAMS) && batch_events < budget) {
            char *start = buf + (size_t)nd * LOAD_MAX_PAYLOAD;
            char *p = start;
            const size_t cap = o.tcp ? (size_t)LOAD_MAX_PAYLOAD : o.payload;
            while ((size_t)(p - start) + 1024 <= cap && batch_events < budget) {
                uint32_t ev;
                p = format_line(&g, p, wall, &ev);
                batch_events += ev;
                lines++;
            }
            iov[nd] = (struct iovec){.iov_base = start, .iov_len = (size_t)(p - start)};
            nd++;
        }
        fd = fds[next_fd];
        if (++next_fd == o.sockets)
            next_fd = 0;
        if (o.tcp) {
            size_t off = 0;
            while (off < iov[0].iov_len) {
                ssize_t w =
                    send(fd, (char *)iov[0].iov_base + off, iov[0].iov_len - off, MSG_NOSIGNAL);
                if (w < 0) {
                    if (errno == EINTR)
                        continue;
                    fprintf(stderr, "ringflow load: send: %s\n", strerror(errno));
                    g_stop = 1;
                    errors++;
                    break;
                }
                off += (size_t)w;
            }
            bytes += off;
            dgrams++;
        } else {
            for (unsigned i = 0; i < nd; i++)
                msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i], .msg_iovlen = 1}};
            unsigned sent = 0;
            while (sent < nd) {
                int n = sendmmsg(fd, msgs + sent, nd - sent, 0);
                if (n < 0) {
                    if (errno == EINTR)
                        continue;
                    /* ECONNREFUSED (nobody listening yet) or ENOBUFS: count
                     * the batch's datagrams as failed and go on. */
                    errors += nd - sent;
                    break;
                }
                for (int i = 0; i < n; i++)
                    bytes += msgs[sent + (unsigned)i].msg_len;
                sent += (unsigned)n;
            }
            dgrams += sent;
        }
        events += batch_events;

        if (!o.quiet && now >= next_report) {
            fprintf(stderr, "ringflow load: %.1f s  %lu events  %.0f events/s  %lu errors\n",
                    (double)(now - t0) * 1e-9, (unsigned long)events,
                    (double)(events - last_events), (unsigned long)errors);
            last_events = events;
            next_report += RF_NS_PER_S;
        }
    }
    double elapsed = (double)(rf_clock_mono_ns() - t0) * 1e-9;
    if (o.json)
        printf("{\"events\":%lu,\"lines\":%lu,\"sends\":%lu,\"bytes\":%lu,\"errors\":%lu,"
               "\"probes\":%lu,\"elapsed_s\":%.3f,\"events_per_s\":%.0f}\n",
               (unsigned long)events, (unsigned long)lines, (unsigned long)dgrams,
               (unsigned long)bytes, (unsigned long)errors, (unsigned long)g.probe_seq, elapsed,
               elapsed > 0 ? (double)events / elapsed : 0.0);
    else
        printf("sent %lu events in %lu lines, %lu %s, %lu bytes, in %.3f s: %.0f events/s; "
               "%lu probes; %lu errors\n",
               (unsigned long)events, (unsigned long)lines, (unsigned long)dgrams,
               o.tcp ? "writes" : "datagrams", (unsigned long)bytes, elapsed,
               elapsed > 0 ? (double)events / elapsed : 0.0, (unsigned long)g.probe_seq,
               (unsigned long)errors);
    free(buf);
    free(g.series);
    for (uint32_t i = 0; i < o.sockets; i++)
        close(fds[i]);
    return errors && dgrams == 0 ? 1 : 0;
}
