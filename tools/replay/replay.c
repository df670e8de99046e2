/* ringflow replay: sends recorded traffic to a running engine.
 *
 * Inputs (detected by their first bytes):
 *   - recordings of `ringflow record` (storage/recfile/recfile.h), one file, the
 *     files of a rotated recording in order, or a base path whose rotated
 *     files <path>.NNNNNN exist;
 *   - classic libpcap captures (microsecond or nanosecond, either byte
 *     order; Ethernet with VLAN tags, Linux cooked v1/v2, raw IP, BSD
 *     loopback): the UDP payloads of IPv4/IPv6 packets; fragments, TCP and
 *     everything else are skipped and counted. pcapng is refused with a hint;
 *   - anything else is a text file of lines (line protocol, StatsD, Graphite:
 *     --protocol says which), packed into datagrams of at most --max-datagram.
 *
 * Pacing: each item is due at start + (its receive time - the first one's) /
 * speed; recordings pace on the monotonic receive time, pcaps on the packet
 * time. `--speed max` sends back to back; text files carry no times and are
 * always sent at full speed.
 *
 * Sending: UDP through one connected socket with sendmmsg batches; a payload
 * larger than --max-datagram (a recorded TCP chunk) is cut at line
 * boundaries. TCP through one connection; a datagram that does not end with
 * '\n' gets one, so lines from different datagrams never merge.
 *
 * --rewrite-timestamps appends the recorded receive wall time to every
 * line-protocol line that has no timestamp (Graphite: replaces a missing or -1
 * timestamp; StatsD has none and passes unchanged, counted), so a replay into
 * a fresh engine carries the original times instead of the replay's.
 *
 * --into DIR sends nothing: recordings go through an in-process engine
 * built from a ringflowd configuration (tools/replay/replay_engine.h), in one
 * thread, in event time (the recording's clocks), as fast as it runs. The
 * same recording gives the same segment files and sink files every time.
 */
#include "tools/replay/replay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "core/config/config.h"
#include "core/log/log.h"
#include "storage/recfile/recfile.h"
#include "tools/replay/replay_engine.h"

#define RP_BATCH 64
#define RP_SLOT_BYTES 65536
#define RP_MAX_FILES 4096

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { (void)sig; g_stop = 1; }

/* ---- timestamp rewriting -------------------------------------------------- */

static char *put_i64(char *p, int64_t v)
{
    char tmp[24];
    int n = 0;
    uint64_t m = v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + m % 10);
        m /= 10;
    } while (m);
    if (v < 0)
        *p++ = '-';
    while (n)
        *p++ = tmp[--n];
    return p;
}

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Whether a line-protocol line (no '\n') has a timestamp: the part after the
 * field set. Escapes (backslash) and quoted string field values (which may
 * hold spaces) are honoured. Returns -1 for blank/comment lines, 0 without a
 * timestamp (and *end_of_fields set to where one would go), 1 with one. */
static int influx_has_ts(const char *s, size_t len, size_t *end_of_fields)
{
    size_t i = 0;
    while (i < len && is_blank(s[i]))
        i++;
    if (i == len || s[i] == '#')
        return -1;
    /* measurement and tags: up to the first unescaped space */
    while (i < len && s[i] != ' ') {
        if (s[i] == '\\' && i + 1 < len)
            i++;
        i++;
    }
    while (i < len && s[i] == ' ')
        i++;
    /* fields: up to the first unescaped space outside quotes */
    bool quoted = false;
    while (i < len && (quoted || s[i] != ' ')) {
        if (s[i] == '\\' && i + 1 < len)
            i++;
        else if (s[i] == '"')
            quoted = !quoted;
        i++;
    }
    size_t eof = i;
    while (eof > 0 && is_blank(s[eof - 1]))
        eof--;
    *end_of_fields = eof;
    while (i < len && is_blank(s[i]))
        i++;
    return i < len ? 1 : 0;
}

/* Copies line[0..head), a space when asked, ts, then line[tail..llen):
 * the line with ts put in place of what lay between head and tail. */
static char *splice_ts(char *o, const char *line, size_t llen, size_t head, size_t tail,
                       bool space, int64_t ts)
{
    memcpy(o, line, head);
    o += head;
    if (space)
        *o++ = ' ';
    o = put_i64(o, ts);
    memcpy(o, line + tail, llen - tail);
    return o + (llen - tail);
}

static int64_t in_precision(int64_t wall_ns, int precision)
{
    static const int64_t div[] = {1, 1000, 1000000, 1000000000};
    return wall_ns / div[precision >= 0 && precision <= 3 ? precision : 0];
}

size_t rf_replay_rewrite_influx(const char *in, size_t len, int64_t wall_ns, int precision,
                                char *out, uint64_t *rewritten)
{
    char *o = out;
    const int64_t ts = in_precision(wall_ns, precision);
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(in + pos, '\n', len - pos);
        size_t llen = nl ? (size_t)(nl - (in + pos)) : len - pos;
        const char *line = in + pos;
        size_t eof = 0;
        if (influx_has_ts(line, llen, &eof) == 0) {
            o = splice_ts(o, line, llen, eof, eof, true, ts); /* trailing blanks / '\r' kept */
            (*rewritten)++;
        } else {
            memcpy(o, line, llen);
            o += llen;
        }
        if (nl)
            *o++ = '\n';
        pos += llen + (nl ? 1 : 0);
    }
    return (size_t)(o - out);
}

size_t rf_replay_rewrite_graphite(const char *in, size_t len, int64_t wall_ns, char *out,
                                  uint64_t *rewritten)
{
    char *o = out;
    const int64_t ts = wall_ns / RF_NS_PER_S;
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(in + pos, '\n', len - pos);
        size_t llen = nl ? (size_t)(nl - (in + pos)) : len - pos;
        const char *line = in + pos;
        /* tokens: path value [timestamp] */
        size_t tok_start[4], tok_end[4], nt = 0, i = 0;
        while (i < llen && nt < 4) {
            while (i < llen && is_blank(line[i]))
                i++;
            if (i == llen)
                break;
            tok_start[nt] = i;
            while (i < llen && !is_blank(line[i]))
                i++;
            tok_end[nt++] = i;
        }
        bool comment = nt > 0 && line[tok_start[0]] == '#';
        if (!comment && nt == 2) {
            o = splice_ts(o, line, llen, tok_end[1], tok_end[1], true, ts);
            (*rewritten)++;
        } else if (!comment && nt == 3 && tok_end[2] - tok_start[2] == 2 &&
                   !memcmp(line + tok_start[2], "-1", 2)) {
            o = splice_ts(o, line, llen, tok_start[2], tok_end[2], false, ts);
            (*rewritten)++;
        } else {
            memcpy(o, line, llen);
            o += llen;
        }
        if (nl)
            *o++ = '\n';
        pos += llen + (nl ? 1 : 0);
    }
    return (size_t)(o - out);
}

