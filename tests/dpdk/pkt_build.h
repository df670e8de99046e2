/* Test helpers: build Ethernet frames (VLAN tags, IPv4/IPv6, UDP/TCP) with
 * checksums computed independently of ingest/dpdk/packet_pvt.h (a plain
 * 16-bit big-endian loop, as in RFC 1071), and write them to a pcap file for
 * the net_pcap vdev. Nothing binary is checked in: the tests generate it. */
#ifndef RF_TESTS_DPDK_PKT_BUILD_H
#define RF_TESTS_DPDK_PKT_BUILD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PB_MAX 9216

typedef struct pb_frame {
    uint8_t b[PB_MAX];
    uint32_t len;
} pb_frame;

/* How to build (and how to break) one frame. */
typedef struct pb_spec {
    int family;    /* 4 or 6 */
    int vlan_tags; /* 0, 1 (802.1Q) or 2 (802.1ad + 802.1Q) */
    uint8_t proto; /* 17 UDP (default when 0), 6 TCP */
    uint8_t src4[4], dst4[4];
    uint8_t src6[16], dst6[16];
    uint16_t sport, dport;
    const char *payload;
    uint32_t payload_len; /* 0: strlen(payload) */
    bool no_udp_csum;     /* checksum field 0 */
    bool bad_ip_csum;     /* IPv4: header checksum off by one */
    bool bad_udp_csum;    /* checksum off by one */
    int ip_total_delta;   /* added to IPv4 total length / IPv6 payload length */
    int udp_len_delta;    /* added to the UDP length field */
    bool fragment;        /* IPv4 MF flag / IPv6 Fragment header */
    bool hop_by_hop;      /* IPv6: one 8-byte Hop-by-Hop header before UDP */
    uint8_t ihl;          /* IPv4 header length in words, 0 = 5 */
    uint32_t pad_to;      /* Ethernet padding up to this frame length */
    uint32_t cut;         /* drop this many bytes from the end of the frame */
} pb_spec;

static inline void pb_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline uint32_t pb_sum(const uint8_t *p, uint32_t len, uint32_t acc)
{
    for (uint32_t i = 0; i + 1 < len; i += 2)
        acc += (uint32_t)p[i] << 8 | p[i + 1];
    if (len & 1)
        acc += (uint32_t)p[len - 1] << 8;
    return acc;
}

static inline uint16_t pb_finish(uint32_t acc)
{
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return (uint16_t)~acc;
}

