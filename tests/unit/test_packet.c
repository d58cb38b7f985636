/* test_packet.c — link layers, IPv4/IPv6, fragments and TCP headers (collector/packet.c).
 *
 * Frames are built here byte by byte and handed to the decoder in heap buffers of exactly
 * their length, so AddressSanitizer catches any read past the captured bytes.
 * Thread: main only.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pcap/dlt.h>

#include "collector/packet.h"
#include "sidecar/err.h"

#define PAYLOAD "GET / HTTP/1.1\r\n\r\n"
#define PLEN (sizeof(PAYLOAD) - 1)

static const uint8_t SRC4[4] = {10, 0, 0, 1}, DST4[4] = {10, 0, 0, 2};
static const uint8_t SRC6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
static const uint8_t DST6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 2};

struct buf {
  uint8_t b[70000];
  size_t n;
};

static void put(struct buf *f, const void *p, size_t n) {
  assert_true(f->n + n <= sizeof(f->b));
  memcpy(f->b + f->n, p, n);
  f->n += n;
}

static void put16(struct buf *f, uint16_t v) {
  uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
  put(f, b, 2);
}

static void put32(struct buf *f, uint32_t v) {
  uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
  put(f, b, 4);
}

/* A TCP header (20 bytes, or doff*4 with zero options) + payload. */
static void tcp(struct buf *f, uint8_t flags, const void *payload, size_t n, unsigned doff) {
  put16(f, 40000);
  put16(f, 80);
  put32(f, 1000);
  put32(f, 5000);
  uint8_t b[4] = {(uint8_t)(doff << 4), flags, 0xff, 0xff};
  put(f, b, 4);
  put32(f, 0); /* checksum, urgent */
  for (unsigned i = 20; i < doff * 4; i++)
    put(f, "\0", 1);
  put(f, payload, n);
}

static void ipv4(struct buf *f, uint8_t proto, const struct buf *l4, int tot_delta, uint16_t id,
                 uint16_t frag) {
  uint8_t h[20] = {0x45, 0};
  uint16_t tot = (uint16_t)(20 + l4->n + tot_delta);
  h[2] = (uint8_t)(tot >> 8);
  h[3] = (uint8_t)tot;
  h[4] = (uint8_t)(id >> 8);
  h[5] = (uint8_t)id;
  h[6] = (uint8_t)(frag >> 8);
  h[7] = (uint8_t)frag;
  h[8] = 64;
  h[9] = proto;
  memcpy(h + 12, SRC4, 4);
  memcpy(h + 16, DST4, 4);
  put(f, h, 20);
  put(f, l4->b, l4->n);
}

static void ipv6(struct buf *f, uint8_t nh, const struct buf *l4) {
  uint8_t h[40] = {0x60};
  h[4] = (uint8_t)(l4->n >> 8);
  h[5] = (uint8_t)l4->n;
  h[6] = nh;
  h[7] = 64;
  memcpy(h + 8, SRC6, 16);
  memcpy(h + 24, DST6, 16);
  put(f, h, 40);
  put(f, l4->b, l4->n);
}

static void eth_hdr(struct buf *f, uint16_t type) {
  static const uint8_t macs[12] = {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1};
  put(f, macs, 12);
  put16(f, type);
}

/* Decodes f (copied to an exact-size buffer). */
static enum kw_packet_rc decode_n(struct kw_packet *dec, int lt, const struct buf *f,
                                  size_t caplen, size_t wirelen, int64_t ts,
                                  struct kw_pkt *out, uint8_t *copy_out) {
  uint8_t *p = malloc(caplen > 0 ? caplen : 1);
  enum kw_packet_rc rc;
  assert_non_null(p);
  memcpy(p, f->b, caplen);
  memset(out, 0xAA, sizeof(*out));
  rc = kw_packet_decode(dec, lt, p, caplen, wirelen, ts, out);
  if (rc == KW_PACKET_TCP && copy_out != NULL && out->caplen > 0)
    memcpy(copy_out, out->payload, out->caplen); /* before the frame goes */
  free(p);
  return rc;
}