/* ---- options ---------------------------------------------------------------- */

typedef struct rp_opts {
    char host[256];
    char port[16];
    bool tcp;
    double speed; /* 0 = max */
    int protocol; /* text files and --rewrite-timestamps of pcaps: enum rf_rec_protocol */
    bool protocol_set;
    bool rewrite;
    int precision;
    uint32_t max_datagram;
    uint32_t repeat;
    const char *listener; /* recordings: only this listener's records */
    int pcap_port;        /* pcaps: only datagrams to this UDP port; -1 = all */
    bool json;
    bool quiet;
    bool print;
    /* --into: the in-process engine */
    const char *into;
    const char *config;
    uint32_t workers;     /* 0: engine.workers of the configuration */
    int64_t tick_ns;      /* 0: the engine's default */
    bool sending_opts;    /* an option only a send takes was given */
    char **files;
    int n_files;
} rp_opts;

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: ringflow replay [OPTIONS] FILE...\n"
            "Sends a recording (ringflow record), a pcap capture or a file of lines to an engine.\n\n"
            "  --target HOST:PORT      where to send (default 127.0.0.1:8089)\n"
            "  --transport udp|tcp     (default udp)\n"
            "  --speed N|max           N times the recorded pace (default 1); max = back to back\n"
            "  --protocol influx|statsd|graphite  what a text file or pcap holds (default influx;\n"
            "                          recordings carry it per record)\n"
            "  --rewrite-timestamps    give lines without a timestamp the recorded receive time\n"
            "                          (line protocol, Graphite; not possible for text files)\n"
            "  --precision ns|us|ms|s  unit of rewritten line-protocol timestamps (default ns)\n"
            "  --listener NAME         recordings: only records of this listener\n"
            "  --pcap-port PORT        pcaps: only UDP datagrams sent to PORT\n"
            "  --max-datagram BYTES    largest UDP payload sent; bigger chunks are cut at line\n"
            "                          boundaries (default 65000; text files are packed to 8192)\n"
            "  --repeat N              send the input N times (default 1)\n"
            "  --json                  summary as JSON\n"
            "  --quiet                 no progress on the terminal\n"
            "  --print                 send nothing: print each item of the input on stdout\n"
            "                          (time, listener, transport, source, bytes, payload)\n\n"
            "In-process engine (recordings only; nothing is sent):\n"
            "  --into DIR              feed the recording into an engine built from a ringflowd\n"
            "                          configuration, writing into DIR (new or empty): the store\n"
            "                          in DIR/store, each json sink NAME into DIR/NAME.jsonl;\n"
            "                          lp_udp/lp_tcp sinks only count what they would forward\n"
            "  --config FILE           the ringflowd configuration (default: the embedded one)\n"
            "  --workers N             shards of the engine (default: engine.workers)\n"
            "  --tick DURATION         recorded time between ticks (default 10ms)\n"
            "  Event time: each record is parsed with the protocol and the receive times it\n"
            "  was recorded with, by its listener's parser settings; its events go to the\n"
            "  shard that owns them; windows, batches, TTLs, alert durations, block ages and\n"
            "  segment rolls run on the recorded clock; segments are named and dated by it;\n"
            "  retention does not run. The same recording into a new directory gives the same\n"
            "  segment files (names and bytes) and sink files, however fast the machine.\n"
            "  --listener works as for sending; --json prints the summary as JSON.\n\n"
            "A base path of a rotated recording (FILE with FILE.000001... on disk) replays all its\n"
            "files in order, as one timeline; each FILE argument starts its own (due at once;\n"
            "with --into the clock runs on from where the previous one ended).\n"
            "A torn or damaged tail ends that file's replay with a warning.\n");
}

