/* test_tcpreasm.c — TCP stream reassembly (collector/tcpreasm.c).
 *
 * A recording consumer keeps, per flow, what each direction delivered (bytes, gaps, FIN)
 * and how the flow ended; segments are made here directly as kw_pkt structs.
 * Thread: main only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collector/tcpreasm.h"
#include "sidecar/err.h"

#define MAXF 8
#define CAP 8192

struct rflow {
  struct kw_tcpflow_info info;
  char data[2][CAP]; /* delivered bytes; a gap shows as '#' per byte (up to CAP) */
  size_t n[2];
  uint64_t gap[2];
  int ngaps[2];
  int fins[2];
  int closes;
  enum kw_tcpreasm_close why;
  int ignore_after; /* answer IGNORE once this many bytes arrived (0: never) */
  bool ignored;
};

struct rec {
  struct rflow f[MAXF];
  int nf;
  int data_calls_after_ignore;
};

static int on_open(void *ctx, const struct kw_tcpflow_info *info, void **user) {
  struct rec *r = ctx;
  assert_true(r->nf < MAXF);
  struct rflow *f = &r->f[r->nf++];
  memset(f, 0, sizeof(*f));
  f->info = *info;
  *user = f;
  return KW_TCPREASM_CONTINUE;
}

static void append(struct rflow *f, int dir, const void *p, size_t n) {
  assert_true(f->n[dir] + n <= CAP);
  memcpy(f->data[dir] + f->n[dir], p, n);
  f->n[dir] += n;
}

static int on_data(void *ctx, void *user, int dir, const uint8_t *p, size_t n, int64_t ts) {
  struct rec *r = ctx;
  struct rflow *f = user;
  (void)ts;
  assert_true(dir == 0 || dir == 1);
  assert_true(n > 0);
  if (f->ignored)
    r->data_calls_after_ignore++;
  append(f, dir, p, n);
  if (f->ignore_after > 0 && f->n[0] + f->n[1] >= (size_t)f->ignore_after) {
    f->ignored = true;
    return KW_TCPREASM_IGNORE;
  }
  return KW_TCPREASM_CONTINUE;
}

static int on_gap(void *ctx, void *user, int dir, uint64_t n, int64_t ts) {
  struct rflow *f = user;
  char hashes[CAP];
  (void)ctx;
  (void)ts;
  f->gap[dir] += n;
  f->ngaps[dir]++;
  if (n < CAP / 2 && f->n[dir] + n <= CAP) {
    memset(hashes, '#', n);
    append(f, dir, hashes, n);
  }
  return KW_TCPREASM_CONTINUE;
}

static int on_fin(void *ctx, void *user, int dir, int64_t ts) {
  struct rflow *f = user;
  (void)ctx;
  (void)ts;
  f->fins[dir]++;
  return KW_TCPREASM_CONTINUE;
}

static void on_close(void *ctx, void *user, enum kw_tcpreasm_close why, int64_t ts) {
  struct rflow *f = user;
  (void)ctx;
  (void)ts;
  f->closes++;
  f->why = why;
}

static const struct kw_tcpreasm_ops ops = {
    .on_open = on_open, .on_data = on_data, .on_gap = on_gap,
    .on_fin = on_fin,   .on_close = on_close,
};

/* ------------------------------------------------------------------- helpers */

struct t {
  struct kw_tcpreasm *r;
  struct rec rec;
  int64_t now;
  uint32_t cseq, sseq; /* next sequence numbers of client and server */
  uint16_t cport;
};

static struct t *T;

static int setup_opts(void **state, const struct kw_tcpreasm_opts *o) {
  T = calloc(1, sizeof(*T));
  assert_non_null(T);
  assert_int_equal(kw_tcpreasm_create(o, &ops, &T->rec, &T->r), 0);
  T->now = 1000000;
  T->cseq = 1000;
  T->sseq = 5000;
  T->cport = 40000;
  *state = T;
  return 0;
}

static int setup(void **state) { return setup_opts(state, NULL); }

/* cmocka's prestate carries the options */
static int setup_prestate(void **state) { return setup_opts(state, *state); }

static int teardown(void **state) {
  (void)state;
  kw_tcpreasm_destroy(T->r);
  free(T);
  return 0;
}