static enum kw_packet_rc decode(struct kw_packet *dec, int lt, const struct buf *f,
                                struct kw_pkt *out, uint8_t *copy) {
  return decode_n(dec, lt, f, f->n, f->n, 0, out, copy);
}

static struct kw_packet *new_dec(const struct kw_packet_opts *o) {
  struct kw_packet *dec = NULL;
  assert_int_equal(kw_packet_create(o, &dec), 0);
  assert_non_null(dec);
  return dec;
}

static void seg(struct buf *l4) {
  l4->n = 0;
  tcp(l4, 0x18, PAYLOAD, PLEN, 5);
}

static void assert_tcp4(const struct kw_pkt *p, const uint8_t *copy) {
  assert_int_equal(p->family, 4);
  assert_memory_equal(p->src, SRC4, 4);
  assert_memory_equal(p->dst, DST4, 4);
  for (int i = 4; i < 16; i++)
    assert_int_equal(p->src[i] | p->dst[i], 0);
  assert_int_equal(p->sport, 40000);
  assert_int_equal(p->dport, 80);
  assert_int_equal(p->seq, 1000);
  assert_int_equal(p->ack, 5000);
  assert_int_equal(p->flags, KW_TCP_PSH | KW_TCP_ACK);
  assert_int_equal(p->caplen, PLEN);
  assert_int_equal(p->len, PLEN);
  assert_memory_equal(copy, PAYLOAD, PLEN);
}

static void assert_tcp6(const struct kw_pkt *p, const uint8_t *copy) {
  assert_int_equal(p->family, 6);
  assert_memory_equal(p->src, SRC6, 16);
  assert_memory_equal(p->dst, DST6, 16);
  assert_int_equal(p->sport, 40000);
  assert_int_equal(p->caplen, PLEN);
  assert_memory_equal(copy, PAYLOAD, PLEN);
}

/* ------------------------------------------------------------------ link layers */

