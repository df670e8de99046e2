/* ringflow replay's sender: UDP through one connected socket in sendmmsg
 * batches (payloads above --max-datagram cut at line boundaries), or one TCP
 * connection (replay_pvt.h). */
#include "tools/replay/replay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tools/net/net_addr.h"
#include "tools/replay/replay_pvt.h"

/* ---- sender ------------------------------------------------------------------ */

int rp_sender_open(rp_sender *sd, const rp_opts *o, rp_stats *st)
{
    *sd = (rp_sender){.o = o, .fd = -1, .st = st};
    rf_err err;
    const rf_net_socket_opts so = {.socktype = o->tcp ? SOCK_STREAM : SOCK_DGRAM,
                                   .sndbuf = 8 << 20};
    sd->fd = rf_net_socket(o->host, o->port, &so, NULL, NULL, &err);
    if (sd->fd < 0) {
        fprintf(stderr, "ringflow replay: %s\n", err.msg);
        return -1;
    }
    if (!o->tcp && !(sd->slots = malloc((size_t)RP_BATCH * RP_SLOT_BYTES))) {
        fprintf(stderr, "ringflow replay: out of memory\n");
        return -1;
    }
    return 0;
}

/* Lines in a payload; an unterminated last line counts. */
uint64_t rp_count_lines(const char *p, size_t len)
{
    uint64_t n = len && p[len - 1] != '\n' ? 1 : 0;
    for (const char *e = p + len; (p = memchr(p, '\n', (size_t)(e - p))); p++)
        n++;
    return n;
}

void rp_sender_flush(rp_sender *sd)
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
            sd->st->lines += rp_count_lines(sd->iov[sent + (unsigned)i].iov_base,
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
        rp_sender_flush(sd);
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
            rp_stop = 1;
            return;
        }
        off += (size_t)w;
    }
    sd->st->bytes += off;
}

/* Sends one payload (already rewritten). */
void rp_sender_send(rp_sender *sd, const char *p, size_t len)
{
    if (sd->o->tcp) {
        tcp_write(sd, p, len);
        sd->st->lines += rp_count_lines(p, len);
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
