/* packet.h — link layer → IPv4/IPv6 → TCP: one captured frame becomes a kw_pkt.
 *
 * Link types (the value pcap_datalink() reports, or the file's LINKTYPE where they differ):
 *   Ethernet (802.1Q, 802.1ad/QinQ tags, up to KW_PACKET_MAX_VLAN of them), Linux cooked
 *   SLL and SLL2, BSD NULL and LOOP (either byte order), raw IP (DLT_RAW, LINKTYPE_RAW,
 *   LINKTYPE_IPV4, LINKTYPE_IPV6) and Cisco HDLC.
 * IPv4 options and IPv6 extension headers (hop-by-hop, routing, destination options,
 * fragment, AH) are skipped.  IPv4 and IPv6 fragments are reassembled in a bounded table
 * (datagrams in flight, bytes, packet-time timeout); what does not fit is counted and
 * dropped.  Overlapping fragments: the first copy wins, different bytes are counted.
 * Checksums are not verified (offloaded checksums are wrong in most captures).
 *
 * Nothing read from a packet is trusted: every length is checked against what was
 * captured; garbage is counted (stats) and skipped, never a crash.
 * Ownership: kw_pkt.payload borrows the frame, or the decoder's reassembly buffer; either
 * way it is valid until the next kw_packet_decode() call.
 * Thread: one decoder per thread.
 */
#ifndef KW_PACKET_H
#define KW_PACKET_H

#include <stddef.h>
#include <stdint.h>

#define KW_PACKET_MAX_VLAN 4 /* stacked 802.1Q/802.1ad tags accepted */

/* TCP flags as in the header. */
#define KW_TCP_FIN 0x01
#define KW_TCP_SYN 0x02
#define KW_TCP_RST 0x04
#define KW_TCP_PSH 0x08
#define KW_TCP_ACK 0x10

/* One TCP segment, decoded. */
struct kw_pkt {
  uint8_t family;           /* 4 or 6 */
  uint8_t flags;            /* KW_TCP_* */
  uint16_t sport, dport;
  uint8_t src[16], dst[16]; /* IPv4 uses the first 4 bytes; the rest are zero */
  uint32_t seq, ack;
  const uint8_t *payload;
  uint32_t caplen;          /* payload bytes captured (at payload) */
  uint32_t len;             /* payload bytes on the wire per the IP header, >= caplen */
};

enum kw_packet_rc {
  KW_PACKET_TCP = 0,   /* *out is a TCP segment */
  KW_PACKET_OTHER,     /* valid, but not IP or not TCP (ARP, UDP, ICMP…): ignored */
  KW_PACKET_FRAGMENT,  /* an IP fragment, held until its datagram is complete */
  KW_PACKET_TRUNCATED, /* snapped before the end of the TCP header */
  KW_PACKET_MALFORMED, /* a header that cannot be right (lengths, versions) */
  KW_PACKET_LINKTYPE,  /* the link type is not supported */
};

struct kw_packet_opts {
  size_t frag_max_datagrams; /* datagrams being reassembled at once (0: 64) */
  size_t frag_max_bytes;     /* bytes held by all of them (0: 4 MiB) */
  int64_t frag_timeout_us;   /* a datagram incomplete this long is dropped (0: 30 s) */
};

struct kw_packet_stats {
  uint64_t fragments;          /* IP fragments seen */
  uint64_t frag_reassembled;   /* datagrams completed */
  uint64_t frag_dropped;       /* fragments dropped: bounds, timeouts, malformed */
  uint64_t frag_overlap_diff;  /* fragments overlapping earlier ones with other bytes */
  uint64_t frag_timeouts;      /* datagrams expired incomplete */
};

struct kw_packet;

/* Returns a new decoder (free with kw_packet_destroy()); opts may be NULL (defaults).
 * Returns 0 or KW_ENOMEM. Thread: any; the decoder then belongs to the caller's thread. */
int kw_packet_create(const struct kw_packet_opts *opts, struct kw_packet **out);

/* Frees everything held; NULL is a no-op. */
void kw_packet_destroy(struct kw_packet *dec);

/* Returns 1 if linktype is one this decoder understands. Thread: any. */
int kw_packet_linktype_ok(int linktype);

/* Decodes one frame of caplen captured bytes (wirelen on the wire; values below caplen
 * are taken as caplen).  ts_us is the packet time, which drives fragment timeouts.
 * Borrows frame for the call; *out borrows frame or dec until the next call. */
enum kw_packet_rc kw_packet_decode(struct kw_packet *dec, int linktype,
                                   const uint8_t *frame, size_t caplen, size_t wirelen,
                                   int64_t ts_us, struct kw_pkt *out);

const struct kw_packet_stats *kw_packet_stats(const struct kw_packet *dec);

#endif