static void test_every_link_type(void **state) {
  struct kw_packet *dec = new_dec(NULL);
  struct buf l4, ip4, ip6, f;
  struct kw_pkt p;
  uint8_t copy[256];
  (void)state;

  seg(&l4);
  ip4.n = ip6.n = 0;
  ipv4(&ip4, 6, &l4, 0, 1, 0);
  ipv6(&ip6, 6, &l4);

  /* Ethernet, IPv4 and IPv6 */
  f.n = 0;
  eth_hdr(&f, 0x0800);
  put(&f, ip4.b, ip4.n);
  assert_int_equal(decode(dec, DLT_EN10MB, &f, &p, copy), KW_PACKET_TCP);
  assert_tcp4(&p, copy);
  f.n = 0;
  eth_hdr(&f, 0x86dd);
  put(&f, ip6.b, ip6.n);
  assert_int_equal(decode(dec, DLT_EN10MB, &f, &p, copy), KW_PACKET_TCP);
  assert_tcp6(&p, copy);

  /* 802.1Q, and QinQ: 802.1ad outer + 802.1Q inner, and the old 0x9100 */
  f.n = 0;
  eth_hdr(&f, 0x8100);
  put16(&f, 42);
  put16(&f, 0x0800);
  put(&f, ip4.b, ip4.n);
  assert_int_equal(decode(dec, DLT_EN10MB, &f, &p, copy), KW_PACKET_TCP);
  assert_tcp4(&p, copy);
  f.n = 0;
  eth_hdr(&f, 0x88a8);
  put16(&f, 100);
  put16(&f, 0x9100);
  put16(&f, 7);
  put16(&f, 0x8100);
  put16(&f, 42);
  put16(&f, 0x86dd);
  put(&f, ip6.b, ip6.n);
  assert_int_equal(decode(dec, DLT_EN10MB, &f, &p, copy), KW_PACKET_TCP);
  assert_tcp6(&p, copy);

  /* Linux cooked v1: protocol at offset 14 */
  f.n = 0;
  put16(&f, 0);
  put16(&f, 1);
  put16(&f, 6);
  put(&f, "\2\0\0\0\0\1\0\0", 8);
  put16(&f, 0x0800);
  put(&f, ip4.b, ip4.n);
  assert_int_equal(decode(dec, DLT_LINUX_SLL, &f, &p, copy), KW_PACKET_TCP);
  assert_tcp4(&p, copy);

  /* Linux cooked v2: protocol first, 20 bytes */
  f.n = 0;
  put16(&f, 0x86dd);
  put16(&f, 0);
  put32(&f, 3);
  put16(&f, 1);
  put(&f, "\0\6\2\0\0\0\0\1\0\0", 10);
  put(&f, ip6.b, ip6.n);
  assert_int_equal(f.n, 20 + ip6.n);
  assert_int_equal(decode(dec, DLT_LINUX_SLL2, &f, &p, copy), KW_PACKET_TCP);
  assert_tcp6(&p, copy);

  /* BSD NULL: host byte order of the capturing machine, both accepted */
  f.n = 0;
  put(&f, "\2\0\0\0", 4);
  put(&f, ip4.b, ip4.n);
  assert_int_equal(decode(dec, DLT_NULL, &f, &p, copy), KW_PACKET_TCP);
  assert_tcp4(&p, copy);
  for (unsigned i = 0; i < 5; i++) {
    static const uint32_t af6[5] = {10, 23, 24, 28, 30};
    f.n = 0;
    put32(&f, af6[i]); /* big-endian */
    put(&f, ip6.b, ip6.n);
    assert_int_equal(decode(dec, DLT_NULL, &f, &p, copy), KW_PACKET_TCP);
    assert_tcp6(&p, copy);
  }
  f.n = 0;
  put32(&f, 2); /* LOOP: network order */
  put(&f, ip4.b, ip4.n);
  assert_int_equal(decode(dec, DLT_LOOP, &f, &p, copy), KW_PACKET_TCP);
  assert_tcp4(&p, copy);
  f.n = 0;
  put32(&f, 7); /* an unknown family */
  put(&f, ip4.b, ip4.n);
  assert_int_equal(decode(dec, DLT_NULL, &f, &p, copy), KW_PACKET_OTHER);

  /* raw IP: DLT_RAW and the file's LINKTYPE_RAW by version nibble; IPV4/IPV6 */
  assert_int_equal(decode(dec, DLT_RAW, &ip4, &p, copy), KW_PACKET_TCP);
  assert_tcp4(&p, copy);
  assert_int_equal(decode(dec, 101, &ip6, &p, copy), KW_PACKET_TCP);
  assert_tcp6(&p, copy);
  assert_int_equal(decode(dec, DLT_IPV4, &ip4, &p, copy), KW_PACKET_TCP);
  assert_tcp4(&p, copy);
  assert_int_equal(decode(dec, DLT_IPV6, &ip6, &p, copy), KW_PACKET_TCP);
  assert_tcp6(&p, copy);
  assert_int_equal(decode(dec, DLT_IPV4, &ip6, &p, copy), KW_PACKET_MALFORMED);

  /* Cisco HDLC */
  f.n = 0;
  put(&f, "\x0f\x00", 2);
  put16(&f, 0x86dd);
  put(&f, ip6.b, ip6.n);
  assert_int_equal(decode(dec, DLT_C_HDLC, &f, &p, copy), KW_PACKET_TCP);
  assert_tcp6(&p, copy);

  /* MPLS: two labels, then IPv4 */
  f.n = 0;
  eth_hdr(&f, 0x8847);
  put32(&f, 0x00010040);
  put32(&f, 0x00020140); /* bottom of stack */
  put(&f, ip4.b, ip4.n);
  assert_int_equal(decode(dec, DLT_EN10MB, &f, &p, copy), KW_PACKET_TCP);
  assert_tcp4(&p, copy);

  /* a link type the decoder does not know */
  assert_int_equal(decode(dec, 147, &ip4, &p, copy), KW_PACKET_LINKTYPE);
  assert_false(kw_packet_linktype_ok(147));
  assert_true(kw_packet_linktype_ok(DLT_LINUX_SLL2));
  kw_packet_destroy(dec);
}

