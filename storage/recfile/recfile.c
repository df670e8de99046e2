/* Recording files: writer with size-bounded rotation, and a reader that stops
 * cleanly at a torn tail. Format: recfile.h and docs/FORMAT.md. */
#include "storage/recfile/recfile.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "core/crc32c/crc32c.h"
#include "core/bytes/bytes.h"

const char *rf_rec_protocol_name(unsigned p)
{
    static const char *const names[] = {"influx_line", "statsd", "graphite", "http", "collectd"};
    return p < sizeof(names) / sizeof(names[0]) ? names[p] : "unknown";
}

const char *rf_rec_transport_name(unsigned t)
{
    return t == RF_REC_UDP ? "udp" : t == RF_REC_TCP ? "tcp" : "unknown";
}

void rf_rec_set_source(rf_rec *r, const struct sockaddr *sa)
{
    memset(r->src_addr, 0, sizeof(r->src_addr));
    r->src_family = 0;
    r->src_port = 0;
    if (!sa)
        return;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        r->src_family = 4;
        r->src_port = ntohs(in->sin_port);
        memcpy(r->src_addr, &in->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        r->src_family = 6;
        r->src_port = ntohs(in6->sin6_port);
        memcpy(r->src_addr, &in6->sin6_addr, 16);
    }
}

const char *rf_rec_source_format(const rf_rec *r, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];
    if (r->src_family == 4 && inet_ntop(AF_INET, r->src_addr, ip, sizeof(ip)))
        snprintf(buf, size, "%s:%u", ip, r->src_port);
    else if (r->src_family == 6 && inet_ntop(AF_INET6, r->src_addr, ip, sizeof(ip)))
        snprintf(buf, size, "[%s]:%u", ip, r->src_port);
    else
        snprintf(buf, size, "-");
    return buf;
}

bool rf_rec_is_recording(const uint8_t *head, size_t len)
{
    return len >= 8 && memcmp(head, RF_REC_FILE_MAGIC, 8) == 0;
}

/* ---- writer ----------------------------------------------------------------- */

struct rf_rec_writer {
    rf_rec_writer_options opt;
    char *path;
    FILE *f;
    uint64_t file_bytes;
    uint64_t seq;       /* rotation: number of the current file */
    uint64_t first_seq; /* rotation: oldest file still on disk */
    uint8_t *scratch;   /* one record, assembled before a single fwrite */
    size_t scratch_cap;
    rf_rec_writer_stats st;
};

static void rotated_name(const rf_rec_writer *w, uint64_t seq, char *buf, size_t size)
{
    snprintf(buf, size, "%s.%06" PRIu64, w->path, seq);
}

static int writer_open_file(rf_rec_writer *w, rf_err *err)
{
    char name[4200];
    if (w->opt.max_bytes) {
        w->seq++;
        rotated_name(w, w->seq, name, sizeof(name));
    } else {
        snprintf(name, sizeof(name), "%s", w->path);
    }
    /* "x": never overwrite a recording someone made before (rotation numbers
     * continue past existing files, see rf_rec_writer_open). */
    w->f = fopen(name, w->opt.max_bytes ? "wbx" : "wb");
    if (!w->f)
        return rf_err_set(err, errno, "record: create %s: %s", name, strerror(errno));
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
    uint8_t h[RF_REC_HEADER_SIZE] = {0};
    memcpy(h, RF_REC_FILE_MAGIC, 8);
    rf_write_le32(h + 8, RF_REC_VERSION);
    rf_write_le32(h + 12, RF_REC_HEADER_SIZE);
    rf_write_le64(h + 16, (uint64_t)rf_clock_wall_ns());
    rf_write_le32(h + 24, 0);
    rf_write_le32(h + 28, rf_crc32c(0, h, 28));
    if (fwrite(h, 1, sizeof(h), w->f) != sizeof(h))
        return rf_err_set(err, errno ? errno : EIO, "record: write %s: %s", name, strerror(errno));
    w->file_bytes = sizeof(h);
    w->st.bytes += sizeof(h);
    w->st.files++;
    /* Bound the number of files: delete the oldest beyond max_files. */
    while (w->opt.max_bytes && w->opt.max_files && w->seq - w->first_seq + 1 > w->opt.max_files) {
        rotated_name(w, w->first_seq, name, sizeof(name));
        if (unlink(name) == 0)
            w->st.deleted++;
        w->first_seq++;
    }
    return 0;
}