/* Sends a segment; from_client picks the direction.  seq/ack default to the current
 * next numbers; the payload is borrowed from a heap copy of exactly its size. */
static void send_full(bool from_client, uint8_t flags, uint32_t seq, uint32_t ack,
                      const char *data, size_t n, size_t wirelen) {
  struct kw_pkt p;
  uint8_t *copy = malloc(n ? n : 1);
  static const uint8_t c[16] = {10, 0, 0, 1}, s[16] = {10, 0, 0, 2};

  assert_non_null(copy);
  memcpy(copy, data, n);
  memset(&p, 0, sizeof(p));
  p.family = 4;
  memcpy(p.src, from_client ? c : s, 16);
  memcpy(p.dst, from_client ? s : c, 16);
  p.sport = from_client ? T->cport : 80;
  p.dport = from_client ? 80 : T->cport;
  p.seq = seq;
  p.ack = ack;
  p.flags = flags;
  p.payload = copy;
  p.caplen = (uint32_t)n;
  p.len = (uint32_t)wirelen;
  T->now += 1000;
  kw_tcpreasm_packet(T->r, &p, T->now);
  free(copy);
}

static void send_at(bool cl, uint8_t flags, uint32_t seq, const char *data) {
  send_full(cl, flags, seq, cl ? T->sseq : T->cseq, data, strlen(data), strlen(data));
}

/* In-order data: advances the sender's next sequence number. */
static void send_data(bool cl, const char *data) {
  uint32_t *seq = cl ? &T->cseq : &T->sseq;
  send_at(cl, KW_TCP_ACK | KW_TCP_PSH, *seq, data);
  *seq += (uint32_t)strlen(data);
}

static void ack(bool cl) {
  send_full(cl, KW_TCP_ACK, cl ? T->cseq : T->sseq, cl ? T->sseq : T->cseq, "", 0, 0);
}

static void handshake(void) {
  send_full(true, KW_TCP_SYN, T->cseq - 1, 0, "", 0, 0);
  send_full(false, KW_TCP_SYN | KW_TCP_ACK, T->sseq - 1, T->cseq, "", 0, 0);
  ack(true);
}

static void fin_both(void) {
  send_full(true, KW_TCP_FIN | KW_TCP_ACK, T->cseq, T->sseq, "", 0, 0);
  T->cseq++;
  send_full(false, KW_TCP_FIN | KW_TCP_ACK, T->sseq, T->cseq, "", 0, 0);
  T->sseq++;
  ack(true);
}

static void assert_dir(const struct rflow *f, int dir, const char *expect) {
  if (f->n[dir] != strlen(expect) || memcmp(f->data[dir], expect, f->n[dir]) != 0)
    fail_msg("dir %d: expected '%s', got '%.*s'", dir, expect, (int)f->n[dir], f->data[dir]);
}

static const struct kw_tcpreasm_stats *st(void) { return kw_tcpreasm_stats(T->r); }

/* --------------------------------------------------------------------- tests */

