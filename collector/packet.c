/* packet.c — see packet.h.
 *
 *   frame -> link layer -> ethertype loop (VLAN/QinQ/MPLS) -> IPv4 | IPv6 -> [fragments] -> TCP
 *
 * Every step takes (p, cap, wire): cap bytes are readable at p, wire bytes existed on the
 * wire (cap <= wire).  A step reads only below p + cap; a header longer than what the
 * wire carried is MALFORMED, one that the snap length cut is TRUNCATED.
 *
 * Fragment reassembly (IPv4 and IPv6, TCP only): a small table of datagrams in flight,
 * each with a 64 KiB buffer and one bit per 8-byte block received.  A block already held
 * is never overwritten (first copy wins); if the new copy differs, frag_overlap_diff is
 * counted.  The datagram completes when the last fragment (MF clear) has been seen and
 * every block below its end is held.  Bounds: frag_max_datagrams datagrams and
 * frag_max_bytes bytes (the oldest datagram is evicted to make room), frag_timeout_us of
 * packet time per datagram.
 * Invariants: ndg <= max_dg; held_bytes == ndg * DG_BYTES; dg[] is in arrival order of
 * each datagram's first fragment (dg[0] is the oldest).
 * Thread: the owner's.
 */
#include "packet.h"
#include "../sidecar/err.h"

#include <pcap/dlt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define LINKTYPE_RAW 101 /* the file's value; libpcap reports DLT_RAW */

#define DG_MAX 65535u                /* largest datagram payload */
#define DG_BLOCKS ((DG_MAX + 7) / 8) /* 8-byte blocks */
#define DG_BYTES (DG_MAX + 1)        /* what one datagram holds (counted against bounds) */
#define MAX_V6_EXT 8                 /* extension headers walked before giving up */

struct dgram {
  uint8_t family, proto;
  uint8_t src[16], dst[16];
  uint32_t id;
  int64_t first_us;
  uint32_t total; /* payload length, known once the last fragment came; 0 before */
  uint32_t nfrags;
  uint8_t bits[(DG_BLOCKS + 7) / 8];
  uint8_t data[DG_BYTES];
};

struct kw_packet {
  struct kw_packet_opts o;
  struct dgram **dg; /* max_dg slots, ndg used */
  size_t ndg, max_dg;
  size_t held_bytes;
  struct dgram *ready; /* the last completed datagram: out->payload points into it */
  struct kw_packet_stats st;
};

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static inline uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

int kw_packet_create(const struct kw_packet_opts *opts, struct kw_packet **out) {
  struct kw_packet *dec = calloc(1, sizeof(*dec));
  int rc = KW_ENOMEM;

  *out = NULL;
  if (dec == NULL)
    goto out;
  if (opts != NULL)
    dec->o = *opts;
  if (dec->o.frag_max_datagrams == 0)
    dec->o.frag_max_datagrams = 64;
  if (dec->o.frag_max_bytes == 0)
    dec->o.frag_max_bytes = 4u << 20;
  if (dec->o.frag_timeout_us <= 0)
    dec->o.frag_timeout_us = 30 * 1000000LL;
  dec->max_dg = dec->o.frag_max_datagrams;
  if (dec->max_dg > dec->o.frag_max_bytes / DG_BYTES)
    dec->max_dg = dec->o.frag_max_bytes / DG_BYTES;
  if (dec->max_dg == 0)
    dec->max_dg = 1;
  dec->dg = calloc(dec->max_dg, sizeof(*dec->dg));
  if (dec->dg == NULL)
    goto out;
  *out = dec;
  dec = NULL;
  rc = 0;
out:
  kw_packet_destroy(dec);
  return rc;
}

void kw_packet_destroy(struct kw_packet *dec) {
  if (dec == NULL)
    return;
  for (size_t i = 0; i < dec->ndg; i++)
    free(dec->dg[i]);
  free(dec->dg);
  free(dec->ready);
  free(dec);
}