static void test_not_tcp(void **state) {
  struct kw_packet *dec = new_dec(NULL);
  struct buf l4 = {.n = 0}, f;
  struct kw_pkt p;
  (void)state;

  put(&l4, "\0\x35\0\x35\0\x10\0\0xxxxxxxx", 16);
  f.n = 0;
  eth_hdr(&f, 0x0800);
  ipv4(&f, 17, &l4, 0, 1, 0); /* UDP */
  assert_int_equal(decode(dec, DLT_EN10MB, &f, &p, NULL), KW_PACKET_OTHER);
  f.n = 0;
  eth_hdr(&f, 0x0806); /* ARP */
  put(&f, l4.b, 16);
  put(&f, l4.b, 12);
  assert_int_equal(decode(dec, DLT_EN10MB, &f, &p, NULL), KW_PACKET_OTHER);
  f.n = 0;
  eth_hdr(&f, 46); /* 802.3 length field */
  put(&f, l4.b, 16);
  assert_int_equal(decode(dec, DLT_EN10MB, &f, &p, NULL), KW_PACKET_OTHER);
  f.n = 0;
  eth_hdr(&f, 0x86dd);
  l4.n = 0;
  ipv6(&f, 59, &l4); /* no next header */
  assert_int_equal(decode(dec, DLT_EN10MB, &f, &p, NULL), KW_PACKET_OTHER);
  kw_packet_destroy(dec);
}

/* ------------------------------------------------------------------- lengths */