int rf_rec_writer_open(rf_rec_writer **out, const rf_rec_writer_options *opt, rf_err *err)
{
    *out = NULL;
    if (!opt->path || !opt->path[0])
        return rf_err_set(err, EINVAL, "record: no output path");
    if (opt->max_bytes && opt->max_bytes < 4096)
        return rf_err_set(err, EINVAL, "record: --max-bytes must be at least 4096");
    rf_rec_writer *w = calloc(1, sizeof(*w));
    if (!w || !(w->path = strdup(opt->path))) {
        free(w);
        return rf_err_set(err, ENOMEM, "record: out of memory");
    }
    w->opt = *opt;
    w->opt.path = w->path;
    if (opt->max_bytes) {
        /* Continue numbering after any files of an earlier capture. */
        char **files = NULL;
        int n = rf_rec_list_rotated(w->path, &files, NULL);
        for (int i = 0; i < n; i++) {
            const char *dot = strrchr(files[i], '.');
            uint64_t s = dot ? strtoull(dot + 1, NULL, 10) : 0;
            if (s > w->seq)
                w->seq = s;
            free(files[i]);
        }
        free(files);
        w->first_seq = w->seq + 1;
    }
    int rc = writer_open_file(w, err);
    if (rc) {
        rf_rec_writer_close(w, NULL);
        return rc;
    }
    *out = w;
    return 0;
}

int rf_rec_writer_append(rf_rec_writer *w, const rf_rec *r, rf_err *err)
{
    size_t name_len = r->name ? strlen(r->name) : 0;
    if (name_len > RF_REC_NAME_MAX)
        name_len = RF_REC_NAME_MAX;
    if (r->payload_len > RF_REC_MAX_PAYLOAD)
        return rf_err_set(err, EMSGSIZE, "record: payload of %u bytes is over the %u-byte limit",
                          r->payload_len, RF_REC_MAX_PAYLOAD);
    const size_t total = RF_REC_FIXED_SIZE + name_len + r->payload_len + RF_REC_CRC_SIZE;
    if (w->opt.max_bytes && w->file_bytes > RF_REC_HEADER_SIZE &&
        w->file_bytes + total > w->opt.max_bytes) {
        int rc = rf_rec_writer_flush(w, err);
        if (fclose(w->f) != 0 && !rc)
            rc = rf_err_set(err, errno, "record: close: %s", strerror(errno));
        w->f = NULL;
        if (rc || (rc = writer_open_file(w, err)))
            return rc;
    }
    if (total > w->scratch_cap) {
        size_t cap = total < 65536 ? 65536 : total;
        uint8_t *n = realloc(w->scratch, cap);
        if (!n)
            return rf_err_set(err, ENOMEM, "record: out of memory");
        w->scratch = n;
        w->scratch_cap = cap;
    }
    uint8_t *p = w->scratch;
    rf_write_le32(p, RF_REC_MAGIC);
    rf_write_le32(p + 4, (uint32_t)total);
    rf_write_le64(p + 8, (uint64_t)r->wall_ns);
    rf_write_le64(p + 16, (uint64_t)r->mono_ns);
    rf_write_le32(p + 24, r->payload_len);
    rf_write_le32(p + 28, r->conn);
    p[32] = r->transport;
    p[33] = r->protocol;
    p[34] = r->flags;
    p[35] = (uint8_t)name_len;
    rf_write_le16(p + 36, r->src_port);
    rf_write_le16(p + 38, r->src_family);
    memcpy(p + 40, r->src_addr, 16);
    memcpy(p + RF_REC_FIXED_SIZE, r->name, name_len);
    if (r->payload_len)
        memcpy(p + RF_REC_FIXED_SIZE + name_len, r->payload, r->payload_len);
    rf_write_le32(p + total - 4, rf_crc32c(0, p, total - 4));
    /* One fwrite per record: with stdio's buffer a crash can still cut a
     * record (the reader's CRC check catches that), but never interleave. */
    if (fwrite(p, 1, total, w->f) != total)
        return rf_err_set(err, errno ? errno : EIO, "record: write: %s", strerror(errno));
    w->file_bytes += total;
    w->st.bytes += total;
    w->st.records++;
    return 0;
}

