/* Private to ingest/dpdk: the frame parser (Ethernet, VLAN, IPv4/IPv6, UDP)
 * over plain bytes, so it is testable without EAL and inlines into the poll
 * loop. Do not include outside ingest/dpdk and its tests. The rules it
 * enforces are the contract in dpdk.h ("Receive path"). */
#ifndef RF_INGEST_DPDK_PACKET_PVT_H
#define RF_INGEST_DPDK_PACKET_PVT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/bytes/bytes.h"

#include "ingest/dpdk/dpdk.h"

/* What the device already verified (from the mbuf's ol_flags, only when the
 * port enabled the offload). Unknown means: verify in software. */
enum {
    RF_PKT_HW_IP_GOOD = 1u << 0,
    RF_PKT_HW_IP_BAD = 1u << 1,
    RF_PKT_HW_L4_GOOD = 1u << 2,
    RF_PKT_HW_L4_BAD = 1u << 3,
};

typedef struct rf_pkt {
    const uint8_t *payload;
    uint32_t payload_len;
    uint16_t src_port, dst_port; /* host order */
    uint8_t family;              /* 4 or 6 */
    const uint8_t *src_addr;     /* 4 or 16 bytes, inside the frame */
} rf_pkt;

/* Ones' complement sum of len bytes, in native byte order (RFC 1071: the
 * folded result is the byte-swapped big-endian sum, and a valid checksum
 * folds to 0xffff either way). 32-bit words are added into a 64-bit
 * accumulator: no carry can be lost below 2^32 words, so the loop has no
 * carry chain and the compiler vectorises it; carries are folded at the end.
 * acc must stay below 2^63 (callers pass small partial sums). */
static inline uint64_t rf_pkt_sum(const uint8_t *p, uint32_t len, uint64_t acc)
{
    uint32_t words = len / 4;
    for (uint32_t i = 0; i < words; i++) {
        uint32_t w;
        memcpy(&w, p + 4 * i, 4);
        acc += w;
    }
    p += 4 * words;
    len -= 4 * words;
    if (len >= 2) {
        uint16_t w;
        memcpy(&w, p, 2);
        acc += w;
        p += 2;
        len -= 2;
    }
    if (len) {
        /* The odd byte is the high byte of a big-endian word padded with 0:
         * in memory order that is the byte at the lower address. */
        uint16_t w = 0;
        memcpy(&w, p, 1);
        acc += w;
    }
    return acc;
}

static inline uint64_t rf_pkt_add(uint64_t acc, uint64_t v)
{
    acc += v;
    return acc + (acc < v); /* end-around carry */
}

/* Folds to 16 bits (native order of the summed words). */
static inline uint16_t rf_pkt_fold(uint64_t acc)
{
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffu) + (acc >> 16);
    acc = (acc & 0xffffu) + (acc >> 16);
    return (uint16_t)acc;
}

/* A checksum field is right when the sum over the covered bytes, the field
 * included, folds to 0xffff (in any byte order: 0xffff is its own swap). */
static inline bool rf_pkt_sum_ok(uint64_t acc)
{
    return rf_pkt_fold(acc) == 0xffff;
}

#define RF_ETHERTYPE_IPV4 0x0800
#define RF_ETHERTYPE_IPV6 0x86dd
#define RF_ETHERTYPE_VLAN 0x8100
#define RF_ETHERTYPE_QINQ 0x88a8
#define RF_ETHERTYPE_QINQ_OLD 0x9100
#define RF_IPPROTO_UDP 17
#define RF_IP6_MAX_EXT 4

/* Parses one frame. Returns RF_DC_DATAGRAMS with *out filled, or the drop
 * reason (an RF_DC_DROP_* value). Never reads outside f[0..len). */