static void test_lengths(void **state) {
  struct kw_packet *dec = new_dec(NULL);
  struct buf l4, f, ip;
  struct kw_pkt p;
  uint8_t copy[256];
  (void)state;

  seg(&l4);
  /* Ethernet padding after the IP datagram is not payload */
  f.n = 0;
  eth_hdr(&f, 0x0800);
  ipv4(&f, 6, &l4, 0, 1, 0);
  put(&f, "\0\0\0\0\0\0\0\0\0\0", 10);
  assert_int_equal(decode(dec, DLT_EN10MB, &f, &p, copy), KW_PACKET_TCP);
  assert_tcp4(&p, copy);

  /* total length 0 (segmentation offload): the frame tells */
  ip.n = 0;
  ipv4(&ip, 6, &l4, 0, 1, 0);
  ip.b[2] = ip.b[3] = 0;
  assert_int_equal(decode(dec, DLT_RAW, &ip, &p, copy), KW_PACKET_TCP);
  assert_tcp4(&p, copy);

  /* TCP options: data offset 8 */
  l4.n = 0;
  tcp(&l4, 0x18, PAYLOAD, PLEN, 8);
  ip.n = 0;
  ipv4(&ip, 6, &l4, 0, 1, 0);
  assert_int_equal(decode(dec, DLT_RAW, &ip, &p, copy), KW_PACKET_TCP);
  assert_tcp4(&p, copy);

  /* snapped inside the payload: caplen < len */
  assert_int_equal(decode_n(dec, DLT_RAW, &ip, ip.n - 5, ip.n, 0, &p, copy), KW_PACKET_TCP);
  assert_int_equal(p.caplen, PLEN - 5);
  assert_int_equal(p.len, PLEN);
  /* snapped inside the TCP header (options included) */
  assert_int_equal(decode_n(dec, DLT_RAW, &ip, 20 + 25, ip.n, 0, &p, NULL), KW_PACKET_TRUNCATED);
  assert_int_equal(decode_n(dec, DLT_RAW, &ip, 10, ip.n, 0, &p, NULL), KW_PACKET_TRUNCATED);
  /* wire length below the captured one is taken as the captured one */
  assert_int_equal(decode_n(dec, DLT_RAW, &ip, ip.n, 3, 0, &p, copy), KW_PACKET_TCP);

  /* malformed: each header lies about a length */
  seg(&l4);
  ip.n = 0;
  ipv4(&ip, 6, &l4, 100, 1, 0); /* total length past the frame */
  assert_int_equal(decode(dec, DLT_RAW, &ip, &p, NULL), KW_PACKET_MALFORMED);
  ip.n = 0;
  ipv4(&ip, 6, &l4, 0, 1, 0);
  ip.b[0] = 0x44; /* IHL 16 bytes */
  assert_int_equal(decode(dec, DLT_RAW, &ip, &p, NULL), KW_PACKET_MALFORMED);
  ip.b[0] = 0x4f; /* IHL 60 bytes, in a 58-byte datagram */
  assert_int_equal(decode(dec, DLT_RAW, &ip, &p, NULL), KW_PACKET_MALFORMED);
  ip.b[0] = 0x45;
  ip.b[2] = 0;
  ip.b[3] = 19; /* total length below the header */
  assert_int_equal(decode(dec, DLT_RAW, &ip, &p, NULL), KW_PACKET_MALFORMED);
  ip.n = 0;
  ipv4(&ip, 6, &l4, 0, 1, 0);
  ip.b[20 + 12] = 0x40; /* TCP data offset 16 bytes */
  assert_int_equal(decode(dec, DLT_RAW, &ip, &p, NULL), KW_PACKET_MALFORMED);
  ip.b[20 + 12] = 0xf0; /* 60 bytes, past the 38-byte segment */
  assert_int_equal(decode(dec, DLT_RAW, &ip, &p, NULL), KW_PACKET_MALFORMED);
  f.n = 0;
  eth_hdr(&f, 0x0800);
  put(&f, "\x65", 1); /* version 6 in an IPv4 ethertype */
  put(&f, ip.b + 1, ip.n - 1);
  assert_int_equal(decode(dec, DLT_EN10MB, &f, &p, NULL), KW_PACKET_MALFORMED);
  ip.n = 0;
  ipv6(&ip, 6, &l4);
  ip.b[4] = 0xff; /* payload length past the frame */
  assert_int_equal(decode(dec, DLT_RAW, &ip, &p, NULL), KW_PACKET_MALFORMED);
  /* an extension header longer than the datagram */
  {
    struct buf ext = {.n = 0};
    put(&ext, "\x06\xff\0\0\0\0\0\0", 8);
    put(&ext, l4.b, l4.n);
    ip.n = 0;
    ipv6(&ip, 0, &ext);
    assert_int_equal(decode(dec, DLT_RAW, &ip, &p, NULL), KW_PACKET_MALFORMED);
  }
  /* five VLAN tags */
  f.n = 0;
  eth_hdr(&f, 0x8100);
  for (int i = 0; i < 4; i++) {
    put16(&f, 1);
    put16(&f, 0x8100);
  }
  put16(&f, 1);
  put16(&f, 0x0800);
  ipv4(&f, 6, &l4, 0, 1, 0);
  assert_int_equal(decode(dec, DLT_EN10MB, &f, &p, NULL), KW_PACKET_MALFORMED);
  /* link headers cut short */
  f.n = 0;
  eth_hdr(&f, 0x0800);
  assert_int_equal(decode_n(dec, DLT_EN10MB, &f, 13, 13, 0, &p, NULL), KW_PACKET_MALFORMED);
  assert_int_equal(decode_n(dec, DLT_EN10MB, &f, 13, 60, 0, &p, NULL), KW_PACKET_TRUNCATED);
  assert_int_equal(decode_n(dec, DLT_EN10MB, &f, 14, 14, 0, &p, NULL), KW_PACKET_MALFORMED);
  assert_int_equal(decode_n(dec, DLT_LINUX_SLL2, &f, 0, 0, 0, &p, NULL), KW_PACKET_MALFORMED);
  kw_packet_destroy(dec);
}