const struct kw_packet_stats *kw_packet_stats(const struct kw_packet *dec) {
  return &dec->st;
}

int kw_packet_linktype_ok(int lt) {
  switch (lt) {
  case DLT_NULL:
  case DLT_LOOP:
  case DLT_EN10MB:
  case DLT_RAW:
  case LINKTYPE_RAW:
  case DLT_IPV4:
  case DLT_IPV6:
  case DLT_LINUX_SLL:
  case DLT_LINUX_SLL2:
  case DLT_C_HDLC:
    return 1;
  default:
    return 0;
  }
}

/* ------------------------------------------------------------------------------ TCP */

static enum kw_packet_rc tcp(uint8_t family, const uint8_t *src, const uint8_t *dst,
                             const uint8_t *p, size_t cap, size_t wire, struct kw_pkt *out) {
  size_t alen = family == 4 ? 4 : 16;
  size_t doff;

  if (wire < 20)
    return KW_PACKET_MALFORMED;
  if (cap < 20)
    return KW_PACKET_TRUNCATED;
  doff = (size_t)(p[12] >> 4) * 4;
  if (doff < 20 || doff > wire)
    return KW_PACKET_MALFORMED;
  if (cap < doff)
    return KW_PACKET_TRUNCATED;
  out->family = family;
  memcpy(out->src, src, alen);
  memcpy(out->dst, dst, alen);
  if (alen == 4) {
    memset(out->src + 4, 0, 12);
    memset(out->dst + 4, 0, 12);
  }
  out->sport = be16(p);
  out->dport = be16(p + 2);
  out->seq = be32(p + 4);
  out->ack = be32(p + 8);
  out->flags = p[13] & 0x1f;
  out->payload = p + doff;
  out->caplen = (uint32_t)(cap - doff);
  out->len = (uint32_t)(wire - doff);
  return KW_PACKET_TCP;
}

/* ------------------------------------------------------------------------ fragments */

static void dg_remove(struct kw_packet *dec, size_t i) {
  free(dec->dg[i]);
  memmove(&dec->dg[i], &dec->dg[i + 1], (dec->ndg - i - 1) * sizeof(*dec->dg));
  dec->ndg--;
  dec->held_bytes -= DG_BYTES;
}

static void dg_expire(struct kw_packet *dec, int64_t now) {
  while (dec->ndg > 0 && now - dec->dg[0]->first_us > dec->o.frag_timeout_us) {
    dec->st.frag_timeouts++;
    dec->st.frag_dropped += dec->dg[0]->nfrags;
    dg_remove(dec, 0);
  }
}

static inline bool bit_get(const uint8_t *b, size_t i) { return (b[i >> 3] >> (i & 7)) & 1; }
static inline void bit_set(uint8_t *b, size_t i) { b[i >> 3] |= (uint8_t)(1u << (i & 7)); }

/* Adds one fragment: off and n in bytes, data has n bytes.  Returns the completed
 * datagram (moved to dec->ready) or NULL. */