int rf_rec_writer_flush(rf_rec_writer *w, rf_err *err)
{
    if (w->f && fflush(w->f) != 0)
        return rf_err_set(err, errno, "record: write: %s", strerror(errno));
    return 0;
}

int rf_rec_writer_close(rf_rec_writer *w, rf_err *err)
{
    if (!w)
        return 0;
    int rc = 0;
    if (w->f) {
        rc = rf_rec_writer_flush(w, err);
        if (fclose(w->f) != 0 && !rc)
            rc = rf_err_set(err, errno, "record: close: %s", strerror(errno));
    }
    free(w->scratch);
    free(w->path);
    free(w);
    return rc;
}

void rf_rec_writer_stats_read(const rf_rec_writer *w, rf_rec_writer_stats *out)
{
    *out = w->st;
}

/* ---- reader ----------------------------------------------------------------- */

struct rf_rec_reader {
    FILE *f;
    char *name;
    uint64_t offset;
    int64_t created_ns;
    uint8_t *buf;
    size_t cap;
    bool done;
    char rec_name[RF_REC_NAME_MAX + 1];
};

int rf_rec_reader_open_stream(rf_rec_reader **out, FILE *f, const char *name, rf_err *err)
{
    *out = NULL;
    uint8_t h[RF_REC_HEADER_SIZE];
    size_t n = fread(h, 1, sizeof(h), f);
    if (n < sizeof(h) || !rf_rec_is_recording(h, n)) {
        fclose(f);
        return rf_err_set(err, EBADMSG, "%s: not a ringflow recording (no RFRECORD header)", name);
    }
    if (rf_read_le32(h + 28) != rf_crc32c(0, h, 28)) {
        fclose(f);
        return rf_err_set(err, EBADMSG, "%s: recording header checksum mismatch", name);
    }
    uint32_t version = rf_read_le32(h + 8), hsize = rf_read_le32(h + 12);
    if (version > RF_REC_VERSION) {
        fclose(f);
        return rf_err_set(err, EPROTONOSUPPORT,
                          "%s: recording format version %u is newer than this tool (%u)", name,
                          version, RF_REC_VERSION);
    }
    if (hsize < RF_REC_HEADER_SIZE || hsize > 4096) {
        fclose(f);
        return rf_err_set(err, EBADMSG, "%s: bad header size %u", name, hsize);
    }
    /* A later version may grow the header: skip what we do not know. */
    if (hsize > RF_REC_HEADER_SIZE && fseek(f, hsize, SEEK_SET) != 0) {
        fclose(f);
        return rf_err_set(err, EBADMSG, "%s: short header", name);
    }
    rf_rec_reader *rd = calloc(1, sizeof(*rd));
    if (!rd || !(rd->name = strdup(name))) {
        free(rd);
        fclose(f);
        return rf_err_set(err, ENOMEM, "out of memory");
    }
    rd->f = f;
    rd->offset = hsize;
    rd->created_ns = (int64_t)rf_read_le64(h + 16);
    *out = rd;
    return 0;
}

int rf_rec_reader_open(rf_rec_reader **out, const char *path, rf_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *out = NULL;
        return rf_err_set(err, errno, "%s: %s", path, strerror(errno));
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    return rf_rec_reader_open_stream(out, f, path, err);
}

static int torn(rf_rec_reader *rd, rf_err *err, const char *why)
{
    rd->done = true;
    return rf_err_set(err, EBADMSG, "%s: %s at offset %" PRIu64 "; reading stops there", rd->name,
                      why, rd->offset);
}