static void test_in_order(void **state) {
  (void)state;
  handshake();
  send_data(true, "GET / HTTP/1.1\r\n\r\n");
  ack(false);
  send_data(false, "HTTP/1.1 200 OK\r\n");
  send_data(false, "Content-Length: 0\r\n\r\n");
  ack(true);
  fin_both();
  assert_int_equal(T->rec.nf, 1);
  struct rflow *f = &T->rec.f[0];
  assert_true(f->info.syn_seen);
  assert_int_equal(f->info.ep[0].port, 40000);
  assert_int_equal(f->info.ep[1].port, 80);
  assert_int_equal(f->info.ep[0].addr[3], 1);
  assert_dir(f, 0, "GET / HTTP/1.1\r\n\r\n");
  assert_dir(f, 1, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  assert_int_equal(f->fins[0], 1);
  assert_int_equal(f->fins[1], 1);
  assert_int_equal(f->closes, 1);
  assert_int_equal(f->why, KW_TCPREASM_CLOSE_FIN);
  assert_int_equal(st()->gaps, 0);
  assert_int_equal(st()->bytes_held, 0);
  /* late packets of the closed flow are absorbed, not a new flow */
  send_at(true, KW_TCP_ACK | KW_TCP_PSH, T->cseq - 5, "late!");
  assert_int_equal(T->rec.nf, 1);
}

static void test_out_of_order(void **state) {
  (void)state;
  handshake();
  uint32_t base = T->cseq;
  send_at(true, KW_TCP_ACK, base + 10, "KLMNOPQRST");
  send_at(true, KW_TCP_ACK, base + 20, "UVWXYZ");
  assert_int_equal(T->rec.f[0].n[0], 0);
  assert_int_equal(st()->bytes_held_peak > 0, 1);
  send_at(true, KW_TCP_ACK, base + 5, "FGHIJ");
  send_at(true, KW_TCP_ACK, base, "ABCDE");
  T->cseq = base + 26;
  assert_dir(&T->rec.f[0], 0, "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
  assert_int_equal(st()->ooo_segments, 3);
  assert_int_equal(st()->bytes_held, 0);
  fin_both();
  assert_int_equal(T->rec.f[0].why, KW_TCPREASM_CLOSE_FIN);
}

static void test_retransmissions(void **state) {
  (void)state;
  handshake();
  uint32_t base = T->cseq;
  send_data(true, "0123456789");
  send_at(true, KW_TCP_ACK, base, "0123456789");    /* exact copy */
  send_at(true, KW_TCP_ACK, base + 5, "56789abcde"); /* half old, half new */
  T->cseq = base + 15;
  send_at(true, KW_TCP_ACK, base + 2, "23");         /* keep-alive-like old bytes */
  assert_dir(&T->rec.f[0], 0, "0123456789abcde");
  assert_int_equal(st()->retrans_segments, 2);
  assert_int_equal(st()->retrans_bytes, 10 + 5 + 2);
  assert_int_equal(st()->anomalies, 0);
}

static void test_overlaps(void **state) {
  (void)state;
  handshake();
  uint32_t base = T->cseq;
  send_at(true, KW_TCP_ACK, base + 10, "XXXXXXXX");      /* held */
  send_at(true, KW_TCP_ACK, base + 8, "..XXXXXXXX..");   /* same bytes over it */
  assert_int_equal(st()->anomalies, 0);
  assert_int_equal(st()->overlap_bytes, 8);
  send_at(true, KW_TCP_ACK, base + 12, "YY");            /* different: first copy wins */
  assert_int_equal(st()->anomalies, 1);
  send_at(true, KW_TCP_ACK, base + 6, "abYYYYYYYY");     /* different again */
  assert_int_equal(st()->anomalies, 2);
  send_at(true, KW_TCP_ACK, base, "012345");
  assert_dir(&T->rec.f[0], 0, "012345ab..XXXXXXXX..");
  assert_int_equal(st()->bytes_held, 0);
}

static void test_gap_acked(void **state) {
  (void)state;
  handshake();
  send_data(false, "first ");
  T->sseq += 7; /* "LOST!! " never captured */
  send_data(false, "third");
  assert_dir(&T->rec.f[0], 1, "first ");
  ack(true); /* the client has everything: the hole is lost */
  assert_dir(&T->rec.f[0], 1, "first #######third");
  assert_int_equal(T->rec.f[0].gap[1], 7);
  assert_int_equal(st()->gaps, 1);
  assert_int_equal(st()->gap_bytes, 7);
  /* a hole at the end, acknowledged: a gap with no data after it */
  T->sseq += 4;
  ack(true);
  assert_int_equal(T->rec.f[0].gap[1], 11);
  send_data(false, "!");
  assert_dir(&T->rec.f[0], 1, "first #######third####!");
}

static void test_gap_at_end(void **state) {
  (void)state;
  handshake();
  send_data(true, "AAAA");
  T->cseq += 3;
  send_data(true, "BBBB");
  assert_int_equal(st()->bytes_held > 0, 1);
  kw_tcpreasm_flush(T->r);
  assert_dir(&T->rec.f[0], 0, "AAAA###BBBB");
  assert_int_equal(T->rec.f[0].why, KW_TCPREASM_CLOSE_FLUSH);
  assert_int_equal(T->rec.f[0].closes, 1);
  assert_int_equal(st()->bytes_held, 0);
  assert_int_equal(st()->flows_active, 0);
}

static void test_fin_out_of_order(void **state) {
  (void)state;
  handshake();
  uint32_t base = T->sseq;
  send_full(false, KW_TCP_FIN | KW_TCP_ACK, base + 5, T->cseq, "world", 5, 5);
  assert_int_equal(T->rec.f[0].fins[1], 0);
  send_at(false, KW_TCP_ACK, base, "hello");
  assert_dir(&T->rec.f[0], 1, "helloworld");
  assert_int_equal(T->rec.f[0].fins[1], 1);
}

static void test_synless_and_synack(void **state) {
  (void)state;
  /* the server speaks first in the capture: it is direction 0, orientation unknown */
  send_data(false, "HTTP/1.1 200 OK\r\n");
  send_data(true, "GET /next");
  assert_int_equal(T->rec.nf, 1);
  assert_false(T->rec.f[0].info.syn_seen);
  assert_int_equal(T->rec.f[0].info.ep[0].port, 80);
  assert_dir(&T->rec.f[0], 0, "HTTP/1.1 200 OK\r\n");
  assert_dir(&T->rec.f[0], 1, "GET /next");
  /* stray ACK / FIN / RST of an unknown flow make no flow */
  T->cport = 40001;
  ack(true);
  send_full(true, KW_TCP_RST, 1, 0, "", 0, 0);
  assert_int_equal(T->rec.nf, 1);
  /* a SYN-ACK seen first: its receiver is the initiator */
  send_full(false, KW_TCP_SYN | KW_TCP_ACK, T->sseq - 1, T->cseq, "", 0, 0);
  assert_int_equal(T->rec.nf, 2);
  assert_true(T->rec.f[1].info.syn_seen);
  assert_int_equal(T->rec.f[1].info.ep[0].port, 40001);
  ack(true);
  send_data(true, "req");
  assert_dir(&T->rec.f[1], 0, "req");
}

static void test_rst_and_reuse(void **state) {
  (void)state;
  handshake();
  send_data(true, "one");
  send_full(true, KW_TCP_RST, T->cseq, 0, "", 0, 0);
  assert_int_equal(T->rec.f[0].why, KW_TCPREASM_CLOSE_RST);
  send_data(true, "ignored"); /* lingering */
  assert_int_equal(T->rec.nf, 1);
  /* a new SYN on the tuple starts a new flow at once */
  T->cseq = 77777;
  handshake();
  send_data(true, "two");
  assert_int_equal(T->rec.nf, 2);
  assert_dir(&T->rec.f[1], 0, "two");
  /* a SYN with another ISN on an open flow: the old one closes (REUSE) */
  send_full(true, KW_TCP_SYN, T->cseq - 1, 0, "", 0, 0); /* retransmitted SYN? no: new ISN */
  assert_int_equal(T->rec.f[1].why, KW_TCPREASM_CLOSE_REUSE);
  assert_int_equal(T->rec.nf, 3);
  send_full(true, KW_TCP_SYN, T->cseq - 1, 0, "", 0, 0); /* the same SYN again: ignored */
  assert_int_equal(T->rec.nf, 3);
  assert_int_equal(T->rec.f[2].closes, 0);
}

static void test_idle_timeout(void **state) {
  (void)state;
  handshake();
  send_data(true, "x");
  T->now += 301 * 1000000LL;
  T->cport = 40001;
  handshake(); /* another flow's packet moves time on */
  assert_int_equal(T->rec.f[0].closes, 1);
  assert_int_equal(T->rec.f[0].why, KW_TCPREASM_CLOSE_TIMEOUT);
  assert_int_equal(st()->flows_timed_out, 1);
  kw_tcpreasm_expire(T->r, T->now + 302 * 1000000LL);
  assert_int_equal(T->rec.f[1].why, KW_TCPREASM_CLOSE_TIMEOUT);
  assert_int_equal(st()->flows_active, 0);
  /* time going backwards is taken as the latest time */
  T->now -= 10 * 1000000LL;
  send_data(true, "y");
  assert_int_equal(T->rec.nf, 3);
  assert_int_equal(T->rec.f[2].closes, 0);
}

static void test_wraparound(void **state) {
  (void)state;
  T->cseq = 0xFFFFFFF8u;
  handshake();
  uint32_t base = T->cseq;
  send_at(true, KW_TCP_ACK, base + 12, "MNOP");        /* beyond the wrap, held */
  send_at(true, KW_TCP_ACK, base, "ABCDEFGH");         /* up to the wrap */
  send_at(true, KW_TCP_ACK, base + 8, "IJKL");         /* across zero */
  assert_dir(&T->rec.f[0], 0, "ABCDEFGHIJKLMNOP");
  T->cseq = base + 16;
  send_data(true, "Q");
  assert_dir(&T->rec.f[0], 0, "ABCDEFGHIJKLMNOPQ");
  assert_int_equal(st()->gaps, 0);
}

static void test_snapped(void **state) {
  (void)state;
  handshake();
  /* 10 bytes on the wire, 4 captured: 4 delivered, 6 lost */
  send_full(true, KW_TCP_ACK, T->cseq, T->sseq, "abcd", 4, 10);
  T->cseq += 10;
  send_data(true, "next");
  assert_dir(&T->rec.f[0], 0, "abcd######next");
  assert_int_equal(st()->gap_bytes, 6);
}

static void test_ignore(void **state) {
  (void)state;
  handshake();
  T->rec.f[0].ignore_after = 3;
  send_data(true, "abc");
  send_data(true, "def");
  send_data(false, "ghi");
  assert_dir(&T->rec.f[0], 0, "abc");
  assert_int_equal(T->rec.data_calls_after_ignore, 0);
  assert_true(st()->ignored_segments >= 2);
  fin_both(); /* an ignored flow still ends on its FINs */
  assert_int_equal(T->rec.f[0].closes, 1);
  assert_int_equal(T->rec.f[0].why, KW_TCPREASM_CLOSE_FIN);
}

static void test_max_flows(void **state) {
  (void)state;
  for (int i = 0; i < 3; i++) {
    T->cport = (uint16_t)(41000 + i);
    handshake();
    send_data(true, "z");
  }
  assert_int_equal(T->rec.nf, 3);
  assert_int_equal(T->rec.f[0].why, KW_TCPREASM_CLOSE_EVICT); /* the least active */
  assert_int_equal(T->rec.f[0].closes, 1);
  assert_int_equal(T->rec.f[1].closes, 0);
  assert_int_equal(st()->flows_evicted, 1);
  assert_int_equal(st()->flows_active, 2);
}

static void test_flow_bound(void **state) {
  (void)state;
  handshake();
  uint32_t base = T->cseq;
  char chunk[300];
  memset(chunk, 'h', sizeof(chunk) - 1);
  chunk[sizeof(chunk) - 1] = '\0';
  /* a hole of 1 byte, then far more than the 1024-byte bound behind it */
  for (int i = 0; i < 10; i++) {
    send_at(true, KW_TCP_ACK, base + 1 + (uint32_t)i * 299, chunk);
    assert_true(st()->bytes_held <= 1024);
  }
  assert_true(st()->gaps >= 1);
  assert_int_equal(T->rec.f[0].gap[0], 1); /* the 1-byte hole only: nothing else lost */
  assert_int_equal(T->rec.f[0].n[0], 1 + 10 * 299);
  assert_int_equal(st()->drop_bytes, 0);
  /* a segment absurdly far ahead is dropped, not held */
  send_at(true, KW_TCP_ACK, base + 0x40000000u, "far");
  assert_int_equal(st()->drop_segments, 1);
}

static void test_total_bound(void **state) {
  (void)state;
  T->cport = 42000;
  handshake();
  uint32_t b1 = T->cseq;
  char chunk[801];
  memset(chunk, 'k', 800);
  chunk[800] = '\0';
  send_at(true, KW_TCP_ACK, b1 + 5, chunk); /* flow 1 holds 800 + overhead */
  T->cport = 42001;
  handshake();
  uint32_t b2 = T->cseq;
  send_at(true, KW_TCP_ACK, b2 + 5, chunk); /* flow 2 has nothing to give back: dropped */
  assert_true(st()->bytes_held <= 1024);
  assert_int_equal(st()->drop_bytes, 800);
  send_at(true, KW_TCP_ACK, b2 + 5 + 800, chunk); /* still nothing held of its own */
  assert_int_equal(st()->drop_bytes, 1600);
  kw_tcpreasm_flush(T->r);
  assert_int_equal(T->rec.f[0].n[0], 805); /* 5-byte gap + 800 */
  assert_int_equal(T->rec.f[1].n[0], 0);   /* dropped data is never invented */
}

static void test_destroy_open(void **state) {
  (void)state;
  handshake();
  send_data(true, "open");
  kw_tcpreasm_destroy(T->r);
  T->r = NULL;
  assert_int_equal(T->rec.f[0].closes, 1);
  assert_int_equal(T->rec.f[0].why, KW_TCPREASM_CLOSE_DESTROY);
}

/* Random cuts of a known stream, sent shuffled with duplicates: the stream comes out
 * exactly, whatever the order (no ACKs, so no hole is declared before the flush). */
static void test_shuffled_stream(void **state) {
  char stream[4000];
  uint32_t x = 99;
  (void)state;
  for (size_t i = 0; i < sizeof(stream); i++)
    stream[i] = (char)('a' + i % 23);
  for (int round = 0; round < 20; round++) {
    struct {
      uint32_t off, len;
    } cuts[200];
    int n = 0;
    T->cport = (uint16_t)(43000 + round);
    T->cseq = 1000 + (uint32_t)round * 0x10000000u;
    handshake();
    for (uint32_t off = 0; off < sizeof(stream);) {
      x = x * 1103515245u + 12345u;
      uint32_t len = 1 + (x >> 16) % 90;
      if (off + len > sizeof(stream))
        len = (uint32_t)sizeof(stream) - off;
      cuts[n].off = off;
      cuts[n].len = len;
      n++;
      /* an overlapping piece with the same bytes, now and then */
      x = x * 1103515245u + 12345u;
      if ((x >> 16) % 4 == 0 && off + len + 20 <= sizeof(stream) && n < 199) {
        cuts[n].off = off + len / 2;
        cuts[n].len = len / 2 + 20;
        n++;
      }
      off += len;
    }
    for (int i = n - 1; i > 0; i--) { /* shuffle */
      x = x * 1103515245u + 12345u;
      int j = (int)((x >> 16) % (uint32_t)(i + 1));
      __typeof__(cuts[0]) tmp = cuts[i];
      cuts[i] = cuts[j];
      cuts[j] = tmp;
    }
    for (int i = 0; i < n; i++) {
      send_full(true, KW_TCP_PSH, T->cseq + cuts[i].off, 0, stream + cuts[i].off, cuts[i].len,
                cuts[i].len);
      if (i % 3 == 0) /* duplicates */
        send_full(true, KW_TCP_PSH, T->cseq + cuts[i].off, 0, stream + cuts[i].off,
                  cuts[i].len, cuts[i].len);
    }
    struct rflow *f = &T->rec.f[T->rec.nf - 1];
    if (f->n[0] != sizeof(stream) || memcmp(f->data[0], stream, sizeof(stream)) != 0)
      fail_msg("round %d: stream differs (%zu bytes)", round, f->n[0]);
    assert_int_equal(st()->anomalies, 0);
    kw_tcpreasm_flush(T->r);
    T->rec.nf = 0;
  }
  assert_int_equal(st()->gaps, 0);
}

int main(void) {
  struct kw_tcpreasm_opts small_flows = {.max_flows = 2};
  struct kw_tcpreasm_opts small_buf = {.max_flow_bytes = 1024};
  struct kw_tcpreasm_opts small_total = {.max_total_bytes = 1024};
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_in_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_out_of_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_retransmissions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_overlaps, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gap_acked, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gap_at_end, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fin_out_of_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_synless_and_synack, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rst_and_reuse, setup, teardown),
      cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wraparound, setup, teardown),
      cmocka_unit_test_setup_teardown(test_snapped, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ignore, setup, teardown),
      cmocka_unit_test_prestate_setup_teardown(test_max_flows, setup_prestate, teardown,
                                               &small_flows),
      cmocka_unit_test_prestate_setup_teardown(test_flow_bound, setup_prestate, teardown,
                                               &small_buf),
      cmocka_unit_test_prestate_setup_teardown(test_total_bound, setup_prestate, teardown,
                                               &small_total),
      cmocka_unit_test_setup_teardown(test_destroy_open, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shuffled_stream, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