static int parse_opts(int argc, char **argv, rp_opts *o)
{
    *o = (rp_opts){.speed = 1, .max_datagram = 65000, .repeat = 1, .pcap_port = -1};
    snprintf(o->host, sizeof(o->host), "127.0.0.1");
    snprintf(o->port, sizeof(o->port), "8089");
    static const struct option opts[] = {
        {"target", required_argument, NULL, 't'},       {"transport", required_argument, NULL, 'T'},
        {"speed", required_argument, NULL, 's'},        {"protocol", required_argument, NULL, 'p'},
        {"rewrite-timestamps", no_argument, NULL, 'w'}, {"precision", required_argument, NULL, 'P'},
        {"listener", required_argument, NULL, 'l'},     {"pcap-port", required_argument, NULL, 'o'},
        {"max-datagram", required_argument, NULL, 'm'}, {"repeat", required_argument, NULL, 'r'},
        {"json", no_argument, NULL, 'j'},               {"quiet", no_argument, NULL, 'q'},
        {"print", no_argument, NULL, 'D'},              {"help", no_argument, NULL, 'h'},
        {"into", required_argument, NULL, 'I'},         {"config", required_argument, NULL, 'C'},
        {"workers", required_argument, NULL, 'W'},      {"tick", required_argument, NULL, 'K'},
        {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end = NULL;
        if (c == 't' || c == 'T' || c == 's' || c == 'w' || c == 'P' || c == 'o' || c == 'm' ||
            c == 'r' || c == 'D')
            o->sending_opts = true;
        switch (c) {
        case 't': {
            const char *colon = strrchr(optarg, ':');
            if (!colon || colon == optarg || !colon[1]) {
                fprintf(stderr, "ringflow replay: --target wants HOST:PORT, got '%s'\n", optarg);
                return 2;
            }
            snprintf(o->host, sizeof(o->host), "%.*s", (int)(colon - optarg), optarg);
            size_t l = strlen(o->host);
            if (l >= 2 && o->host[0] == '[' && o->host[l - 1] == ']') {
                memmove(o->host, o->host + 1, l - 2);
                o->host[l - 2] = '\0';
            }
            snprintf(o->port, sizeof(o->port), "%s", colon + 1);
            break;
        }
        case 'T':
            if (!strcmp(optarg, "udp")) o->tcp = false;
            else if (!strcmp(optarg, "tcp")) o->tcp = true;
            else { fprintf(stderr, "ringflow replay: --transport is udp or tcp, got '%s'\n", optarg); return 2; }
            break;
        case 's':
            if (!strcmp(optarg, "max")) {
                o->speed = 0;
            } else {
                o->speed = strtod(optarg, &end);
                if (!*end && !(o->speed > 0)) {
                    fprintf(stderr, "ringflow replay: --speed must be > 0 or max\n");
                    return 2;
                }
            }
            break;
        case 'p':
            if (!strcmp(optarg, "influx") || !strcmp(optarg, "influx_line")) o->protocol = RF_REC_INFLUX;
            else if (!strcmp(optarg, "statsd")) o->protocol = RF_REC_STATSD;
            else if (!strcmp(optarg, "graphite")) o->protocol = RF_REC_GRAPHITE;
            else { fprintf(stderr, "ringflow replay: --protocol is influx, statsd or graphite, got '%s'\n", optarg); return 2; }
            o->protocol_set = true;
            break;
        case 'w': o->rewrite = true; break;
        case 'P':
            if (!strcmp(optarg, "ns")) o->precision = 0;
            else if (!strcmp(optarg, "us")) o->precision = 1;
            else if (!strcmp(optarg, "ms")) o->precision = 2;
            else if (!strcmp(optarg, "s")) o->precision = 3;
            else { fprintf(stderr, "ringflow replay: --precision is ns, us, ms or s\n"); return 2; }
            break;
        case 'l': o->listener = optarg; break;
        case 'o': o->pcap_port = (int)strtol(optarg, &end, 10); break;
        case 'm': o->max_datagram = (uint32_t)strtoul(optarg, &end, 10); break;
        case 'r': o->repeat = (uint32_t)strtoul(optarg, &end, 10); break;
        case 'j': o->json = true; break;
        case 'q': o->quiet = true; break;
        case 'D': o->print = true; break;
        case 'I': o->into = optarg; break;
        case 'C': o->config = optarg; break;
        case 'W': {
            unsigned long w = strtoul(optarg, &end, 10);
            if (!*end && (w < 1 || w > 64)) {
                fprintf(stderr, "ringflow replay: --workers must be 1..64\n");
                return 2;
            }
            o->workers = (uint32_t)w;
            break;
        }
        case 'K': {
            uint64_t ns = 0;
            if (rf_cfg_parse_duration(optarg, &ns) < 0 || ns < 1000 || ns > 3600ull * RF_NS_PER_S) {
                fprintf(stderr, "ringflow replay: --tick wants a duration from 1us to 1h "
                                "(e.g. 10ms), got '%s'\n", optarg);
                return 2;
            }
            o->tick_ns = (int64_t)ns;
            break;
        }
        case 'h': usage(stdout); return 1;
        default: usage(stderr); return 2;
        }
        if (end && *end) {
            fprintf(stderr, "ringflow replay: '%s' is not a number\n", optarg);
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "ringflow replay: no input file\n");
        usage(stderr);
        return 2;
    }
    if (o->max_datagram < 64 || o->max_datagram > 65507) {
        fprintf(stderr, "ringflow replay: --max-datagram must be 64..65507\n");
        return 2;
    }
    if (o->repeat < 1) {
        fprintf(stderr, "ringflow replay: --repeat must be >= 1\n");
        return 2;
    }
    if (o->pcap_port > 65535) {
        fprintf(stderr, "ringflow replay: --pcap-port must be 0..65535\n");
        return 2;
    }
    if (o->into && o->sending_opts) {
        fprintf(stderr, "ringflow replay: --into feeds an in-process engine in event time; "
                        "--target, --transport, --speed, --rewrite-timestamps, --precision, "
                        "--pcap-port, --max-datagram, --repeat and --print are for sending\n");
        return 2;
    }
    if (!o->into && (o->config || o->workers || o->tick_ns)) {
        fprintf(stderr, "ringflow replay: --config, --workers and --tick go with --into DIR\n");
        return 2;
    }
    o->files = argv + optind;
    o->n_files = argc - optind;
    return 0;
}

/* ---- sources --------------------------------------------------------------- */

typedef struct rp_item {
    const uint8_t *data;
    size_t len;
    bool has_time;
    int64_t pace_ns; /* monotonic-like time for pacing */
    int64_t wall_ns; /* receive wall time for --rewrite-timestamps */
    uint8_t protocol;
    bool from_tcp;   /* a chunk of complete lines (may exceed a datagram) */
} rp_item;

enum rp_kind { RP_RECORDING, RP_PCAP, RP_TEXT };

typedef struct rp_stats {
    uint64_t items, sends, lines, bytes, errors, oversize;
    uint64_t skipped_filter, skipped_nonudp, skipped_fragments, skipped_truncated;
    uint64_t rewritten, not_rewritable;
    uint64_t torn;
    /* Recordings: the first listener seen, and records of other listeners
     * sent to the same target (without --listener). */
    char first_listener[256];
    uint8_t first_protocol;
    uint64_t other_listeners, other_protocols;
} rp_stats;

typedef struct rp_src {
    enum rp_kind kind;
    const char *path;
    FILE *f;
    rf_rec_reader *rd;
    /* pcap */
    bool swapped, nanos;
    uint32_t linktype;
    uint8_t *pkt;
    size_t pkt_cap;
    /* text */
    uint8_t *text;
    size_t text_len, text_cap;
    size_t text_take; /* bytes of the current item, discarded by src_consumed */
    bool text_eof;
} rp_src;

static uint32_t rd32(const uint8_t *p, bool swapped)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swapped ? __builtin_bswap32(v) : v;
}
static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static int src_open(rp_src *s, const char *path, const rp_opts *o, rf_err *err)
{
    memset(s, 0, sizeof(*s));
    s->path = path;
    FILE *f = fopen(path, "rb");
    if (!f)
        return rf_err_set(err, errno, "%s: %s", path, strerror(errno));
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    uint8_t head[24];
    size_t n = fread(head, 1, sizeof(head), f);
    if (rf_rec_is_recording(head, n)) {
        rewind(f);
        s->kind = RP_RECORDING;
        return rf_rec_reader_open_stream(&s->rd, f, path, err);
    }
    uint32_t magic = n >= 4 ? rd32(head, false) : 0;
    if (magic == 0x0A0D0D0Au) {
        fclose(f);
        return rf_err_set(err, EPROTONOSUPPORT,
                          "%s: pcapng is not supported; convert it to classic pcap first "
                          "(editcap -F pcap IN OUT, from wireshark-common)", path);
    }
    if (n == 24 && (magic == 0xa1b2c3d4u || magic == 0xd4c3b2a1u || magic == 0xa1b23c4du ||
                    magic == 0x4d3cb2a1u)) {
        s->kind = RP_PCAP;
        s->swapped = magic == 0xd4c3b2a1u || magic == 0x4d3cb2a1u;
        s->nanos = magic == 0xa1b23c4du || magic == 0x4d3cb2a1u;
        s->linktype = rd32(head + 20, s->swapped) & 0x0fffffffu;
        s->f = f;
        return 0;
    }
    rewind(f);
    s->kind = RP_TEXT;
    s->f = f;
    (void)o;
    return 0;
}

static void src_close(rp_src *s)
{
    if (s->rd)
        rf_rec_reader_close(s->rd);
    else if (s->f)
        fclose(s->f);
    free(s->pkt);
    free(s->text);
    memset(s, 0, sizeof(*s));
}

/* Finds the UDP payload in a link-layer frame. Returns 1 and sets *payload,
 * 0 when the packet is not a whole UDP datagram (counted in st). */