int rf_rec_reader_next(rf_rec_reader *rd, rf_rec *r, rf_err *err)
{
    if (rd->done)
        return 0;
    if (rd->cap < 65536) {
        uint8_t *b = realloc(rd->buf, 65536);
        if (!b)
            return rf_err_set(err, ENOMEM, "out of memory");
        rd->buf = b;
        rd->cap = 65536;
    }
    size_t n = fread(rd->buf, 1, RF_REC_FIXED_SIZE, rd->f);
    if (n == 0 && feof(rd->f)) {
        rd->done = true;
        return 0;
    }
    if (n < RF_REC_FIXED_SIZE)
        return torn(rd, err, "torn record (file ends inside a record header)");
    const uint8_t *p = rd->buf;
    uint32_t total = rf_read_le32(p + 4), plen = rf_read_le32(p + 24);
    uint8_t name_len = p[35];
    if (rf_read_le32(p) != RF_REC_MAGIC)
        return torn(rd, err, "damaged record (bad record magic)");
    if (plen > RF_REC_MAX_PAYLOAD ||
        total != RF_REC_FIXED_SIZE + (uint32_t)name_len + plen + RF_REC_CRC_SIZE)
        return torn(rd, err, "damaged record (inconsistent lengths)");
    if (total + 1 > rd->cap) {
        uint8_t *b = realloc(rd->buf, (size_t)total + 1);
        if (!b)
            return rf_err_set(err, ENOMEM, "out of memory");
        rd->buf = b;
        rd->cap = (size_t)total + 1;
        p = rd->buf;
    }
    size_t rest = total - RF_REC_FIXED_SIZE;
    if (fread(rd->buf + RF_REC_FIXED_SIZE, 1, rest, rd->f) != rest)
        return torn(rd, err, "torn record (file ends inside a record)");
    if (rf_read_le32(p + total - 4) != rf_crc32c(0, p, total - 4))
        return torn(rd, err, "damaged record (checksum mismatch)");
    r->wall_ns = (int64_t)rf_read_le64(p + 8);
    r->mono_ns = (int64_t)rf_read_le64(p + 16);
    r->payload_len = plen;
    r->conn = rf_read_le32(p + 28);
    r->transport = p[32];
    r->protocol = p[33];
    r->flags = p[34];
    r->src_port = rf_read_le16(p + 36);
    r->src_family = rf_read_le16(p + 38);
    memcpy(r->src_addr, p + 40, 16);
    /* The name is followed by the payload: copy it out so it can be
     * NUL-terminated without touching the payload. */
    memcpy(rd->rec_name, p + RF_REC_FIXED_SIZE, name_len);
    rd->rec_name[name_len] = '\0';
    r->name = rd->rec_name;
    r->payload = p + RF_REC_FIXED_SIZE + name_len;
    rd->offset += total;
    return 1;
}

uint64_t rf_rec_reader_offset(const rf_rec_reader *rd)
{
    return rd->offset;
}
int64_t rf_rec_reader_created_ns(const rf_rec_reader *rd)
{
    return rd->created_ns;
}

void rf_rec_reader_close(rf_rec_reader *rd)
{
    if (!rd)
        return;
    if (rd->f)
        fclose(rd->f);
    free(rd->buf);
    free(rd->name);
    free(rd);
}

/* ---- rotated sets -------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int rf_rec_list_rotated(const char *path, char ***out, rf_err *err)
{
    *out = NULL;
    char *dcopy = strdup(path), *bcopy = strdup(path);
    if (!dcopy || !bcopy) {
        free(dcopy);
        free(bcopy);
        return rf_err_set(err, ENOMEM, "out of memory");
    }
    const char *dir = dirname(dcopy), *base = basename(bcopy);
    size_t blen = strlen(base);
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        free(dcopy);
        free(bcopy);
        return rf_err_set(err, e, "%s: %s", dir, strerror(e));
    }
    char **list = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *s = de->d_name;
        /* <base>.<6 or more digits> */
        if (strncmp(s, base, blen) != 0 || s[blen] != '.' || strlen(s + blen + 1) < 6)
            continue;
        bool digits = true;
        for (const char *c = s + blen + 1; *c; c++)
            digits = digits && *c >= '0' && *c <= '9';
        if (!digits)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nl = realloc(list, (size_t)cap * sizeof(*nl));
            if (!nl)
                break;
            list = nl;
        }
        size_t len = strlen(dir) + 1 + strlen(s) + 1;
        list[n] = malloc(len);
        if (!list[n])
            break;
        snprintf(list[n], len, "%s/%s", dir, s);
        n++;
    }
    closedir(d);
    free(dcopy);
    free(bcopy);
    /* Zero-padded numbers of equal width sort as text; a wider number (past
     * 999999) sorts by length first. */
    if (n > 1)
        qsort(list, (size_t)n, sizeof(*list), cmp_str);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strlen(list[j]) < strlen(list[j - 1]); j--) {
            char *t = list[j];
            list[j] = list[j - 1];
            list[j - 1] = t;
        }
    *out = list;
    return n;
}