static struct dgram *frag_add(struct kw_packet *dec, uint8_t family, const uint8_t *src,
                              const uint8_t *dst, uint32_t id, uint8_t proto, size_t off,
                              bool more, const uint8_t *data, size_t n, int64_t ts) {
  size_t alen = family == 4 ? 4 : 16, i;
  struct dgram *d = NULL;
  bool diff = false;

  dec->st.fragments++;
  if (off + n > DG_MAX || (more && (n == 0 || n % 8 != 0))) {
    dec->st.frag_dropped++;
    return NULL;
  }
  dg_expire(dec, ts);
  for (i = 0; i < dec->ndg; i++) {
    struct dgram *c = dec->dg[i];
    if (c->id == id && c->family == family && c->proto == proto &&
        memcmp(c->src, src, alen) == 0 && memcmp(c->dst, dst, alen) == 0) {
      d = c;
      break;
    }
  }
  if (d == NULL) {
    if (dec->ndg == dec->max_dg) { /* full: the oldest datagram makes room */
      dec->st.frag_dropped += dec->dg[0]->nfrags;
      dg_remove(dec, 0);
    }
    d = malloc(sizeof(*d));
    if (d == NULL) {
      dec->st.frag_dropped++;
      return NULL;
    }
    d->family = family;
    d->proto = proto;
    memcpy(d->src, src, alen);
    memcpy(d->dst, dst, alen);
    d->id = id;
    d->first_us = ts;
    d->total = 0;
    d->nfrags = 0;
    memset(d->bits, 0, sizeof(d->bits));
    i = dec->ndg;
    dec->dg[dec->ndg++] = d;
    dec->held_bytes += DG_BYTES;
  }
  d->nfrags++;
  if (!more) {
    if (d->total != 0 && d->total != off + n) { /* two different ends: give up */
      dec->st.frag_dropped += d->nfrags;
      dg_remove(dec, i);
      return NULL;
    }
    d->total = (uint32_t)(off + n);
  }
  for (size_t b = off / 8, end = off + n; b * 8 < end; b++) {
    size_t from = b * 8, to = from + 8 < end ? from + 8 : end;
    if (bit_get(d->bits, b)) {
      if (memcmp(d->data + from, data + (from - off), to - from) != 0)
        diff = true;
    } else {
      memcpy(d->data + from, data + (from - off), to - from);
      bit_set(d->bits, b);
    }
  }
  if (diff)
    dec->st.frag_overlap_diff++;
  if (d->total == 0)
    return NULL;
  for (size_t b = 0; b * 8 < d->total; b++)
    if (!bit_get(d->bits, b))
      return NULL;
  /* complete: hand the buffer over to dec->ready */
  dec->dg[i] = NULL;
  memmove(&dec->dg[i], &dec->dg[i + 1], (dec->ndg - i - 1) * sizeof(*dec->dg));
  dec->ndg--;
  dec->held_bytes -= DG_BYTES;
  free(dec->ready);
  dec->ready = d;
  dec->st.frag_reassembled++;
  return d;
}

/* --------------------------------------------------------------------------- IP */

static enum kw_packet_rc ipv6_walk(struct kw_packet *dec, const uint8_t *src,
                                   const uint8_t *dst, uint8_t nh, const uint8_t *p,
                                   size_t cap, size_t wire, bool allow_frag, int64_t ts,
                                   struct kw_pkt *out) {
  size_t off = 0;

  for (int i = 0; i <= MAX_V6_EXT; i++) {
    size_t hl;
    switch (nh) {
    case 6:
      return tcp(6, src, dst, p + off, cap - off, wire - off, out);
    case 0:  /* hop-by-hop */
    case 43: /* routing */
    case 60: /* destination options */
    case 51: /* AH */
      if (wire - off < 2)
        return KW_PACKET_MALFORMED;
      if (cap - off < 2)
        return KW_PACKET_TRUNCATED;
      hl = nh == 51 ? ((size_t)p[off + 1] + 2) * 4 : ((size_t)p[off + 1] + 1) * 8;
      nh = p[off];
      if (hl > wire - off)
        return KW_PACKET_MALFORMED;
      if (hl > cap - off)
        return KW_PACKET_TRUNCATED;
      off += hl;
      break;
    case 44: { /* fragment */
      uint16_t fo;
      bool more;
      struct dgram *d;
      if (!allow_frag || wire - off < 8)
        return KW_PACKET_MALFORMED;
      if (cap - off < 8)
        return KW_PACKET_TRUNCATED;
      fo = be16(p + off + 2);
      more = fo & 1;
      if ((fo & 0xfff8) == 0 && !more) { /* atomic fragment */
        nh = p[off];
        off += 8;
        break;
      }
      if (cap != wire) { /* a cut fragment cannot be reassembled */
        dec->st.fragments++;
        dec->st.frag_dropped++;
        return KW_PACKET_TRUNCATED;
      }
      d = frag_add(dec, 6, src, dst, be32(p + off + 4), p[off], fo & 0xfff8, more,
                   p + off + 8, wire - off - 8, ts);
      if (d == NULL)
        return KW_PACKET_FRAGMENT;
      return ipv6_walk(dec, d->src, d->dst, d->proto, d->data, d->total, d->total, false,
                       ts, out);
    }
    default:
      return KW_PACKET_OTHER; /* UDP, ICMPv6, ESP, no next header… */
    }
  }
  return KW_PACKET_MALFORMED;
}

