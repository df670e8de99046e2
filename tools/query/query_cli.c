/* ringflow query: reads the store (closed and open segments) and prints raw
 * points or aggregates. A thin command line over storage/query. */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock/clock.h"
#include "core/config/config.h"
#include "storage/query/query.h"
#include "tools/query/query_cli.h"
#include "tools/cli/locate.h"

#define QUERY_MAX_MATCHERS 32
#define QUERY_MAX_AGGS 16
#define QUERY_MAX_GROUP_BY 16

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: ringflow query [OPTIONS] MEASUREMENT\n"
            "Reads the store and prints points or aggregates.\n\n"
            "  --dir DIR             the store (default: the engine's, see ringflow --help)\n"
            "  --url http://HOST:PORT  read from a running engine's query API (its http\n"
            "                        listener) instead of the files; raw points only\n"
            "  --field NAME          one field (default: every field)\n"
            "  --where MATCHER       tag=value, tag!=value, tag=~regex, tag!~regex (repeatable)\n"
            "  --from TIME           start, inclusive (default: everything)\n"
            "  --to TIME             end, exclusive (default: everything)\n"
            "                        TIME: 'now', now-DURATION (now-15m), RFC 3339\n"
            "                        (2026-12-01T10:00:00Z, +02:00 offsets, a date alone\n"
            "                        for its midnight UTC), or ns since the epoch\n"
            "  --agg LIST            count,sum,min,max,avg,last,p50,p99,quantile(0.75)\n"
            "  --step DURATION       bucket width for --agg (default: one bucket); buckets\n"
            "                        start at --from, or at multiples of DURATION since the\n"
            "                        epoch without it\n"
            "  --group-by LIST       tag keys to group by (with --agg)\n"
            "  --format FMT          table, csv, json or line (default table)\n"
            "  --stats               print what was read to stderr\n");
}

/* Splits a comma list in place; returns the count (at most max). */
static uint32_t split_list(char *s, char **items, uint32_t max)
{
    uint32_t n = 0;
    for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ","))
        items[n++] = tok;
    return n;
}

int rf_cli_query(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                         {"field", required_argument, NULL, 'f'},
                                         {"where", required_argument, NULL, 'w'},
                                         {"from", required_argument, NULL, 'F'},
                                         {"to", required_argument, NULL, 'T'},
                                         {"agg", required_argument, NULL, 'a'},
                                         {"step", required_argument, NULL, 's'},
                                         {"group-by", required_argument, NULL, 'g'},
                                         {"format", required_argument, NULL, 'o'},
                                         {"stats", no_argument, NULL, 'S'},
                                         {"url", required_argument, NULL, 'u'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *dir = NULL; /* the engine's (tools/cli/locate.h) */
    const char *url = NULL; /* --url: the query API instead of the files */
    rf_query q = {.start_ns = INT64_MIN, .end_ns = INT64_MAX};
    rf_query_matcher matchers[QUERY_MAX_MATCHERS];
    rf_query_agg aggs[QUERY_MAX_AGGS];
    char *group_by[QUERY_MAX_GROUP_BY];
    enum rf_query_format fmt = RF_QUERY_TABLE;
    bool stats = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'u': url = optarg; break;
        case 'f': q.field = optarg; break;
        case 'w':
            if (q.n_matchers == QUERY_MAX_MATCHERS) {
                fprintf(stderr, "ringflow query: at most %d --where\n", QUERY_MAX_MATCHERS);
                return 2;
            }
            if (rf_query_matcher_parse(optarg, &matchers[q.n_matchers]) < 0) {
                fprintf(stderr,
                        "ringflow query: --where wants tag=value, tag!=value, tag=~re or "
                        "tag!~re, got '%s'\n",
                        optarg);
                return 2;
            }
            q.n_matchers++;
            break;
        case 'F':
        case 'T':
            if (rf_query_time_parse(optarg, rf_clock_wall_ns(),
                                    c == 'F' ? &q.start_ns : &q.end_ns) < 0) {
                fprintf(stderr,
                        "ringflow query: --%s wants 'now', now-DURATION, an RFC 3339 time or ns, "
                        "got '%s'\n",
                        c == 'F' ? "from" : "to", optarg);
                return 2;
            }
            break;
        case 'a': {
            char *items[QUERY_MAX_AGGS];
            uint32_t n = split_list(optarg, items, QUERY_MAX_AGGS);
            for (uint32_t i = 0; i < n; i++) {
                if (rf_query_agg_parse(items[i], &aggs[q.n_aggs]) < 0) {
                    fprintf(stderr,
                            "ringflow query: unknown aggregate '%s' (count, sum, min, max, avg, "
                            "last, pNN, quantile(q))\n",
                            items[i]);
                    return 2;
                }
                q.n_aggs++;
            }
            break;
        }
        case 's': {
            uint64_t d;
            if (rf_cfg_parse_duration(optarg, &d) < 0 || d == 0) {
                fprintf(stderr, "ringflow query: --step wants a duration (10s, 1m), got '%s'\n",
                        optarg);
                return 2;
            }
            q.step_ns = (int64_t)d;
            break;
        }
        case 'g': q.n_group_by = split_list(optarg, group_by, QUERY_MAX_GROUP_BY); break;
        case 'o': {
            int f = rf_query_format_parse(optarg);
            if (f < 0) {
                fprintf(stderr, "ringflow query: --format is table, csv, json or line, got '%s'\n",
                        optarg);
                return 2;
            }
            fmt = (enum rf_query_format)f;
            break;
        }
        case 'S': stats = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "ringflow query: exactly one MEASUREMENT is needed\n");
        usage(stderr);
        return 2;
    }
    q.measurement = argv[optind];
    q.matchers = matchers;
    q.aggs = aggs;
    q.group_by = (const char *const *)group_by;
    if ((q.step_ns || q.n_group_by) && !q.n_aggs) {
        fprintf(stderr, "ringflow query: --step and --group-by need --agg\n");
        return 2;
    }

    if (url)
        return rf_cli_query_url(url, &q, fmt);
    rf_query_result *r = NULL;
    rf_err err;
    rf_err_clear(&err);
    if (!dir)
        dir = rf_cli_store_dir();
    if (rf_query_run(dir, &q, &r, &err) < 0) {
        fprintf(stderr, "ringflow query: %s\n", err.msg);
        return 1;
    }
    int rc = rf_query_write(stdout, r, fmt) < 0 ? 1 : 0;
    if (r->n_sets == 0) {
        fprintf(stderr,
                "ringflow query: no series matched '%s' in %s (%lu segments read). A running "
                "ringflowd holds recent points in memory until a block fills "
                "(storage.block_points) or ages out (storage.block_max_age), and writes "
                "everything at shutdown; --url asks it, memory included.\n",
                q.measurement, dir, (unsigned long)r->stats.segments);
        rc = 1;
    }
    if (stats)
        fprintf(stderr,
                "segments=%lu scanned_open=%lu series=%lu blocks=%lu corrupt_blocks=%lu "
                "points_scanned=%lu points=%lu\n",
                (unsigned long)r->stats.segments, (unsigned long)r->stats.segments_scanned,
                (unsigned long)r->stats.series_matched, (unsigned long)r->stats.blocks_read,
                (unsigned long)r->stats.blocks_corrupt, (unsigned long)r->stats.points_scanned,
                (unsigned long)r->stats.points);
    rf_query_result_free(r);
    return rc;
}