static int pcap_udp(const rp_src *s, const uint8_t *p, size_t len, const rp_opts *o,
                    const uint8_t **payload, size_t *plen, rp_stats *st)
{
    unsigned ethertype = 0;
    size_t off = 0;
    switch (s->linktype) {
    case 1: /* Ethernet */
        if (len < 14)
            goto nonudp;
        ethertype = be16(p + 12);
        off = 14;
        while ((ethertype == 0x8100 || ethertype == 0x88a8) && len >= off + 4) {
            ethertype = be16(p + off + 2);
            off += 4;
        }
        break;
    case 113: /* Linux cooked v1 */
        if (len < 16)
            goto nonudp;
        ethertype = be16(p + 14);
        off = 16;
        break;
    case 276: /* Linux cooked v2 */
        if (len < 20)
            goto nonudp;
        ethertype = be16(p);
        off = 20;
        break;
    case 0: { /* BSD loopback: host-order family */
        if (len < 4)
            goto nonudp;
        uint32_t fam;
        memcpy(&fam, p, 4);
        if (s->swapped)
            fam = __builtin_bswap32(fam);
        ethertype = fam == 2 ? 0x0800 : (fam == 24 || fam == 28 || fam == 30) ? 0x86dd : 0;
        off = 4;
        break;
    }
    case 101: case 12: case 14: case 228: case 229: /* raw IP */
        if (len < 1)
            goto nonudp;
        ethertype = (p[0] >> 4) == 4 ? 0x0800 : (p[0] >> 4) == 6 ? 0x86dd : 0;
        break;
    default:
        goto nonudp;
    }
    const uint8_t *ip = p + off;
    size_t iplen = len - off, l4 = 0;
    unsigned proto;
    if (ethertype == 0x0800) {
        if (iplen < 20 || (ip[0] >> 4) != 4)
            goto nonudp;
        size_t ihl = (size_t)(ip[0] & 15) * 4, tot = be16(ip + 2);
        if (ihl < 20 || tot < ihl || tot > iplen)
            goto nonudp;
        if ((be16(ip + 6) & 0x3fff) != 0) { /* MF or an offset: a fragment */
            st->skipped_fragments++;
            return 0;
        }
        proto = ip[9];
        l4 = ihl;
        iplen = tot;
    } else if (ethertype == 0x86dd) {
        if (iplen < 40 || (ip[0] >> 4) != 6)
            goto nonudp;
        size_t pl = be16(ip + 4);
        if (40 + pl > iplen)
            goto nonudp;
        iplen = 40 + pl;
        proto = ip[6];
        l4 = 40;
        /* Extension headers we can step over. */
        while ((proto == 0 || proto == 43 || proto == 60) && l4 + 8 <= iplen) {
            proto = ip[l4];
            l4 += ((size_t)ip[l4 + 1] + 1) * 8;
        }
        if (proto == 44) {
            st->skipped_fragments++;
            return 0;
        }
    } else {
        goto nonudp;
    }
    if (proto != 17 || l4 + 8 > iplen)
        goto nonudp;
    const uint8_t *udp = ip + l4;
    size_t ulen = be16(udp + 4);
    if (ulen < 8 || l4 + ulen > iplen)
        goto nonudp;
    if (o->pcap_port >= 0 && be16(udp + 2) != (unsigned)o->pcap_port) {
        st->skipped_filter++;
        return 0;
    }
    *payload = udp + 8;
    *plen = ulen - 8;
    return 1;
nonudp:
    st->skipped_nonudp++;
    return 0;
}

/* Returns 1 with *it filled, 0 at the end, or a negative errno (a torn
 * recording: already reported, the caller goes on with the next file). */
static int src_next(rp_src *s, const rp_opts *o, rp_item *it, rp_stats *st, rf_err *err)
{
    switch (s->kind) {
    case RP_RECORDING:
        for (;;) {
            rf_rec r;
            int rc = rf_rec_reader_next(s->rd, &r, err);
            if (rc <= 0)
                return rc;
            if (o->listener && strcmp(o->listener, r.name) != 0) {
                st->skipped_filter++;
                continue;
            }
            if (!o->listener) {
                /* Every record goes to the one --target: a recording of several
                 * listeners (ringflow record --engine, or several ports) mixes
                 * their protocols there. Said once, and counted. */
                if (!st->first_listener[0]) {
                    snprintf(st->first_listener, sizeof(st->first_listener), "%s", r.name);
                    st->first_protocol = r.protocol;
                } else if (strcmp(st->first_listener, r.name) != 0) {
                    if (!st->other_listeners)
                        fprintf(stderr,
                                "ringflow replay: warning: %s holds records of more than one "
                                "listener (%s, %s%s): all of them go to the one target%s; replay "
                                "each with --listener NAME and its own --target (--print lists "
                                "them)\n",
                                s->path, st->first_listener, r.name,
                                r.protocol != st->first_protocol ? ", another protocol" : "",
                                r.protocol != st->first_protocol ? ", which parses them all as "
                                                                   "one protocol"
                                                                 : "");
                    st->other_listeners++;
                    st->other_protocols += r.protocol != st->first_protocol;
                }
            }
            *it = (rp_item){.data = r.payload, .len = r.payload_len, .has_time = true,
                            .pace_ns = r.mono_ns, .wall_ns = r.wall_ns, .protocol = r.protocol,
                            .from_tcp = r.transport == RF_REC_TCP};
            return 1;
        }
    case RP_PCAP:
        for (;;) {
            uint8_t h[16];
            size_t n = fread(h, 1, sizeof(h), s->f);
            if (n == 0)
                return 0;
            if (n < sizeof(h))
                return rf_err_set(err, EBADMSG, "%s: torn pcap packet header at the end", s->path);
            uint32_t sec = rd32(h, s->swapped), frac = rd32(h + 4, s->swapped);
            uint32_t incl = rd32(h + 8, s->swapped), orig = rd32(h + 12, s->swapped);
            if (incl > (256u << 20))
                return rf_err_set(err, EBADMSG, "%s: damaged pcap (packet of %u bytes)", s->path, incl);
            if (incl > s->pkt_cap) {
                uint8_t *b = realloc(s->pkt, incl);
                if (!b)
                    return rf_err_set(err, ENOMEM, "out of memory");
                s->pkt = b;
                s->pkt_cap = incl;
            }
            if (fread(s->pkt, 1, incl, s->f) != incl)
                return rf_err_set(err, EBADMSG, "%s: torn pcap packet at the end", s->path);
            if (incl < orig) {
                st->skipped_truncated++; /* snaplen cut it: the payload is incomplete */
                continue;
            }
            const uint8_t *payload;
            size_t plen;
            if (!pcap_udp(s, s->pkt, incl, o, &payload, &plen, st))
                continue;
            int64_t t = (int64_t)sec * RF_NS_PER_S + (int64_t)frac * (s->nanos ? 1 : 1000);
            *it = (rp_item){.data = payload, .len = plen, .has_time = true, .pace_ns = t,
                            .wall_ns = t, .protocol = (uint8_t)o->protocol};
            return 1;
        }
    case RP_TEXT: {
        /* Whole lines packed up to the datagram bound (TCP: 64 KiB chunks). */
        const size_t want = o->tcp ? 65536 : (o->max_datagram < 8192 ? o->max_datagram : 8192);
        if (s->text_cap < 2 * 65536 + 2) {
            s->text = malloc(2 * 65536 + 2);
            if (!s->text)
                return rf_err_set(err, ENOMEM, "out of memory");
            s->text_cap = 2 * 65536 + 2;
        }
        while (!s->text_eof && s->text_len < want + 1) {
            size_t n = fread(s->text + s->text_len, 1, s->text_cap - 1 - s->text_len, s->f);
            if (n == 0)
                s->text_eof = true;
            s->text_len += n;
        }
        if (s->text_len == 0)
            return 0;
        size_t take = s->text_len;
        if (take > want) {
            const uint8_t *nl = memrchr(s->text, '\n', want);
            if (nl) {
                take = (size_t)(nl - s->text) + 1;
            } else {
                /* A line longer than a datagram: send it alone (UDP will
                 * count it oversize). */
                const uint8_t *n2 = memchr(s->text, '\n', s->text_len);
                take = n2 ? (size_t)(n2 - s->text) + 1 : s->text_len;
            }
        }
        *it = (rp_item){.data = s->text, .len = take, .protocol = (uint8_t)o->protocol,
                        .from_tcp = true};
        s->text_take = take; /* the caller sends it, then calls src_consumed */
        return 1;
    }
    }
    return 0;
}