static inline void pb_build(const pb_spec *s, pb_frame *f)
{
    memset(f, 0, sizeof(*f));
    uint8_t *b = f->b;
    static const uint8_t dmac[6] = {0x02, 0, 0, 0, 0, 0x01}, smac[6] = {0x02, 0, 0, 0, 0, 0x02};
    memcpy(b, dmac, 6);
    memcpy(b + 6, smac, 6);
    uint32_t off = 12;
    if (s->vlan_tags == 2) {
        pb_put16(b + off, 0x88a8);
        pb_put16(b + off + 2, 100);
        off += 4;
    }
    if (s->vlan_tags >= 1) {
        pb_put16(b + off, 0x8100);
        pb_put16(b + off + 2, 200);
        off += 4;
    }
    pb_put16(b + off, s->family == 6 ? 0x86dd : 0x0800);
    off += 2;
    uint8_t proto = s->proto ? s->proto : 17;
    uint32_t plen = s->payload_len ? s->payload_len : (uint32_t)strlen(s->payload);
    uint32_t l4_hdr = proto == 17 ? 8 : 20;
    uint32_t l4_len = l4_hdr + plen;

    uint8_t *ip = b + off;
    uint32_t ip_hdr;
    uint32_t pseudo;
    if (s->family == 4) {
        uint8_t ihl = s->ihl ? s->ihl : 5;
        ip_hdr = 20; /* options never built; a bad ihl just lies */
        ip[0] = (uint8_t)(0x40 | ihl);
        pb_put16(ip + 2, (uint16_t)((int)(ip_hdr + l4_len) + s->ip_total_delta));
        pb_put16(ip + 4, 0x1234);
        pb_put16(ip + 6, s->fragment ? 0x2000 : 0x4000); /* MF : DF */
        ip[8] = 64;
        ip[9] = proto;
        memcpy(ip + 12, s->src4, 4);
        memcpy(ip + 16, s->dst4, 4);
        uint16_t c = pb_finish(pb_sum(ip, 20, 0));
        if (s->bad_ip_csum)
            c ^= 1;
        pb_put16(ip + 10, c);
        pseudo = pb_sum(ip + 12, 8, 0) + proto + l4_len;
    } else {
        ip_hdr = 40;
        ip[0] = 0x60;
        uint32_t ext = (s->hop_by_hop || s->fragment) ? 8 : 0;
        pb_put16(ip + 4, (uint16_t)((int)(ext + l4_len) + s->ip_total_delta));
        ip[6] = s->hop_by_hop ? 0 : s->fragment ? 44 : proto;
        ip[7] = 64;
        memcpy(ip + 8, s->src6, 16);
        memcpy(ip + 24, s->dst6, 16);
        if (ext) {
            ip[40] = proto; /* next header */
            ip[41] = 0;     /* length in 8-byte units beyond the first 8 */
            if (s->fragment)
                pb_put16(ip + 42, 0x0001); /* offset 0, M flag */
            else
                ip[42] = 1, ip[43] = 4; /* PadN, 4 bytes */
            ip_hdr += 8;
        }
        pseudo = pb_sum(ip + 8, 32, 0) + proto + l4_len;
    }
    uint8_t *l4 = ip + ip_hdr;
    pb_put16(l4, s->sport);
    pb_put16(l4 + 2, s->dport);
    if (proto == 17) {
        memcpy(l4 + 8, s->payload, plen);
        pb_put16(l4 + 4, (uint16_t)l4_len);
        uint16_t c = pb_finish(pb_sum(l4, l4_len, pseudo));
        if (c == 0)
            c = 0xffff;
        if (s->bad_udp_csum)
            c ^= 1;
        pb_put16(l4 + 6, s->no_udp_csum ? 0 : c);
        /* After the checksum: a wrong length must be the only fault. */
        pb_put16(l4 + 4, (uint16_t)((int)l4_len + s->udp_len_delta));
    } else {
        l4[12] = 5 << 4; /* TCP data offset */
        memcpy(l4 + 20, s->payload, plen);
    }
    f->len = off + ip_hdr + l4_len;
    if (s->pad_to > f->len)
        f->len = s->pad_to;
    f->len -= s->cut;
}

/* A non-IP frame (ARP). */
static inline void pb_build_arp(pb_frame *f)
{
    memset(f, 0, sizeof(*f));
    memset(f->b, 0xff, 6);
    pb_put16(f->b + 12, 0x0806);
    f->len = 60;
}

/* pcap (not pcapng), microsecond timestamps, Ethernet link type. */
static inline FILE *pb_pcap_open(const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return NULL;
    const uint32_t hdr[6] = {0xa1b2c3d4, 2 | (4u << 16), 0, 0, 65535, 1};
    /* version 2.4: major and minor are two 16-bit fields (little endian). */
    fwrite(hdr, 4, 1, f);
    const uint16_t ver[2] = {2, 4};
    fwrite(ver, 2, 2, f);
    fwrite(&hdr[2], 4, 4, f);
    return f;
}

static inline void pb_pcap_write(FILE *f, const pb_frame *fr, uint32_t seq)
{
    const uint32_t rec[4] = {1700000000u + seq, 0, fr->len, fr->len};
    fwrite(rec, 4, 4, f);
    fwrite(fr->b, 1, fr->len, f);
}

#endif