static enum kw_packet_rc ipv6(struct kw_packet *dec, const uint8_t *p, size_t cap, size_t wire,
                              int64_t ts, struct kw_pkt *out) {
  size_t plen;

  if (wire < 40)
    return KW_PACKET_MALFORMED;
  if (cap < 40)
    return KW_PACKET_TRUNCATED;
  if (p[0] >> 4 != 6)
    return KW_PACKET_MALFORMED;
  plen = be16(p + 4);
  if (plen == 0) /* jumbogram or a segmentation-offload capture: the frame tells */
    plen = wire - 40;
  if (40 + plen > wire)
    return KW_PACKET_MALFORMED;
  if (cap > 40 + plen)
    cap = 40 + plen; /* link-layer padding */
  return ipv6_walk(dec, p + 8, p + 24, p[6], p + 40, cap - 40, plen, true, ts, out);
}

static enum kw_packet_rc ipv4(struct kw_packet *dec, const uint8_t *p, size_t cap, size_t wire,
                              int64_t ts, struct kw_pkt *out) {
  size_t ihl, tot, off;
  uint16_t fo;

  if (wire < 20)
    return KW_PACKET_MALFORMED;
  if (cap < 20)
    return KW_PACKET_TRUNCATED;
  if (p[0] >> 4 != 4)
    return KW_PACKET_MALFORMED;
  ihl = (size_t)(p[0] & 15) * 4;
  tot = be16(p + 2);
  if (tot == 0) /* segmentation offload: the frame tells */
    tot = wire;
  if (ihl < 20 || tot < ihl || tot > wire)
    return KW_PACKET_MALFORMED;
  if (cap < ihl)
    return KW_PACKET_TRUNCATED;
  if (cap > tot)
    cap = tot; /* link-layer padding */
  fo = be16(p + 6);
  off = (size_t)(fo & 0x1fff) * 8;
  if ((fo & 0x2000) || off != 0) {
    struct dgram *d;
    if (p[9] != 6)
      return KW_PACKET_OTHER;
    if (cap != tot) {
      dec->st.fragments++;
      dec->st.frag_dropped++;
      return KW_PACKET_TRUNCATED;
    }
    d = frag_add(dec, 4, p + 12, p + 16, be16(p + 4), 6, off, (fo & 0x2000) != 0, p + ihl,
                 tot - ihl, ts);
    if (d == NULL)
      return KW_PACKET_FRAGMENT;
    return tcp(4, d->src, d->dst, d->data, d->total, d->total, out);
  }
  if (p[9] != 6)
    return KW_PACKET_OTHER;
  return tcp(4, p + 12, p + 16, p + ihl, cap - ihl, tot - ihl, out);
}

