#include "core/clock/clock.h"

#include <stdio.h>

char *rf_clock_format_rfc3339(int64_t wall_ns, char *buf, unsigned long len)
{
    time_t secs = (time_t)(wall_ns / RF_NS_PER_S);
    long ms = (long)((wall_ns % RF_NS_PER_S) / RF_NS_PER_MS);
    if (ms < 0) {
        ms += 1000;
        secs -= 1;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    return buf;
}