static void test_ipv6_extension_headers(void **state) {
  struct kw_packet *dec = new_dec(NULL);
  struct buf l4, ext = {.n = 0}, ip = {.n = 0};
  struct kw_pkt p;
  uint8_t copy[256];
  (void)state;

  seg(&l4);
  put(&ext, "\x3c\x00\x01\x04\0\0\0\0", 8);         /* hop-by-hop → dest options */
  put(&ext, "\x2b\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16); /* dest opts (16) → routing */
  put(&ext, "\x33\x00\0\0\0\0\0\0", 8);             /* routing → AH */
  put(&ext, "\x06\x01\0\0\0\0\0\0\0\0\0\0", 12);     /* AH, (1+2)*4 = 12 → TCP */
  put(&ext, l4.b, l4.n);
  ipv6(&ip, 0, &ext);
  assert_int_equal(decode(dec, DLT_RAW, &ip, &p, copy), KW_PACKET_TCP);
  assert_tcp6(&p, copy);
  /* an atomic fragment (offset 0, no more) is just skipped */
  ext.n = 0;
  put(&ext, "\x06\x00\x00\x00\x00\x00\x00\x09", 8);
  put(&ext, l4.b, l4.n);
  ip.n = 0;
  ipv6(&ip, 44, &ext);
  assert_int_equal(decode(dec, DLT_RAW, &ip, &p, copy), KW_PACKET_TCP);
  assert_tcp6(&p, copy);
  assert_int_equal(kw_packet_stats(dec)->fragments, 0);
  kw_packet_destroy(dec);
}

/* ----------------------------------------------------------------- fragments */

/* The TCP segment of a long request, cut into IPv4 fragments of `step` bytes. */
struct frags {
  struct buf seg;
  struct buf f[16];
  size_t n;
};

static void make_frags(struct frags *fr, size_t step, bool v6, uint32_t id) {
  char body[300];
  memset(body, 'a', sizeof(body));
  memcpy(body, "GET /", 5);
  fr->seg.n = 0;
  tcp(&fr->seg, 0x18, body, sizeof(body), 5);
  fr->n = 0;
  for (size_t off = 0; off < fr->seg.n; off += step) {
    struct buf chunk = {.n = 0}, *f = &fr->f[fr->n++];
    size_t k = fr->seg.n - off < step ? fr->seg.n - off : step;
    bool more = off + k < fr->seg.n;
    put(&chunk, fr->seg.b + off, k);
    f->n = 0;
    if (v6) {
      struct buf fh = {.n = 0};
      put(&fh, "\x06\0", 2);
      put16(&fh, (uint16_t)(off | (more ? 1 : 0)));
      put32(&fh, id);
      put(&fh, chunk.b, chunk.n);
      ipv6(f, 44, &fh);
    } else {
      ipv4(f, 6, &chunk, 0, (uint16_t)id, (uint16_t)((more ? 0x2000 : 0) | (off / 8)));
    }
  }
}

static void test_fragments(void **state) {
  struct kw_packet *dec = new_dec(NULL);
  struct frags fr;
  struct kw_pkt p;
  uint8_t copy[400];
  (void)state;

  for (int v6 = 0; v6 < 2; v6++) {
    make_frags(&fr, 96, v6, 77);
    assert_int_equal(fr.n, 4);
    /* out of order, with a duplicate of one fragment */
    assert_int_equal(decode(dec, DLT_RAW, &fr.f[2], &p, NULL), KW_PACKET_FRAGMENT);
    assert_int_equal(decode(dec, DLT_RAW, &fr.f[0], &p, NULL), KW_PACKET_FRAGMENT);
    assert_int_equal(decode(dec, DLT_RAW, &fr.f[3], &p, NULL), KW_PACKET_FRAGMENT);
    assert_int_equal(decode(dec, DLT_RAW, &fr.f[0], &p, NULL), KW_PACKET_FRAGMENT);
    assert_int_equal(decode(dec, DLT_RAW, &fr.f[1], &p, copy), KW_PACKET_TCP);
    assert_int_equal(p.family, v6 ? 6 : 4);
    assert_int_equal(p.caplen, 300);
    assert_int_equal(p.len, 300);
    assert_memory_equal(copy, fr.seg.b + 20, 300);
  }
  assert_int_equal(kw_packet_stats(dec)->frag_reassembled, 2);
  assert_int_equal(kw_packet_stats(dec)->fragments, 10);
  assert_int_equal(kw_packet_stats(dec)->frag_overlap_diff, 0);

  /* a second copy with other bytes: the first copy wins, and it is counted */
  make_frags(&fr, 96, false, 78);
  {
    struct buf evil = fr.f[1];
    for (size_t i = 30; i < evil.n; i++)
      evil.b[i] ^= 0x55;
    assert_int_equal(decode(dec, DLT_RAW, &fr.f[1], &p, NULL), KW_PACKET_FRAGMENT);
    assert_int_equal(decode(dec, DLT_RAW, &evil, &p, NULL), KW_PACKET_FRAGMENT);
  }
  assert_int_equal(decode(dec, DLT_RAW, &fr.f[0], &p, NULL), KW_PACKET_FRAGMENT);
  assert_int_equal(decode(dec, DLT_RAW, &fr.f[2], &p, NULL), KW_PACKET_FRAGMENT);
  assert_int_equal(decode(dec, DLT_RAW, &fr.f[3], &p, copy), KW_PACKET_TCP);
  assert_memory_equal(copy, fr.seg.b + 20, 300);
  assert_int_equal(kw_packet_stats(dec)->frag_overlap_diff, 1);

  /* fragments of something else than TCP are not kept */
  {
    struct buf l4 = {.n = 0}, f = {.n = 0};
    put(&l4, "12345678", 8);
    ipv4(&f, 17, &l4, 0, 9, 0x2000);
    assert_int_equal(decode(dec, DLT_RAW, &f, &p, NULL), KW_PACKET_OTHER);
  }
  kw_packet_destroy(dec);
}

static void test_fragment_bounds(void **state) {
  struct kw_packet_opts o = {.frag_max_datagrams = 2, .frag_timeout_us = 1000000};
  struct kw_packet *dec = new_dec(&o);
  struct frags a, b, c;
  struct kw_pkt p;
  const struct kw_packet_stats *st = kw_packet_stats(dec);
  (void)state;

  make_frags(&a, 96, false, 1);
  make_frags(&b, 96, false, 2);
  make_frags(&c, 96, false, 3);
  /* three datagrams in flight with room for two: the oldest (a) goes */
  assert_int_equal(decode_n(dec, DLT_RAW, &a.f[0], a.f[0].n, a.f[0].n, 10, &p, NULL),
                   KW_PACKET_FRAGMENT);
  assert_int_equal(decode_n(dec, DLT_RAW, &b.f[0], b.f[0].n, b.f[0].n, 20, &p, NULL),
                   KW_PACKET_FRAGMENT);
  assert_int_equal(decode_n(dec, DLT_RAW, &c.f[0], c.f[0].n, c.f[0].n, 30, &p, NULL),
                   KW_PACKET_FRAGMENT);
  assert_int_equal(st->frag_dropped, 1);
  for (size_t i = 1; i < 4; i++)
    decode_n(dec, DLT_RAW, &a.f[i], a.f[i].n, a.f[i].n, 40, &p, NULL);
  assert_int_equal(st->frag_reassembled, 0); /* a lost its first fragment */
  for (size_t i = 1; i < 4; i++)
    assert_int_equal(decode_n(dec, DLT_RAW, &c.f[i], c.f[i].n, c.f[i].n, 50, &p, NULL),
                     i == 3 ? KW_PACKET_TCP : KW_PACKET_FRAGMENT);
  assert_int_equal(st->frag_reassembled, 1);
  /* b is older than the 1 s timeout by then */
  for (size_t i = 1; i < 4; i++)
    assert_int_equal(decode_n(dec, DLT_RAW, &b.f[i], b.f[i].n, b.f[i].n, 2000000, &p, NULL),
                     KW_PACKET_FRAGMENT);
  assert_true(st->frag_timeouts >= 1);

  /* a fragment reaching past 64 KiB, a cut fragment, a non-final one not a multiple of 8 */
  {
    struct buf l4 = {.n = 0}, f = {.n = 0};
    put(&l4, "0123456789abcdef", 16);
    ipv4(&f, 6, &l4, 0, 9, (uint16_t)(0x2000 | (65528 / 8)));
    uint64_t before = st->frag_dropped;
    assert_int_equal(decode(dec, DLT_RAW, &f, &p, NULL), KW_PACKET_FRAGMENT);
    assert_int_equal(st->frag_dropped, before + 1);
    assert_int_equal(decode_n(dec, DLT_RAW, &f, f.n - 4, f.n, 0, &p, NULL),
                     KW_PACKET_TRUNCATED);
    l4.n = 13;
    f.n = 0;
    ipv4(&f, 6, &l4, 0, 10, 0x2000);
    assert_int_equal(decode(dec, DLT_RAW, &f, &p, NULL), KW_PACKET_FRAGMENT);
    assert_int_equal(st->frag_dropped, before + 3);
  }
  kw_packet_destroy(dec);
}

/* Random bytes under every link type: whatever comes out, nothing is read out of bounds
 * (ASan) and TCP results stay inside the frame. */
static void test_garbage(void **state) {
  static const int lts[] = {DLT_EN10MB, DLT_LINUX_SLL, DLT_LINUX_SLL2, DLT_NULL, DLT_LOOP,
                            DLT_RAW, DLT_IPV4, DLT_IPV6, DLT_C_HDLC};
  struct kw_packet *dec = new_dec(NULL);
  struct kw_pkt p;
  uint32_t x = 12345;
  (void)state;

  for (int i = 0; i < 200000; i++) {
    uint8_t b[200];
    size_t n, cap;
    uint8_t *frame;
    for (size_t k = 0; k < sizeof(b); k++) {
      x = x * 1103515245u + 12345u;
      b[k] = (uint8_t)(x >> 16);
    }
    /* bias toward plausible headers so that deep paths are reached */
    if (i % 2 == 0) {
      b[12] = 0x08, b[13] = 0x00, b[14] = (uint8_t)(0x45 + (b[14] & 1) * 0x20);
      b[23] = 6;
    }
    n = b[0] % sizeof(b);
    cap = n - (b[1] % 2 ? b[2] % (n + 1) : 0);
    frame = malloc(cap ? cap : 1);
    assert_non_null(frame);
    memcpy(frame, b, cap);
    if (kw_packet_decode(dec, lts[i % 9], frame, cap, n, i, &p) == KW_PACKET_TCP) {
      assert_true(p.caplen <= p.len);
      if (p.caplen > 0 && p.payload >= frame && p.payload < frame + cap)
        assert_true(p.payload + p.caplen <= frame + cap);
    }
    free(frame);
  }
  kw_packet_destroy(dec);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_link_type),
      cmocka_unit_test(test_not_tcp),
      cmocka_unit_test(test_lengths),
      cmocka_unit_test(test_ipv6_extension_headers),
      cmocka_unit_test(test_fragments),
      cmocka_unit_test(test_fragment_bounds),
      cmocka_unit_test(test_garbage),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