/* After an RP_TEXT item was sent: discard it from the buffer. */
static void src_consumed(rp_src *s)
{
    if (s->kind != RP_TEXT || !s->text_take)
        return;
    memmove(s->text, s->text + s->text_take, s->text_len - s->text_take);
    s->text_len -= s->text_take;
    s->text_take = 0;
}

/* ---- sender ------------------------------------------------------------------ */

typedef struct rp_sender {
    const rp_opts *o;
    int fd;
    char *slots;
    struct iovec iov[RP_BATCH];
    unsigned n;
    rp_stats *st;
    bool dead; /* TCP connection lost */
} rp_sender;

static int sender_open(rp_sender *sd, const rp_opts *o, rp_stats *st)
{
    *sd = (rp_sender){.o = o, .fd = -1, .st = st};
    struct addrinfo hints = {.ai_socktype = o->tcp ? SOCK_STREAM : SOCK_DGRAM}, *res = NULL;
    int rc = getaddrinfo(o->host, o->port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "ringflow replay: %s:%s: %s\n", o->host, o->port, gai_strerror(rc));
        return -1;
    }
    sd->fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
    if (sd->fd < 0 || connect(sd->fd, res->ai_addr, res->ai_addrlen) != 0) {
        fprintf(stderr, "ringflow replay: connect %s:%s: %s\n", o->host, o->port, strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    int sndbuf = 8 << 20;
    setsockopt(sd->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    if (!o->tcp && !(sd->slots = malloc((size_t)RP_BATCH * RP_SLOT_BYTES))) {
        fprintf(stderr, "ringflow replay: out of memory\n");
        return -1;
    }
    return 0;
}

/* Lines in a payload; an unterminated last line counts. */
static uint64_t count_lines(const char *p, size_t len)
{
    uint64_t n = len && p[len - 1] != '\n' ? 1 : 0;
    for (const char *e = p + len; (p = memchr(p, '\n', (size_t)(e - p))); p++)
        n++;
    return n;
}

static void sender_flush(rp_sender *sd)
{
    if (sd->o->tcp || sd->n == 0)
        return;
    struct mmsghdr msgs[RP_BATCH];
    for (unsigned i = 0; i < sd->n; i++)
        msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &sd->iov[i], .msg_iovlen = 1}};
    unsigned sent = 0;
    while (sent < sd->n) {
        int r = sendmmsg(sd->fd, msgs + sent, sd->n - sent, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            /* ECONNREFUSED (nobody listening: ICMP from an earlier send) or
             * ENOBUFS: this datagram failed; go on with the rest. */
            sd->st->errors++;
            sent++;
            continue;
        }
        for (int i = 0; i < r; i++) {
            sd->st->bytes += msgs[sent + (unsigned)i].msg_len;
            sd->st->lines += count_lines(sd->iov[sent + (unsigned)i].iov_base,
                                         sd->iov[sent + (unsigned)i].iov_len);
        }
        sd->st->sends += (unsigned)r;
        sent += (unsigned)r;
    }
    sd->n = 0;
}

static void udp_queue(rp_sender *sd, const char *p, size_t len)
{
    if (sd->n == RP_BATCH)
        sender_flush(sd);
    char *slot = sd->slots + (size_t)sd->n * RP_SLOT_BYTES;
    memcpy(slot, p, len);
    sd->iov[sd->n++] = (struct iovec){.iov_base = slot, .iov_len = len};
}

static void tcp_write(rp_sender *sd, const char *p, size_t len)
{
    size_t off = 0;
    while (off < len && !sd->dead) {
        ssize_t w = send(sd->fd, p + off, len - off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "ringflow replay: send: %s\n", strerror(errno));
            sd->st->errors++;
            sd->dead = true;
            g_stop = 1;
            return;
        }
        off += (size_t)w;
    }
    sd->st->bytes += off;
}

/* Sends one payload (already rewritten). */
static void sender_send(rp_sender *sd, const char *p, size_t len)
{
    if (sd->o->tcp) {
        tcp_write(sd, p, len);
        sd->st->lines += count_lines(p, len);
        if (len && p[len - 1] != '\n') {
            tcp_write(sd, "\n", 1); /* keep lines of different datagrams apart */
            sd->st->lines++;
        }
        sd->st->sends++;
        return;
    }
    const size_t max = sd->o->max_datagram;
    if (len <= max) {
        udp_queue(sd, p, len);
        return;
    }
    /* Larger than a datagram (a recorded TCP chunk, or a datagram grown by
     * rewriting): cut after a '\n'. */
    size_t pos = 0;
    while (pos < len) {
        size_t take = len - pos;
        if (take > max) {
            const char *nl = memrchr(p + pos, '\n', max);
            if (!nl) {
                /* One line longer than a datagram cannot go over UDP. */
                const char *n2 = memchr(p + pos, '\n', len - pos);
                size_t skip = n2 ? (size_t)(n2 - (p + pos)) + 1 : len - pos;
                sd->st->oversize++;
                pos += skip;
                continue;
            }
            take = (size_t)(nl - (p + pos)) + 1;
        }
        udp_queue(sd, p + pos, take);
        pos += take;
    }
}

/* ---- --print -------------------------------------------------------------------- */

/* One item per line: payload bytes outside printable ASCII are escaped
 * (\n, \t, \xNN) so a line of output is a line of input. */
static void print_payload(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t c = p[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '\\') fputs("\\\\", stdout);
        else if (c < 0x20 || c > 0x7e) printf("\\x%02x", c);
        else putchar(c);
    }
    putchar('\n');
}

