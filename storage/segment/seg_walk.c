/* The walk over a store directory's shard folders and their segment files
 * (segment.h): the store's recovery, queries and replay's summary all find
 * segments this way, by rf_seg_shard_dir_parse and rf_seg_name_parse. */
#include "storage/segment/segment.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

int rf_seg_store_walk(const char *dir, rf_seg_walk_fn fn, void *ctx, rf_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return rf_err_set(err, errno, "%s: opendir: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        uint32_t shard;
        if (!rf_seg_shard_dir_parse(e->d_name, &shard))
            continue;
        char sdir[PATH_MAX];
        if (snprintf(sdir, sizeof(sdir), "%s/%s", dir, e->d_name) >= (int)sizeof(sdir))
            continue;
        DIR *sd = opendir(sdir);
        if (!sd)
            continue;
        struct dirent *f;
        while (rc == 0 && (f = readdir(sd))) {
            uint64_t seq;
            char path[PATH_MAX + NAME_MAX + 2];
            if (rf_seg_name_parse(f->d_name, &seq) &&
                snprintf(path, sizeof(path), "%s/%s", sdir, f->d_name) < (int)sizeof(path))
                rc = fn(ctx, shard, seq, path);
        }
        closedir(sd);
    }
    closedir(d);
    return rc;
}
