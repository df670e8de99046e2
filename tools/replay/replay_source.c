/* ringflow replay's inputs: recordings, classic pcap captures (link layers,
 * IPv4/IPv6, UDP payloads; the rest skipped and counted) and text files of
 * lines, read one item at a time (replay_pvt.h; the formats are described at
 * the top of replay.c). */
#include "tools/replay/replay.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes/bytes.h"
#include "core/clock/clock.h"
#include "storage/recfile/recfile.h"
#include "tools/replay/replay_pvt.h"

/* ---- sources --------------------------------------------------------------- */

/* A pcap file's integers are in its writer's byte order, which the magic
 * tells (read little-endian, a big-endian file's magic comes out swapped):
 * s->swapped means a big-endian file. */
static uint32_t rd32(const uint8_t *p, bool swapped)
{
    return swapped ? rf_read_be32(p) : rf_read_le32(p);
}

int rp_src_open(rp_src *s, const char *path, const rp_opts *o, rf_err *err)
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
                          "(editcap -F pcap IN OUT, from wireshark-common)",
                          path);
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

void rp_src_close(rp_src *s)
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
        ethertype = rf_read_be16(p + 12);
        off = 14;
        while ((ethertype == 0x8100 || ethertype == 0x88a8) && len >= off + 4) {
            ethertype = rf_read_be16(p + off + 2);
            off += 4;
        }
        break;
    case 113: /* Linux cooked v1 */
        if (len < 16)
            goto nonudp;
        ethertype = rf_read_be16(p + 14);
        off = 16;
        break;
    case 276: /* Linux cooked v2 */
        if (len < 20)
            goto nonudp;
        ethertype = rf_read_be16(p);
        off = 20;
        break;
    case 0: { /* BSD loopback: host-order family */
        if (len < 4)
            goto nonudp;
        const uint32_t fam = rd32(p, s->swapped);
        ethertype = fam == 2 ? 0x0800 : (fam == 24 || fam == 28 || fam == 30) ? 0x86dd : 0;
        off = 4;
        break;
    }
    case 101:
    case 12:
    case 14:
    case 228:
    case 229: /* raw IP */
        if (len < 1)
            goto nonudp;
        ethertype = (p[0] >> 4) == 4 ? 0x0800 : (p[0] >> 4) == 6 ? 0x86dd : 0;
        break;
    default: goto nonudp;
    }
    const uint8_t *ip = p + off;
    size_t iplen = len - off, l4 = 0;
    unsigned proto;
    if (ethertype == 0x0800) {
        if (iplen < 20 || (ip[0] >> 4) != 4)
            goto nonudp;
        size_t ihl = (size_t)(ip[0] & 15) * 4, tot = rf_read_be16(ip + 2);
        if (ihl < 20 || tot < ihl || tot > iplen)
            goto nonudp;
        if ((rf_read_be16(ip + 6) & 0x3fff) != 0) { /* MF or an offset: a fragment */
            st->skipped_fragments++;
            return 0;
        }
        proto = ip[9];
        l4 = ihl;
        iplen = tot;
    } else if (ethertype == 0x86dd) {
        if (iplen < 40 || (ip[0] >> 4) != 6)
            goto nonudp;
        size_t pl = rf_read_be16(ip + 4);
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
    size_t ulen = rf_read_be16(udp + 4);
    if (ulen < 8 || l4 + ulen > iplen)
        goto nonudp;
    if (o->pcap_port >= 0 && rf_read_be16(udp + 2) != (unsigned)o->pcap_port) {
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
int rp_src_next(rp_src *s, const rp_opts *o, rp_item *it, rp_stats *st, rf_err *err)
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
            *it = (rp_item){.data = r.payload,
                            .len = r.payload_len,
                            .has_time = true,
                            .pace_ns = r.mono_ns,
                            .wall_ns = r.wall_ns,
                            .protocol = r.protocol,
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
                return rf_err_set(err, EBADMSG, "%s: damaged pcap (packet of %u bytes)", s->path,
                                  incl);
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
            *it = (rp_item){.data = payload,
                            .len = plen,
                            .has_time = true,
                            .pace_ns = t,
                            .wall_ns = t,
                            .protocol = (uint8_t)o->protocol};
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
        *it = (rp_item){
            .data = s->text, .len = take, .protocol = (uint8_t)o->protocol, .from_tcp = true};
        s->text_take = take; /* the caller sends it, then calls src_consumed */
        return 1;
    }
    }
    return 0;
}

/* After an RP_TEXT item was sent: discard it from the buffer. */
void rp_src_consumed(rp_src *s)
{
    if (s->kind != RP_TEXT || !s->text_take)
        return;
    memmove(s->text, s->text + s->text_take, s->text_len - s->text_take);
    s->text_len -= s->text_take;
    s->text_take = 0;
}
