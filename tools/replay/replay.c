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
 *
 * Files: options, --print, the main loop and --into here; rewriting in
 * replay_rewrite.c, the inputs (recordings, pcaps, text) in
 * replay_source.c, sending in replay_send.c (shared types in replay_pvt.h).
 */
#include "tools/replay/replay.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
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
#include "tools/net/net_addr.h"
#include "tools/replay/replay_engine.h"
#include "tools/replay/replay_pvt.h"

#define RP_MAX_FILES 4096

volatile sig_atomic_t rp_stop;
static void on_signal(int sig)
{
    (void)sig;
    rp_stop = 1;
}
/* ---- options ---------------------------------------------------------------- */
static void usage(FILE *out)
{
    fprintf(
        out,
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
    static const struct option opts[] = {{"target", required_argument, NULL, 't'},
                                         {"transport", required_argument, NULL, 'T'},
                                         {"speed", required_argument, NULL, 's'},
                                         {"protocol", required_argument, NULL, 'p'},
                                         {"rewrite-timestamps", no_argument, NULL, 'w'},
                                         {"precision", required_argument, NULL, 'P'},
                                         {"listener", required_argument, NULL, 'l'},
                                         {"pcap-port", required_argument, NULL, 'o'},
                                         {"max-datagram", required_argument, NULL, 'm'},
                                         {"repeat", required_argument, NULL, 'r'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"print", no_argument, NULL, 'D'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"into", required_argument, NULL, 'I'},
                                         {"config", required_argument, NULL, 'C'},
                                         {"workers", required_argument, NULL, 'W'},
                                         {"tick", required_argument, NULL, 'K'},
                                         {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end = NULL;
        if (c == 't' || c == 'T' || c == 's' || c == 'w' || c == 'P' || c == 'o' || c == 'm' ||
            c == 'r' || c == 'D')
            o->sending_opts = true;
        switch (c) {
        case 't':
            if (rf_net_target_option("replay", optarg, o->host, sizeof(o->host), o->port,
                                     sizeof(o->port)) < 0)
                return 2;
            break;
        case 'T':
            if (rf_net_transport_option("replay", optarg, &o->tcp) < 0)
                return 2;
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
            if (!strcmp(optarg, "influx") || !strcmp(optarg, "influx_line"))
                o->protocol = RF_REC_INFLUX;
            else if (!strcmp(optarg, "statsd"))
                o->protocol = RF_REC_STATSD;
            else if (!strcmp(optarg, "graphite"))
                o->protocol = RF_REC_GRAPHITE;
            else {
                fprintf(stderr,
                        "ringflow replay: --protocol is influx, statsd or graphite, got '%s'\n",
                        optarg);
                return 2;
            }
            o->protocol_set = true;
            break;
        case 'w': o->rewrite = true; break;
        case 'P':
            if (!strcmp(optarg, "ns"))
                o->precision = 0;
            else if (!strcmp(optarg, "us"))
                o->precision = 1;
            else if (!strcmp(optarg, "ms"))
                o->precision = 2;
            else if (!strcmp(optarg, "s"))
                o->precision = 3;
            else {
                fprintf(stderr, "ringflow replay: --precision is ns, us, ms or s\n");
                return 2;
            }
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
                fprintf(stderr,
                        "ringflow replay: --tick wants a duration from 1us to 1h "
                        "(e.g. 10ms), got '%s'\n",
                        optarg);
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

/* ---- --print -------------------------------------------------------------------- */

/* One item per line: payload bytes outside printable ASCII are escaped
 * (\n, \t, \xNN) so a line of output is a line of input. */
static void print_payload(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t c = p[i];
        if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (c == '\\')
            fputs("\\\\", stdout);
        else if (c < 0x20 || c > 0x7e)
            printf("\\x%02x", c);
        else
            putchar(c);
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
            if (rp_src_open(&src, files[fi], o, &err) != 0) {
                fprintf(stderr, "ringflow replay: %s\n", err.msg);
                return 1;
            }
            rp_item it;
            int r;
            while ((r = rp_src_next(&src, o, &it, &st, &err)) > 0) {
                printf("%" PRId64 " - - - %zu ", it.has_time ? it.wall_ns : 0, it.len);
                print_payload(it.data, it.len);
                rp_src_consumed(&src);
            }
            if (r < 0)
                fprintf(stderr, "ringflow replay: warning: %s\n", err.msg);
            rp_src_close(&src);
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
            printf("%" PRId64 " %s %s %s %u ", r.wall_ns, r.name,
                   rf_rec_transport_name(r.transport), rf_rec_source_format(&r, src, sizeof(src)),
                   r.payload_len);
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
        if (now >= due || rp_stop)
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
 * argument starts its own. 0, or a negative errno with err set. */
static int expand_inputs(const rp_opts *o, char ***out, int *n_out, int *group, rf_err *err)
{
    char **list = calloc(RP_MAX_FILES, sizeof(*list));
    int n = 0;
    if (!list)
        return rf_err_set(err, ENOMEM, "out of memory for the list of inputs");
    for (int i = 0; i < o->n_files; i++) {
        struct stat stt;
        if (stat(o->files[i], &stt) != 0) {
            char **rot = NULL;
            int k = rf_rec_list_rotated(o->files[i], &rot, NULL);
            if (k <= 0) {
                free(rot);
                for (int j = 0; j < n; j++)
                    free(list[j]);
                free(list);
                return rf_err_set(err, ENOENT, "%s: %s", o->files[i], strerror(ENOENT));
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
        printf("{\"into\":\"%s\",\"workers\":%u,\"records\":%" PRIu64 ",\"payload_bytes\":%" PRIu64
               ",\"ticks\":%" PRIu64 ",\"first_wall_ns\":%" PRId64 ",\"last_wall_ns\":%" PRId64
               ",\"span_ns\":%" PRId64 ",\"clock_steps_back\":%" PRIu64 ",\"peer_dropped\":%" PRIu64
               ",\"unknown_listener\":%" PRIu64 ",\"skipped_records\":%" PRIu64
               ",\"truncated\":%" PRIu64 ",\"bad_protocol\":%" PRIu64 ",\"http_records\":%" PRIu64
               ",\"lines_ok\":%" PRIu64 ",\"lines_rejected\":%" PRIu64 ",\"rejected\":{",
               o->into, m->workers, m->records, m->payload_bytes, m->ticks, m->first_wall_ns,
               m->last_wall_ns, m->span_ns, m->clock_steps_back, m->peer_dropped,
               m->unknown_listener, m->skipped_records, m->truncated, m->bad_protocol,
               m->http_records, m->lines_ok, m->lines_rejected);
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
               ",\"series_expired\":%" PRIu64 ",\"to_store\":%" PRIu64
               ",\"store_rejected\":%" PRIu64 ",\"unrouted\":%" PRIu64 ",\"aggregates\":%" PRIu64
               ",\"alerts_fired\":%" PRIu64 ",\"alerts_resolved\":%" PRIu64
               ",\"correlated\":%" PRIu64 ",\"sink_lines\":%" PRIu64 ",\"sink_dropped\":%" PRIu64
               ",\"not_forwarded\":%" PRIu64 ",\"points_appended\":%" PRIu64
               ",\"blocks_cut\":%" PRIu64 ",\"store_dropped\":%" PRIu64 ",\"segments\":%" PRIu64
               ",\"segment_bytes\":%" PRIu64 ",\"elapsed_s\":%.3f}\n",
               m->events, m->series_defs, m->processed, m->unknown_series, m->series_rejected,
               m->series_expired, m->to_store, m->store_rejected, m->unrouted, m->aggregates,
               m->alerts_fired, m->alerts_resolved, m->correlated, m->sink_lines, m->sink_dropped,
               m->not_forwarded, m->points_appended, m->blocks_cut, m->store_dropped, m->segments,
               m->segment_bytes, elapsed);
        return;
    }
    printf("replayed %" PRIu64 " records (%" PRIu64 " bytes, %.3f s of recorded time) into %s "
           "with %u workers in %.3f s: %" PRIu64 " lines, %" PRIu64 " rejected, %" PRIu64
           " events; %" PRIu64 " points stored in %" PRIu64 " blocks, %" PRIu64
           " segments (%" PRIu64 " bytes); %" PRIu64 " aggregates, %" PRIu64
           " alerts fired, %" PRIu64 " resolved, %" PRIu64 " correlated; %" PRIu64 " sink lines\n",
           m->records, m->payload_bytes, (double)m->span_ns * 1e-9, o->into, m->workers, elapsed,
           m->lines_ok + m->lines_rejected, m->lines_rejected, m->events, m->points_appended,
           m->blocks_cut, m->segments, m->segment_bytes, m->aggregates, m->alerts_fired,
           m->alerts_resolved, m->correlated, m->sink_lines);
    if (m->series_expired)
        printf("  series expired (idle for pipeline.series_idle_ttl; slots reused): %" PRIu64 "\n",
               m->series_expired);
    for (int r = 0; r < RF_REJ__COUNT; r++)
        if (m->rejected_by_reason[r])
            printf("  rejected %s: %" PRIu64 "\n", rf_reject_reason_name((enum rf_reject_reason)r),
                   m->rejected_by_reason[r]);
    const struct {
        const char *what;
        uint64_t n;
    } drops[] = {
        {"records of listeners the configuration lacks (parsed as recorded)", m->unknown_listener},
        {"records skipped (too many unknown listener names)", m->skipped_records},
        {"records truncated by the capture (rejected)", m->truncated},
        {"records with an unknown protocol (skipped)", m->bad_protocol},
        {"records of raw HTTP requests (skipped: replay them with --target to an http "
         "listener)",
         m->http_records},
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
    for (int fi = 0; fi < n_files && !rp_stop; fi++) {
        rf_rec_reader *rd;
        if (rf_rec_reader_open(&rd, files[fi], &err) != 0) {
            fprintf(stderr, "ringflow replay: %s\n", err.msg);
            rc = 1;
            break;
        }
        rf_rec r;
        int k = 0;
        while (!rp_stop && (k = rf_rec_reader_next(rd, &r, &err)) > 0) {
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
    if (rp_stop)
        fprintf(stderr,
                "ringflow replay: interrupted: what was fed so far is drained and stored\n");
    rf_replay_summary m;
    if (rf_replay_engine_finish(e, &m, &err) < 0) {
        fprintf(stderr, "ringflow replay: %s\n", err.msg);
        rc = 1;
    }
    rf_replay_engine_free(e);
    print_summary_into(o, &m, (double)(rf_clock_mono_ns() - t0) * 1e-9);
    if (!o->json && (filtered || torn))
        printf("  records of other listeners skipped (--listener): %" PRIu64
               "; torn or damaged files: %" PRIu64 "\n",
               filtered, torn);
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
    rf_err err;
    if (expand_inputs(&o, &files, &n_files, group, &err) != 0) {
        fprintf(stderr, "ringflow replay: %s\n", err.msg);
        return 1;
    }

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
    if (rp_sender_open(&sd, &o, &st) != 0) {
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

    for (uint32_t rep = 0; rep < o.repeat && !rp_stop; rep++) {
        /* Pacing restarts with each pass: the first item of a pass is due at once. */
        bool have_base = false;
        int64_t base_pace = 0, base_now = 0;
        for (int fi = 0; fi < n_files && !rp_stop; fi++) {
            rp_src src;
            if (fi > 0 && group[fi] != group[fi - 1])
                have_base = false; /* another input: its own timeline, due at once */
            if (rp_src_open(&src, files[fi], &o, &err) != 0) {
                fprintf(stderr, "ringflow replay: %s\n", err.msg);
                rc = 1;
                goto out;
            }
            if (src.kind == RP_TEXT && o.rewrite && !warned_text_rewrite) {
                fprintf(stderr,
                        "ringflow replay: %s: a text file has no receive times; "
                        "sending it without --rewrite-timestamps\n",
                        files[fi]);
                warned_text_rewrite = true;
            }
            rp_item it = {0};
            int r = 0;
            while (!rp_stop && (r = rp_src_next(&src, &o, &it, &st, &err)) > 0) {
                if (it.has_time && o.speed > 0) {
                    if (!have_base) {
                        have_base = true;
                        base_pace = it.pace_ns;
                        base_now = rf_clock_mono_ns();
                    }
                    int64_t due = base_now + (int64_t)((double)(it.pace_ns - base_pace) / o.speed);
                    if (due > rf_clock_mono_ns()) {
                        rp_sender_flush(&sd);
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
                            rp_src_close(&src);
                            goto out;
                        }
                        rewrite_buf = nb;
                        rewrite_cap = len * 12 + 64;
                    }
                    if (it.protocol == RF_REC_INFLUX)
                        len = rf_replay_rewrite_influx(p, len, it.wall_ns, o.precision, rewrite_buf,
                                                       &st.rewritten);
                    else if (it.protocol == RF_REC_GRAPHITE)
                        len = rf_replay_rewrite_graphite(p, len, it.wall_ns, rewrite_buf,
                                                         &st.rewritten);
                    else
                        st.not_rewritable += rp_count_lines(p, len) ? rp_count_lines(p, len) : 1;
                    if (it.protocol == RF_REC_INFLUX || it.protocol == RF_REC_GRAPHITE)
                        p = rewrite_buf;
                }
                rp_sender_send(&sd, p, len);
                rp_src_consumed(&src);
                st.items++;
                int64_t now = rf_clock_mono_ns();
                if (tty && now >= next_report) {
                    fprintf(stderr,
                            "\rringflow replay: %.0f s  %" PRIu64 " items  %" PRIu64
                            " lines  %.0f items/s  %" PRIu64 " errors   ",
                            (double)(now - t0) * 1e-9, st.items, st.lines,
                            (double)(st.items - last_items), st.errors);
                    last_items = st.items;
                    next_report = now + RF_NS_PER_S;
                }
            }
            rp_sender_flush(&sd);
            if (r < 0) {
                fprintf(stderr, "ringflow replay: warning: %s\n", err.msg);
                st.torn++;
            }
            rp_src_close(&src);
        }
    }
    rp_sender_flush(&sd);
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