/* Dispatches on an ethertype, following VLAN tags and MPLS labels. */
static enum kw_packet_rc ether(struct kw_packet *dec, uint16_t type, const uint8_t *p,
                               size_t cap, size_t wire, int64_t ts, struct kw_pkt *out) {
  for (int tags = 0;; tags++) {
    switch (type) {
    case 0x0800:
      return ipv4(dec, p, cap, wire, ts, out);
    case 0x86dd:
      return ipv6(dec, p, cap, wire, ts, out);
    case 0x8100: /* 802.1Q */
    case 0x88a8: /* 802.1ad */
    case 0x9100: /* pre-standard QinQ */
    case 0x9200:
      if (tags >= KW_PACKET_MAX_VLAN)
        return KW_PACKET_MALFORMED;
      if (wire < 4)
        return KW_PACKET_MALFORMED;
      if (cap < 4)
        return KW_PACKET_TRUNCATED;
      type = be16(p + 2);
      p += 4, cap -= 4, wire -= 4;
      break;
    case 0x8847: /* MPLS unicast: labels until bottom of stack, then IP by version */
      for (int l = 0;; l++) {
        if (l >= 8 || wire < 4)
          return KW_PACKET_MALFORMED;
        if (cap < 4)
          return KW_PACKET_TRUNCATED;
        bool bottom = p[2] & 1;
        p += 4, cap -= 4, wire -= 4;
        if (bottom)
          break;
      }
      if (cap < 1)
        return wire < 1 ? KW_PACKET_MALFORMED : KW_PACKET_TRUNCATED;
      if (p[0] >> 4 == 4)
        return ipv4(dec, p, cap, wire, ts, out);
      if (p[0] >> 4 == 6)
        return ipv6(dec, p, cap, wire, ts, out);
      return KW_PACKET_OTHER;
    default:
      return KW_PACKET_OTHER;
    }
  }
}

/* A link header of hl bytes, then what type says. */
static enum kw_packet_rc after(struct kw_packet *dec, size_t hl, uint16_t type,
                               const uint8_t *p, size_t cap, size_t wire, int64_t ts,
                               struct kw_pkt *out) {
  return ether(dec, type, p + hl, cap - hl, wire - hl, ts, out);
}

enum kw_packet_rc kw_packet_decode(struct kw_packet *dec, int lt, const uint8_t *p, size_t cap,
                                   size_t wire, int64_t ts, struct kw_pkt *out) {
  size_t need;

  if (wire < cap)
    wire = cap;
  switch (lt) {
  case DLT_EN10MB:
    need = 14;
    break;
  case DLT_LINUX_SLL:
    need = 16;
    break;
  case DLT_LINUX_SLL2:
    need = 20;
    break;
  case DLT_NULL:
  case DLT_LOOP:
  case DLT_C_HDLC:
    need = 4;
    break;
  case DLT_RAW:
  case LINKTYPE_RAW:
  case DLT_IPV4:
  case DLT_IPV6:
    need = 1;
    break;
  default:
    return KW_PACKET_LINKTYPE;
  }
  if (cap < need)
    return wire < need ? KW_PACKET_MALFORMED : KW_PACKET_TRUNCATED;
  switch (lt) {
  case DLT_EN10MB:
    return after(dec, 14, be16(p + 12), p, cap, wire, ts, out);
  case DLT_LINUX_SLL:
    return after(dec, 16, be16(p + 14), p, cap, wire, ts, out);
  case DLT_LINUX_SLL2:
    return after(dec, 20, be16(p), p, cap, wire, ts, out);
  case DLT_C_HDLC:
    return after(dec, 4, be16(p + 2), p, cap, wire, ts, out);
  case DLT_NULL:
  case DLT_LOOP: {
    /* the address family in the capturing host's byte order (NULL) or network order
     * (LOOP); files travel between hosts, so both orders are accepted */
    uint32_t af = le32(p);
    if (af > 0xffff)
      af = be32(p);
    switch (af) {
    case 2:
      return after(dec, 4, 0x0800, p, cap, wire, ts, out);
    case 10: /* Linux */
    case 23: /* Windows */
    case 24: /* NetBSD, OpenBSD */
    case 28: /* FreeBSD */
    case 30: /* macOS */
      return after(dec, 4, 0x86dd, p, cap, wire, ts, out);
    default:
      return KW_PACKET_OTHER;
    }
  }
  case DLT_IPV4:
    return ipv4(dec, p, cap, wire, ts, out);
  case DLT_IPV6:
    return ipv6(dec, p, cap, wire, ts, out);
  default: /* raw IP: the version nibble decides */
    if (p[0] >> 4 == 4)
      return ipv4(dec, p, cap, wire, ts, out);
    if (p[0] >> 4 == 6)
      return ipv6(dec, p, cap, wire, ts, out);
    return KW_PACKET_MALFORMED;
  }
}