static int print_inputs(const rp_opts *o, char **files, int n_files)
{
    rp_stats st = {0};
    int rc = 0;
    for (int fi = 0; fi < n_files; fi++) {
        rf_err err;
        if (strcmp(files[fi], "-") == 0)
            continue;
        FILE *f = fopen(files[fi], "rb");
        uint8_t head[8] = {0};
        size_t n = f ? fread(head, 1, sizeof(head), f) : 0;
        if (f)
            fclose(f);
        if (!rf_rec_is_recording(head, n)) {
            /* pcaps and text: the payloads as they would be sent */
            rp_src src;
            if (src_open(&src, files[fi], o, &err) != 0) {
                fprintf(stderr, "ringflow replay: %s\n", err.msg);
                return 1;
            }
            rp_item it;
            int r;
            while ((r = src_next(&src, o, &it, &st, &err)) > 0) {
                printf("%" PRId64 " - - - %zu ", it.has_time ? it.wall_ns : 0, it.len);
                print_payload(it.data, it.len);
                src_consumed(&src);
            }
            if (r < 0)
                fprintf(stderr, "ringflow replay: warning: %s\n", err.msg);
            src_close(&src);
            continue;
        }
        rf_rec_reader *rd;
        if (rf_rec_reader_open(&rd, files[fi], &err) != 0) {
            fprintf(stderr, "ringflow replay: %s\n", err.msg);
            return 1;
        }
        rf_rec r;
        int k;
        while ((k = rf_rec_reader_next(rd, &r, &err)) > 0) {
            if (o->listener && strcmp(o->listener, r.name) != 0)
                continue;
            char src[64];
            printf("%" PRId64 " %s %s %s %u ", r.wall_ns, r.name, rf_rec_transport_name(r.transport),
                   rf_rec_source_format(&r, src, sizeof(src)), r.payload_len);
            print_payload(r.payload, r.payload_len);
        }
        if (k < 0) {
            fprintf(stderr, "ringflow replay: warning: %s\n", err.msg);
            rc = 0; /* a torn tail is reported, not an error of the tool */
        }
        rf_rec_reader_close(rd);
    }
    return rc;
}

/* ---- main loop -------------------------------------------------------------------- */

static void sleep_until(int64_t due)
{
    for (;;) {
        int64_t now = rf_clock_mono_ns();
        if (now >= due || g_stop)
            return;
        int64_t d = due - now;
        /* Sleep most of it; the scheduler's wake-up slack is spent spinning. */
        if (d > 200 * RF_NS_PER_US) {
            struct timespec ts = {(d - 100 * RF_NS_PER_US) / RF_NS_PER_S,
                                  (d - 100 * RF_NS_PER_US) % RF_NS_PER_S};
            nanosleep(&ts, NULL);
        }
    }
}

/* Expands the inputs: a base path of a rotated recording becomes its files.
 * group[i] is the index of the argument file i came from: the files of one
 * argument share a timeline (pacing continues across them), each new
 * argument starts its own. */
static int expand_inputs(const rp_opts *o, char ***out, int *n_out, int *group)
{
    char **list = calloc(RP_MAX_FILES, sizeof(*list));
    int n = 0;
    if (!list)
        return -1;
    for (int i = 0; i < o->n_files; i++) {
        struct stat stt;
        if (stat(o->files[i], &stt) != 0) {
            char **rot = NULL;
            int k = rf_rec_list_rotated(o->files[i], &rot, NULL);
            if (k <= 0) {
                fprintf(stderr, "ringflow replay: %s: %s\n", o->files[i], strerror(ENOENT));
                free(rot);
                for (int j = 0; j < n; j++)
                    free(list[j]);
                free(list);
                return -1;
            }
            for (int j = 0; j < k; j++) {
                if (n < RP_MAX_FILES) {
                    group[n] = i;
                    list[n++] = rot[j];
                } else {
                    free(rot[j]);
                }
            }
            free(rot);
        } else if (n < RP_MAX_FILES) {
            group[n] = i;
            list[n++] = strdup(o->files[i]);
        }
    }
    *out = list;
    *n_out = n;
    return 0;
}

/* ---- --into: the in-process engine ------------------------------------------- */

static void print_summary_into(const rp_opts *o, const rf_replay_summary *m, double elapsed)
{
    if (o->json) {
        printf("{\"into\":\"%s\",\"workers\":%u,\"records\":%" PRIu64
               ",\"payload_bytes\":%" PRIu64 ",\"ticks\":%" PRIu64 ",\"first_wall_ns\":%" PRId64
               ",\"last_wall_ns\":%" PRId64 ",\"span_ns\":%" PRId64
               ",\"clock_steps_back\":%" PRIu64 ",\"peer_dropped\":%" PRIu64
               ",\"unknown_listener\":%" PRIu64
               ",\"skipped_records\":%" PRIu64 ",\"truncated\":%" PRIu64
               ",\"bad_protocol\":%" PRIu64 ",\"lines_ok\":%" PRIu64
               ",\"lines_rejected\":%" PRIu64 ",\"rejected\":{",
               o->into, m->workers, m->records, m->payload_bytes, m->ticks, m->first_wall_ns,
               m->last_wall_ns, m->span_ns, m->clock_steps_back, m->peer_dropped,
               m->unknown_listener,
               m->skipped_records, m->truncated, m->bad_protocol, m->lines_ok, m->lines_rejected);
        bool first = true;
        for (int r = 0; r < RF_REJ__COUNT; r++) {
            if (!m->rejected_by_reason[r])
                continue;
            printf("%s\"%s\":%" PRIu64, first ? "" : ",",
                   rf_reject_reason_name((enum rf_reject_reason)r), m->rejected_by_reason[r]);
            first = false;
        }
        printf("},\"events\":%" PRIu64 ",\"series_defs\":%" PRIu64 ",\"processed\":%" PRIu64
               ",\"unknown_series\":%" PRIu64 ",\"series_rejected\":%" PRIu64
               ",\"to_store\":%" PRIu64 ",\"store_rejected\":%" PRIu64 ",\"unrouted\":%" PRIu64
               ",\"aggregates\":%" PRIu64 ",\"alerts_fired\":%" PRIu64
               ",\"alerts_resolved\":%" PRIu64 ",\"correlated\":%" PRIu64
               ",\"sink_lines\":%" PRIu64 ",\"sink_dropped\":%" PRIu64
               ",\"not_forwarded\":%" PRIu64 ",\"points_appended\":%" PRIu64
               ",\"blocks_cut\":%" PRIu64 ",\"store_dropped\":%" PRIu64
               ",\"segments\":%" PRIu64 ",\"segment_bytes\":%" PRIu64
               ",\"elapsed_s\":%.3f}\n",
               m->events, m->series_defs, m->processed, m->unknown_series, m->series_rejected,
               m->to_store, m->store_rejected, m->unrouted, m->aggregates, m->alerts_fired,
               m->alerts_resolved, m->correlated, m->sink_lines, m->sink_dropped,
               m->not_forwarded, m->points_appended, m->blocks_cut, m->store_dropped, m->segments,
               m->segment_bytes, elapsed);
        return;
    }
    printf("replayed %" PRIu64 " records (%" PRIu64 " bytes, %.3f s of recorded time) into %s "
           "with %u workers in %.3f s: %" PRIu64 " lines, %" PRIu64 " rejected, %" PRIu64
           " events; %" PRIu64 " points stored in %" PRIu64 " blocks, %" PRIu64
           " segments (%" PRIu64 " bytes); %" PRIu64 " aggregates, %" PRIu64 " alerts fired, %"
           PRIu64 " resolved, %" PRIu64 " correlated; %" PRIu64 " sink lines\n",
           m->records, m->payload_bytes, (double)m->span_ns * 1e-9, o->into, m->workers, elapsed,
           m->lines_ok + m->lines_rejected, m->lines_rejected, m->events, m->points_appended,
           m->blocks_cut, m->segments, m->segment_bytes, m->aggregates, m->alerts_fired,
           m->alerts_resolved, m->correlated, m->sink_lines);
    for (int r = 0; r < RF_REJ__COUNT; r++)
        if (m->rejected_by_reason[r])
            printf("  rejected %s: %" PRIu64 "\n",
                   rf_reject_reason_name((enum rf_reject_reason)r), m->rejected_by_reason[r]);
    const struct {
        const char *what;
        uint64_t n;
    } drops[] = {
        {"records of listeners the configuration lacks (parsed as recorded)", m->unknown_listener},
        {"records skipped (too many unknown listener names)", m->skipped_records},
        {"records truncated by the capture (rejected)", m->truncated},
        {"records with an unknown protocol (skipped)", m->bad_protocol},
        {"records whose monotonic time went backwards (clock held)", m->clock_steps_back},
        {"messages between shards lost (no memory to queue them)", m->peer_dropped},
        {"events of unknown series", m->unknown_series},
        {"series refused by cardinality limits", m->series_rejected},
        {"events no route took", m->unrouted},
        {"events the store refused", m->store_rejected},
        {"points the store dropped", m->store_dropped},
        {"sink lines dropped", m->sink_dropped},
        {"events of lp_udp/lp_tcp sinks not forwarded (counted)", m->not_forwarded},
    };
    for (size_t i = 0; i < sizeof(drops) / sizeof(drops[0]); i++)
        if (drops[i].n)
            printf("  %s: %" PRIu64 "\n", drops[i].what, drops[i].n);
}