static inline enum rf_dpdk_counter_id rf_pkt_parse(const uint8_t *f, uint32_t len, unsigned hw,
                                                   rf_pkt *out)
{
    if (len < 14)
        return RF_DC_DROP_TRUNCATED;
    uint32_t off = 12;
    uint16_t type = rf_read_be16(f + off);
    for (int tags = 0;
         type == RF_ETHERTYPE_VLAN || type == RF_ETHERTYPE_QINQ || type == RF_ETHERTYPE_QINQ_OLD;
         tags++) {
        if (tags == 2)
            return RF_DC_DROP_NOT_IP; /* a third tag: not something we route */
        if (len < off + 6)
            return RF_DC_DROP_TRUNCATED;
        off += 4;
        type = rf_read_be16(f + off);
    }
    off += 2; /* start of the IP header */

    const uint8_t *ip = f + off;
    uint32_t avail = len - off;
    uint32_t l4_off, l4_len; /* relative to ip */
    uint64_t pseudo;
    if (type == RF_ETHERTYPE_IPV4) {
        if (avail < 20)
            return RF_DC_DROP_TRUNCATED;
        uint32_t ihl = (uint32_t)(ip[0] & 0x0f) * 4;
        uint32_t total = rf_read_be16(ip + 2);
        if ((ip[0] >> 4) != 4 || ihl < 20 || total < ihl)
            return RF_DC_DROP_BAD_IP_HEADER;
        if (total > avail || ihl > avail)
            return RF_DC_DROP_TRUNCATED;
        /* Checksum before the fragment test: a corrupt header's flags are not
         * to be believed. */
        if (!(hw & RF_PKT_HW_IP_GOOD)) {
            if ((hw & RF_PKT_HW_IP_BAD) || !rf_pkt_sum_ok(rf_pkt_sum(ip, ihl, 0)))
                return RF_DC_DROP_BAD_IP_CHECKSUM;
        }
        if (rf_read_be16(ip + 6) & 0x3fff) /* MF flag or fragment offset */
            return RF_DC_DROP_IP_FRAGMENT;
        if (ip[9] != RF_IPPROTO_UDP)
            return RF_DC_DROP_NOT_UDP;
        l4_off = ihl;
        l4_len = total - ihl;
        out->family = 4;
        out->src_addr = ip + 12;
        /* Pseudo-header: addresses, protocol, UDP length (added below). */
        pseudo = rf_pkt_sum(ip + 12, 8, 0);
        uint16_t proto_be;
        const uint8_t pb[2] = {0, RF_IPPROTO_UDP};
        memcpy(&proto_be, pb, 2);
        pseudo = rf_pkt_add(pseudo, proto_be);
    } else if (type == RF_ETHERTYPE_IPV6) {
        if (avail < 40)
            return RF_DC_DROP_TRUNCATED;
        if ((ip[0] >> 4) != 6)
            return RF_DC_DROP_BAD_IP_HEADER;
        uint32_t plen = rf_read_be16(ip + 4);
        if (40 + plen > avail)
            return RF_DC_DROP_TRUNCATED;
        uint8_t next = ip[6];
        l4_off = 40;
        for (int n = 0;; n++) {
            if (next == RF_IPPROTO_UDP)
                break;
            if (next == 44)
                return RF_DC_DROP_IP_FRAGMENT;
            if ((next != 0 && next != 43 && next != 60) || n == RF_IP6_MAX_EXT)
                return RF_DC_DROP_NOT_UDP;
            if (l4_off + 8 > 40 + plen)
                return RF_DC_DROP_TRUNCATED;
            uint32_t ext = ((uint32_t)ip[l4_off + 1] + 1) * 8;
            next = ip[l4_off];
            l4_off += ext;
            if (l4_off > 40 + plen)
                return RF_DC_DROP_TRUNCATED;
        }
        l4_len = 40 + plen - l4_off;
        out->family = 6;
        out->src_addr = ip + 8;
        pseudo = rf_pkt_sum(ip + 8, 32, 0);
        uint16_t proto_be;
        const uint8_t pb[2] = {0, RF_IPPROTO_UDP};
        memcpy(&proto_be, pb, 2);
        pseudo = rf_pkt_add(pseudo, proto_be);
    } else {
        return RF_DC_DROP_NOT_IP;
    }

    if (l4_len < 8)
        return RF_DC_DROP_TRUNCATED;
    const uint8_t *udp = ip + l4_off;
    uint32_t ulen = rf_read_be16(udp + 4);
    if (ulen < 8 || ulen > l4_len)
        return RF_DC_DROP_BAD_UDP_LENGTH;
    uint16_t csum = rf_read_be16(udp + 6);
    if (!(hw & RF_PKT_HW_L4_GOOD)) {
        if (hw & RF_PKT_HW_L4_BAD)
            return RF_DC_DROP_BAD_UDP_CHECKSUM;
        if (csum == 0) {
            if (out->family == 6)
                return RF_DC_DROP_BAD_UDP_CHECKSUM;
        } else {
            /* The UDP length field counts in the pseudo-header too: add the
             * header's own copy a second time. */
            uint16_t ulen_field;
            memcpy(&ulen_field, udp + 4, 2);
            if (!rf_pkt_sum_ok(rf_pkt_sum(udp, ulen, rf_pkt_add(pseudo, ulen_field))))
                return RF_DC_DROP_BAD_UDP_CHECKSUM;
        }
    }
    out->src_port = rf_read_be16(udp);
    out->dst_port = rf_read_be16(udp + 2);
    out->payload = udp + 8;
    out->payload_len = ulen - 8;
    return RF_DC_DATAGRAMS;
}

#endif