static int run_into(const rp_opts *o, char **files, int n_files)
{
    /* The engine's own records (store recovery, sinks) only when they matter. */
    rf_log_set_level(RF_LOG_WARN);
    rf_replay_engine_options eo = {
        .config = o->config, .dir = o->into, .workers = o->workers, .tick_ns = o->tick_ns};
    rf_replay_engine *e = NULL;
    rf_err err;
    rf_err_clear(&err);
    /* Every input must be a recording: nothing else has both receive clocks
     * and the listener it came in on. Checked before the directory is made. */
    for (int fi = 0; fi < n_files; fi++) {
        FILE *f = fopen(files[fi], "rb");
        uint8_t head[8] = {0};
        size_t n = f ? fread(head, 1, sizeof(head), f) : 0;
        if (f)
            fclose(f);
        if (!f) {
            fprintf(stderr, "ringflow replay: %s: %s\n", files[fi], strerror(errno));
            return 1;
        }
        if (!rf_rec_is_recording(head, n)) {
            fprintf(stderr,
                    "ringflow replay: %s: --into takes recordings (ringflow record): a pcap or "
                    "a text file has no monotonic receive time or listener; send it to a "
                    "daemon with --target instead\n",
                    files[fi]);
            return 2;
        }
    }
    if (rf_replay_engine_open(&eo, &e, &err) < 0) {
        fprintf(stderr, "ringflow replay: %s\n", err.msg);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    const bool tty = isatty(STDERR_FILENO) && !o->quiet && !o->json;
    const int64_t t0 = rf_clock_mono_ns();
    int64_t next_report = t0 + RF_NS_PER_S;
    uint64_t records = 0, torn = 0, filtered = 0;
    int rc = 0;
    for (int fi = 0; fi < n_files && !g_stop; fi++) {
        rf_rec_reader *rd;
        if (rf_rec_reader_open(&rd, files[fi], &err) != 0) {
            fprintf(stderr, "ringflow replay: %s\n", err.msg);
            rc = 1;
            break;
        }
        rf_rec r;
        int k = 0;
        while (!g_stop && (k = rf_rec_reader_next(rd, &r, &err)) > 0) {
            if (o->listener && strcmp(o->listener, r.name) != 0) {
                filtered++;
                continue;
            }
            rf_replay_engine_feed(e, &r);
            records++;
            if (tty && (records & 1023) == 0) {
                int64_t now = rf_clock_mono_ns();
                if (now >= next_report) {
                    fprintf(stderr, "\rringflow replay: %.0f s  %" PRIu64 " records   ",
                            (double)(now - t0) * 1e-9, records);
                    next_report = now + RF_NS_PER_S;
                }
            }
        }
        if (k < 0) {
            fprintf(stderr, "ringflow replay: warning: %s\n", err.msg);
            torn++;
        }
        rf_rec_reader_close(rd);
    }
    if (tty)
        fputc('\n', stderr);
    if (g_stop)
        fprintf(stderr, "ringflow replay: interrupted: what was fed so far is drained and stored\n");
    rf_replay_summary m;
    if (rf_replay_engine_finish(e, &m, &err) < 0) {
        fprintf(stderr, "ringflow replay: %s\n", err.msg);
        rc = 1;
    }
    rf_replay_engine_free(e);
    print_summary_into(o, &m, (double)(rf_clock_mono_ns() - t0) * 1e-9);
    if (!o->json && (filtered || torn))
        printf("  records of other listeners skipped (--listener): %" PRIu64
               "; torn or damaged files: %" PRIu64 "\n", filtered, torn);
    return rc;
}

int rf_cli_replay(int argc, char **argv)
{
    rp_opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : rc;
    char **files = NULL;
    int n_files = 0;
    static int group[RP_MAX_FILES];
    if (expand_inputs(&o, &files, &n_files, group) != 0)
        return 1;

    if (o.into) {
        rc = run_into(&o, files, n_files);
        for (int i = 0; i < n_files; i++)
            free(files[i]);
        free(files);
        return rc;
    }
    if (o.print) {
        rc = print_inputs(&o, files, n_files);
        for (int i = 0; i < n_files; i++)
            free(files[i]);
        free(files);
        return rc;
    }
    rp_stats st = {0};
    rp_sender sd;
    char *rewrite_buf = NULL;
    if (sender_open(&sd, &o, &st) != 0) {
        rc = 1;
        goto out;
    }
    size_t rewrite_cap = 0;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    const bool tty = isatty(STDERR_FILENO) && !o.quiet;
    const int64_t t0 = rf_clock_mono_ns();
    int64_t next_report = t0 + RF_NS_PER_S;
    uint64_t last_items = 0;
    bool warned_text_rewrite = false;

    for (uint32_t rep = 0; rep < o.repeat && !g_stop; rep++) {
        /* Pacing restarts with each pass: the first item of a pass is due at once. */
        bool have_base = false;
        int64_t base_pace = 0, base_now = 0;
        for (int fi = 0; fi < n_files && !g_stop; fi++) {
            rp_src src;
            rf_err err;
            if (fi > 0 && group[fi] != group[fi - 1])
                have_base = false; /* another input: its own timeline, due at once */
            if (src_open(&src, files[fi], &o, &err) != 0) {
                fprintf(stderr, "ringflow replay: %s\n", err.msg);
                rc = 1;
                goto out;
            }
            if (src.kind == RP_TEXT && o.rewrite && !warned_text_rewrite) {
                fprintf(stderr, "ringflow replay: %s: a text file has no receive times; "
                                "sending it without --rewrite-timestamps\n", files[fi]);
                warned_text_rewrite = true;
            }
            rp_item it = {0};
            int r = 0;
            while (!g_stop && (r = src_next(&src, &o, &it, &st, &err)) > 0) {
                if (it.has_time && o.speed > 0) {
                    if (!have_base) {
                        have_base = true;
                        base_pace = it.pace_ns;
                        base_now = rf_clock_mono_ns();
                    }
                    int64_t due = base_now + (int64_t)((double)(it.pace_ns - base_pace) / o.speed);
                    if (due > rf_clock_mono_ns()) {
                        sender_flush(&sd);
                        sleep_until(due);
                    }
                }
                const char *p = (const char *)it.data;
                size_t len = it.len;
                if (o.rewrite && it.has_time) {
                    /* Worst case: a 1-byte line gains " <20 digits>". */
                    if (len * 12 + 64 > rewrite_cap) {
                        char *nb = realloc(rewrite_buf, len * 12 + 64);
                        if (!nb) {
                            fprintf(stderr, "ringflow replay: out of memory\n");
                            rc = 1;
                            src_close(&src);
                            goto out;
                        }
                        rewrite_buf = nb;
                        rewrite_cap = len * 12 + 64;
                    }
                    if (it.protocol == RF_REC_INFLUX)
                        len = rf_replay_rewrite_influx(p, len, it.wall_ns, o.precision,
                                                       rewrite_buf, &st.rewritten);
                    else if (it.protocol == RF_REC_GRAPHITE)
                        len = rf_replay_rewrite_graphite(p, len, it.wall_ns, rewrite_buf,
                                                         &st.rewritten);
                    else
                        st.not_rewritable += count_lines(p, len) ? count_lines(p, len) : 1;
                    if (it.protocol == RF_REC_INFLUX || it.protocol == RF_REC_GRAPHITE)
                        p = rewrite_buf;
                }
                sender_send(&sd, p, len);
                src_consumed(&src);
                st.items++;
                int64_t now = rf_clock_mono_ns();
                if (tty && now >= next_report) {
                    fprintf(stderr, "\rringflow replay: %.0f s  %" PRIu64 " items  %" PRIu64
                                    " lines  %.0f items/s  %" PRIu64 " errors   ",
                            (double)(now - t0) * 1e-9, st.items, st.lines,
                            (double)(st.items - last_items), st.errors);
                    last_items = st.items;
                    next_report = now + RF_NS_PER_S;
                }
            }
            sender_flush(&sd);
            if (r < 0) {
                fprintf(stderr, "ringflow replay: warning: %s\n", err.msg);
                st.torn++;
            }
            src_close(&src);
        }
    }
    sender_flush(&sd);
    if (tty)
        fputc('\n', stderr);
    double elapsed = (double)(rf_clock_mono_ns() - t0) * 1e-9;
    double rate = elapsed > 0 ? (double)st.lines / elapsed : 0;
    if (o.json)
        printf("{\"items\":%" PRIu64 ",\"sends\":%" PRIu64 ",\"lines\":%" PRIu64
               ",\"bytes\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"oversize\":%" PRIu64
               ",\"skipped_filter\":%" PRIu64 ",\"skipped_non_udp\":%" PRIu64
               ",\"skipped_fragments\":%" PRIu64 ",\"skipped_truncated\":%" PRIu64
               ",\"rewritten\":%" PRIu64 ",\"not_rewritable\":%" PRIu64 ",\"torn_files\":%" PRIu64
               ",\"other_listeners\":%" PRIu64 ",\"other_protocols\":%" PRIu64
               ",\"elapsed_s\":%.3f,\"lines_per_s\":%.0f}\n",
               st.items, st.sends, st.lines, st.bytes, st.errors, st.oversize, st.skipped_filter,
               st.skipped_nonudp, st.skipped_fragments, st.skipped_truncated, st.rewritten,
               st.not_rewritable, st.torn, st.other_listeners, st.other_protocols, elapsed, rate);
    else
        printf("replayed %" PRIu64 " items as %" PRIu64 " %s, %" PRIu64 " lines, %" PRIu64
               " bytes in %.3f s: %.0f lines/s, %.1f MB/s; %" PRIu64 " errors, %" PRIu64
               " oversize, %" PRIu64 " skipped (filter %" PRIu64 ", non-UDP %" PRIu64
               ", fragments %" PRIu64 ", truncated %" PRIu64 "), %" PRIu64
               " timestamps rewritten, %" PRIu64 " torn file(s)\n",
               st.items, st.sends, o.tcp ? "writes" : "datagrams", st.lines, st.bytes, elapsed,
               rate, elapsed > 0 ? (double)st.bytes / elapsed / 1e6 : 0.0, st.errors, st.oversize,
               st.skipped_filter + st.skipped_nonudp + st.skipped_fragments + st.skipped_truncated,
               st.skipped_filter, st.skipped_nonudp, st.skipped_fragments, st.skipped_truncated,
               st.rewritten, st.torn);
    if (!o.json && st.not_rewritable)
        printf("%" PRIu64 " StatsD lines were sent without a timestamp: the protocol has none\n",
               st.not_rewritable);
    if (!o.json && st.other_listeners)
        printf("%" PRIu64 " records of listeners other than %s went to the same target (%" PRIu64
               " of another protocol): use --listener NAME per target\n",
               st.other_listeners, st.first_listener, st.other_protocols);
    if (st.errors && st.sends == 0)
        rc = 1;
out:
    if (sd.fd >= 0)
        close(sd.fd);
    free(sd.slots);
    free(rewrite_buf);
    for (int i = 0; i < n_files; i++)
        free(files[i]);
    free(files);
    return rc;
}
