/* tcpreasm.c — see tcpreasm.h.
 *
 * Flow life (one per 5-tuple at a time):
 *
 *             SYN, SYN-ACK, or a segment with payload
 *   (none) --------------------------------------------> OPEN
 *     ^  (a stray ACK, FIN or RST makes no flow)          |  |
 *     |                                                   |  +-- idle, evicted, flushed, or
 *     |                                                   |      the tuple reused by a new
 *     |                                                   |      SYN: on_close --> (freed)
 *     |                  both FINs delivered, or RST      |
 *     |        +------------------------------------------+  (consumer said IGNORE: stays
 *     |        v                                                OPEN, payload dropped unseen)
 *     |     CLOSED  (on_close already called; absorbs late retransmissions and ACKs)
 *     +------- after closed_linger_us, or at once for a new SYN on the tuple
 *
 * Direction (half) life:
 *
 *   NONE --(SYN: next = ISN+1 | first segment: next = its seq)--> OPEN
 *   OPEN --(FIN reached in sequence order: on_fin, next += 1)---> FIN
 *
 * Per half: `next` is the first sequence number not yet delivered; `segs` holds the
 * out-of-order pieces, sorted, non-overlapping, all strictly after `next`, with `last`
 * pointing at the final piece (so that a run of segments after one hole appends in O(1)).
 * Sequence numbers compare modulo 2^32 (SEQ_LT); `max_jump` keeps every held piece within
 * 2^31 of `next`, so the comparisons stay meaningful.
 *
 * Invariants: held bytes (payload + SEG_OVERHEAD per piece) of a half <= max_flow_bytes
 * after each segment; the sum over all halves == stats.bytes_held <= max_total_bytes;
 * a flow is in exactly one LRU list (open or closed), ordered by last_us (oldest first);
 * flows in the table <= max_flows.
 * Thread: the owner's; no locks.
 */
#include "tcpreasm.h"
#include "../sidecar/err.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define SEQ_LT(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) < 0)
#define SEQ_LEQ(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) <= 0)
#define SEQ_GT(a, b) SEQ_LT(b, a)

#define SEG_OVERHEAD 32u  /* bytes of bookkeeping charged per held piece */
#define MAX_SEGS 4096u    /* pieces held per half: keeps insertion cheap */

enum { H_NONE, H_OPEN, H_FIN };
enum { F_OPEN, F_CLOSED };

struct seg {
  struct seg *next;
  uint32_t seq, len;
  uint8_t data[];
};

struct half {
  uint32_t next;    /* next sequence number to deliver */
  uint32_t fin_seq; /* valid when have_fin */
  uint32_t isn;     /* valid when have_syn */
  uint8_t state;    /* H_* */
  bool have_fin, have_syn;
  uint32_t nsegs;
  size_t held;
  struct seg *segs, *last;
};

struct fkey { /* canonical: (a, pa) sorts before (b, pb) */
  uint8_t a[16], b[16];
  uint16_t pa, pb;
  uint8_t family;
  uint8_t pad[3];
};

struct flow {
  struct flow *hnext;         /* hash chain */
  struct flow *lprev, *lnext; /* LRU list */
  struct fkey key;
  bool a_is_ep0;              /* the canonical a side is direction 0's sender */
  bool ignored;
  uint8_t state;              /* F_* */
  int64_t last_us;
  void *user;
  struct half h[2];
};

struct lru {
  struct flow head; /* sentinel */
};

struct kw_tcpreasm {
  struct kw_tcpreasm_opts o;
  const struct kw_tcpreasm_ops *ops;
  void *ctx;
  struct flow **buckets;
  size_t nbuckets, nflows, max_buckets;
  struct flow *free_flows;
  struct lru open, closed;
  int64_t now;
  struct kw_tcpreasm_stats st;
};

/* ------------------------------------------------------------------------- lists */

static void lru_init(struct lru *l) { l->head.lprev = l->head.lnext = &l->head; }

static void lru_unlink(struct flow *f) {
  f->lprev->lnext = f->lnext;
  f->lnext->lprev = f->lprev;
  f->lprev = f->lnext = f;
}

static void lru_push(struct lru *l, struct flow *f) {
  f->lprev = l->head.lprev;
  f->lnext = &l->head;
  l->head.lprev->lnext = f;
  l->head.lprev = f;
}

static struct flow *lru_oldest(struct lru *l) {
  return l->head.lnext == &l->head ? NULL : l->head.lnext;
}

/* ------------------------------------------------------------------------- table */

static size_t bucket_of(const struct kw_tcpreasm *r, const struct fkey *k) {
  return (size_t)XXH3_64bits(k, sizeof(*k)) & (r->nbuckets - 1);
}

static struct flow *lookup(const struct kw_tcpreasm *r, const struct fkey *k) {
  for (struct flow *f = r->buckets[bucket_of(r, k)]; f != NULL; f = f->hnext)
    if (memcmp(&f->key, k, sizeof(*k)) == 0)
      return f;
  return NULL;
}

static void table_unlink(struct kw_tcpreasm *r, struct flow *f) {
  struct flow **pp = &r->buckets[bucket_of(r, &f->key)];
  while (*pp != f)
    pp = &(*pp)->hnext;
  *pp = f->hnext;
  r->nflows--;
}

/* Doubles the bucket array while the table is denser than one flow per bucket. */
static void table_grow(struct kw_tcpreasm *r) {
  size_t n = r->nbuckets * 2;
  struct flow **b;

  if (r->nflows < r->nbuckets || n > r->max_buckets)
    return;
  b = calloc(n, sizeof(*b));
  if (b == NULL)
    return; /* longer chains, still correct */
  for (size_t i = 0; i < r->nbuckets; i++) {
    struct flow *f = r->buckets[i], *nx;
    for (; f != NULL; f = nx) {
      size_t j = (size_t)XXH3_64bits(&f->key, sizeof(f->key)) & (n - 1);
      nx = f->hnext;
      f->hnext = b[j];
      b[j] = f;
    }
  }
  free(r->buckets);
  r->buckets = b;
  r->nbuckets = n;
}

/* --------------------------------------------------------------------- lifecycle */

int kw_tcpreasm_create(const struct kw_tcpreasm_opts *opts, const struct kw_tcpreasm_ops *ops,
                       void *ctx, struct kw_tcpreasm **out) {
  struct kw_tcpreasm *r = calloc(1, sizeof(*r));
  int rc = KW_ENOMEM;

  *out = NULL;
  if (r == NULL)
    goto out;
  if (opts != NULL)
    r->o = *opts;
  if (r->o.max_flows == 0)
    r->o.max_flows = 131072;
  if (r->o.max_flow_bytes == 0)
    r->o.max_flow_bytes = 1u << 20;
  if (r->o.max_total_bytes == 0)
    r->o.max_total_bytes = 64u << 20;
  if (r->o.max_jump == 0 || r->o.max_jump > (1u << 30))
    r->o.max_jump = 64u << 20;
  if (r->o.idle_timeout_us <= 0)
    r->o.idle_timeout_us = 300 * 1000000LL;
  if (r->o.closed_linger_us <= 0)
    r->o.closed_linger_us = 5 * 1000000LL;
  r->ops = ops;
  r->ctx = ctx;
  lru_init(&r->open);
  lru_init(&r->closed);
  r->nbuckets = 1024;
  r->max_buckets = 1024;
  while (r->max_buckets < r->o.max_flows)
    r->max_buckets *= 2;
  r->buckets = calloc(r->nbuckets, sizeof(*r->buckets));
  if (r->buckets == NULL)
    goto out;
  r->now = INT64_MIN;
  *out = r;
  r = NULL;
  rc = 0;
out:
  kw_tcpreasm_destroy(r);
  return rc;
}

static void free_segs(struct kw_tcpreasm *r, struct half *h) {
  struct seg *s = h->segs, *nx;
  for (; s != NULL; s = nx) {
    nx = s->next;
    free(s);
  }
  r->st.bytes_held -= h->held;
  h->segs = h->last = NULL;
  h->held = 0;
  h->nsegs = 0;
}

/* Removes f from everything and recycles it; on_close must have run. */
static void flow_free(struct kw_tcpreasm *r, struct flow *f) {
  free_segs(r, &f->h[0]);
  free_segs(r, &f->h[1]);
  table_unlink(r, f);
  lru_unlink(f);
  r->st.flows_active--;
  f->hnext = r->free_flows;
  r->free_flows = f;
}

void kw_tcpreasm_destroy(struct kw_tcpreasm *r) {
  struct flow *f;

  if (r == NULL)
    return;
  if (r->buckets != NULL) {
    while ((f = lru_oldest(&r->open)) != NULL) {
      r->ops->on_close(r->ctx, f->user, KW_TCPREASM_CLOSE_DESTROY, r->now);
      flow_free(r, f);
    }
    while ((f = lru_oldest(&r->closed)) != NULL)
      flow_free(r, f);
  }
  while ((f = r->free_flows) != NULL) {
    r->free_flows = f->hnext;
    free(f);
  }
  free(r->buckets);
  free(r);
}

const struct kw_tcpreasm_stats *kw_tcpreasm_stats(const struct kw_tcpreasm *r) {
  return &r->st;
}

/* -------------------------------------------------------------------- delivery */

static void set_ignored(struct kw_tcpreasm *r, struct flow *f) {
  f->ignored = true;
  free_segs(r, &f->h[0]);
  free_segs(r, &f->h[1]);
}

static void deliver(struct kw_tcpreasm *r, struct flow *f, int dir, const uint8_t *p,
                    size_t n) {
  if (f->ignored || n == 0)
    return;
  r->st.bytes_delivered += n;
  if (r->ops->on_data(r->ctx, f->user, dir, p, n, r->now) == KW_TCPREASM_IGNORE)
    set_ignored(r, f);
}

static void gap(struct kw_tcpreasm *r, struct flow *f, int dir, uint32_t n) {
  if (n == 0)
    return;
  r->st.gaps++;
  r->st.gap_bytes += n;
  if (!f->ignored && r->ops->on_gap(r->ctx, f->user, dir, n, r->now) == KW_TCPREASM_IGNORE)
    set_ignored(r, f);
}

/* Delivers what is contiguous at h->next, then a FIN that sits there. */
static void drain(struct kw_tcpreasm *r, struct flow *f, int dir) {
  struct half *h = &f->h[dir];
  struct seg *s;

  while ((s = h->segs) != NULL && s->seq == h->next) {
    h->segs = s->next;
    if (h->segs == NULL)
      h->last = NULL;
    h->nsegs--;
    h->held -= s->len + SEG_OVERHEAD;
    r->st.bytes_held -= s->len + SEG_OVERHEAD;
    h->next += s->len;
    deliver(r, f, dir, s->data, s->len); /* may free the other pieces (IGNORE) */
    free(s);
  }
  if (h->have_fin && h->state == H_OPEN && h->fin_seq == h->next) {
    h->state = H_FIN;
    h->next++;
    if (!f->ignored && r->ops->on_fin(r->ctx, f->user, dir, r->now) == KW_TCPREASM_IGNORE)
      set_ignored(r, f);
  }
}

/* Declares lost everything between h->next and upto that has not been captured. */
static void resolve_upto(struct kw_tcpreasm *r, struct flow *f, int dir, uint32_t upto) {
  struct half *h = &f->h[dir];

  drain(r, f, dir);
  while (!f->ignored && h->state == H_OPEN && SEQ_LT(h->next, upto)) {
    uint32_t target = upto;
    if (h->segs != NULL && SEQ_LT(h->segs->seq, target))
      target = h->segs->seq;
    if (h->have_fin && SEQ_LT(h->fin_seq, target))
      target = h->fin_seq;
    gap(r, f, dir, target - h->next);
    h->next = target;
    drain(r, f, dir);
  }
}

/* Declares every hole of the half lost, delivering all it holds (end of flow, bounds). */
static void resolve_all(struct kw_tcpreasm *r, struct flow *f, int dir) {
  struct half *h = &f->h[dir];

  while (!f->ignored && h->state == H_OPEN && h->segs != NULL)
    resolve_upto(r, f, dir, h->segs->seq + h->segs->len);
  if (!f->ignored && h->state == H_OPEN && h->have_fin)
    resolve_upto(r, f, dir, h->fin_seq + 1);
}

/* ---------------------------------------------------------------------- buffering */

/* Stores one piece before *pp; returns false when a bound refused it. */
static bool add_piece(struct kw_tcpreasm *r, struct half *h, struct seg **pp, uint32_t seq,
                      const uint8_t *p, uint32_t n) {
  size_t cost = (size_t)n + SEG_OVERHEAD;
  struct seg *s;

  if (h->held + cost > r->o.max_flow_bytes || r->st.bytes_held + cost > r->o.max_total_bytes ||
      h->nsegs >= MAX_SEGS || (s = malloc(sizeof(*s) + n)) == NULL) {
    r->st.drop_segments++;
    r->st.drop_bytes += n;
    return false;
  }
  s->seq = seq;
  s->len = n;
  memcpy(s->data, p, n);
  s->next = *pp;
  *pp = s;
  if (s->next == NULL)
    h->last = s;
  h->nsegs++;
  h->held += cost;
  r->st.bytes_held += cost;
  assert(h->held <= r->o.max_flow_bytes && r->st.bytes_held <= r->o.max_total_bytes);
  if (r->st.bytes_held > r->st.bytes_held_peak)
    r->st.bytes_held_peak = r->st.bytes_held;
  return true;
}

/* Inserts [seq, seq + n) into the sorted pieces; overlaps keep the pieces held. */
static void buffer(struct kw_tcpreasm *r, struct half *h, uint32_t seq, const uint8_t *p,
                   uint32_t n) {
  uint32_t cur = seq, end = seq + n;
  struct seg **pp = &h->segs;
  bool differs = false;

  if (h->last != NULL && SEQ_LEQ(h->last->seq + h->last->len, seq))
    pp = &h->last->next; /* beyond everything held: append */
  while (SEQ_LT(cur, end)) {
    struct seg *s = *pp;
    uint32_t send, oe;
    if (s == NULL || SEQ_LEQ(end, s->seq)) {
      add_piece(r, h, pp, cur, p + (cur - seq), end - cur);
      break;
    }
    send = s->seq + s->len;
    if (SEQ_LEQ(send, cur)) {
      pp = &s->next;
      continue;
    }
    if (SEQ_LT(cur, s->seq)) {
      if (add_piece(r, h, pp, cur, p + (cur - seq), s->seq - cur))
        pp = &(*pp)->next;
      cur = s->seq;
    }
    oe = SEQ_LT(end, send) ? end : send;
    r->st.overlap_bytes += oe - cur;
    if (memcmp(s->data + (cur - s->seq), p + (cur - seq), oe - cur) != 0)
      differs = true;
    cur = oe;
    pp = &s->next;
  }
  if (differs)
    r->st.anomalies++;
}

/* Payload of a segment: caplen bytes captured of len on the wire, starting at seq. */
static void payload(struct kw_tcpreasm *r, struct flow *f, int dir, uint32_t seq,
                    const uint8_t *p, uint32_t cap, uint32_t len) {
  struct half *h = &f->h[dir];
  uint32_t d;

  if (SEQ_LEQ(seq + len, h->next) || h->state == H_FIN) {
    r->st.retrans_segments++;
    r->st.retrans_bytes += len;
    return;
  }
  if (SEQ_LT(seq, h->next)) { /* starts with bytes delivered already */
    d = h->next - seq;
    r->st.retrans_bytes += d;
    seq += d;
    len -= d;
    if (cap > d) {
      p += d;
      cap -= d;
    } else {
      cap = 0;
    }
  }
  if (seq - h->next > r->o.max_jump) {
    r->st.drop_segments++;
    r->st.drop_bytes += len;
    return;
  }
  if (f->ignored)
    return;
  if (seq == h->next && h->segs == NULL) { /* in order, nothing held: no copy */
    h->next += cap;
    deliver(r, f, dir, p, cap);
    if (len > cap && !f->ignored) { /* the snap length cut the rest: lost */
      gap(r, f, dir, len - cap);
      h->next += len - cap;
    }
    drain(r, f, dir);
    return;
  }
  if (seq != h->next)
    r->st.ooo_segments++;
  if (cap > 0) {
    if (r->st.bytes_held + cap + SEG_OVERHEAD > r->o.max_total_bytes)
      resolve_all(r, f, dir); /* make room from this flow's own holes first */
    if (h->held + cap + SEG_OVERHEAD > r->o.max_flow_bytes || h->nsegs >= MAX_SEGS)
      resolve_all(r, f, dir);
    if (f->ignored)
      return;
    if (seq == h->next && h->segs == NULL) { /* the holes are gone: in order now */
      payload(r, f, dir, seq, p, cap, len);
      return;
    }
    buffer(r, h, seq, p, cap);
  }
  drain(r, f, dir);
}

/* ------------------------------------------------------------------------ closing */

/* Delivers all held data (holes as gaps) and tells the consumer the flow is gone. */
static void flow_close(struct kw_tcpreasm *r, struct flow *f, enum kw_tcpreasm_close why) {
  if (f->state != F_OPEN)
    return;
  if (!f->ignored) {
    resolve_all(r, f, 0);
    resolve_all(r, f, 1);
  }
  f->state = F_CLOSED;
  r->ops->on_close(r->ctx, f->user, why, r->now);
  f->user = NULL;
  free_segs(r, &f->h[0]);
  free_segs(r, &f->h[1]);
}

/* Closes and, for anything but FIN/RST (which linger), frees. */
static void flow_end(struct kw_tcpreasm *r, struct flow *f, enum kw_tcpreasm_close why) {
  flow_close(r, f, why);
  if (why == KW_TCPREASM_CLOSE_FIN || why == KW_TCPREASM_CLOSE_RST) {
    lru_unlink(f);
    lru_push(&r->closed, f);
  } else {
    flow_free(r, f);
  }
}

void kw_tcpreasm_expire(struct kw_tcpreasm *r, int64_t now) {
  struct flow *f;

  if (now > r->now)
    r->now = now;
  while ((f = lru_oldest(&r->open)) != NULL && r->now - f->last_us > r->o.idle_timeout_us) {
    r->st.flows_timed_out++;
    flow_end(r, f, KW_TCPREASM_CLOSE_TIMEOUT);
  }
  while ((f = lru_oldest(&r->closed)) != NULL && r->now - f->last_us > r->o.closed_linger_us)
    flow_free(r, f);
}

void kw_tcpreasm_flush(struct kw_tcpreasm *r) {
  struct flow *f;

  while ((f = lru_oldest(&r->open)) != NULL)
    flow_end(r, f, KW_TCPREASM_CLOSE_FLUSH);
  while ((f = lru_oldest(&r->closed)) != NULL)
    flow_free(r, f);
}

/* ------------------------------------------------------------------------ packets */

static int ep_cmp(const uint8_t *a, uint16_t pa, const uint8_t *b, uint16_t pb) {
  int c = memcmp(a, b, 16);
  return c != 0 ? c : (int)pa - (int)pb;
}

static struct flow *flow_new(struct kw_tcpreasm *r, const struct fkey *k, bool a_is_ep0,
                             bool syn_seen) {
  struct flow *f = r->free_flows, *old;
  struct kw_tcpflow_info info;
  size_t b;

  if (r->nflows >= r->o.max_flows) { /* room: a lingering flow, else the least active */
    if ((old = lru_oldest(&r->closed)) != NULL) {
      flow_free(r, old);
    } else if ((old = lru_oldest(&r->open)) != NULL) {
      r->st.flows_evicted++;
      flow_end(r, old, KW_TCPREASM_CLOSE_EVICT);
    }
    f = r->free_flows;
  }
  if (f != NULL)
    r->free_flows = f->hnext;
  else if ((f = malloc(sizeof(*f))) == NULL)
    return NULL;
  memset(f, 0, sizeof(*f));
  f->key = *k;
  f->a_is_ep0 = a_is_ep0;
  f->state = F_OPEN;
  f->last_us = r->now;
  f->lprev = f->lnext = f;
  table_grow(r);
  b = bucket_of(r, k);
  f->hnext = r->buckets[b];
  r->buckets[b] = f;
  r->nflows++;
  lru_push(&r->open, f);
  r->st.flows++;
  r->st.flows_active++;

  memset(&info, 0, sizeof(info));
  info.ep[0].family = info.ep[1].family = k->family;
  memcpy(info.ep[a_is_ep0 ? 0 : 1].addr, k->a, 16);
  memcpy(info.ep[a_is_ep0 ? 1 : 0].addr, k->b, 16);
  info.ep[a_is_ep0 ? 0 : 1].port = k->pa;
  info.ep[a_is_ep0 ? 1 : 0].port = k->pb;
  info.syn_seen = syn_seen;
  info.start_us = r->now;
  if (r->ops->on_open(r->ctx, &info, &f->user) == KW_TCPREASM_IGNORE)
    f->ignored = true;
  return f;
}

void kw_tcpreasm_packet(struct kw_tcpreasm *r, const struct kw_pkt *pkt, int64_t ts) {
  struct fkey k;
  struct flow *f;
  bool from_a, syn = pkt->flags & KW_TCP_SYN, ackf = pkt->flags & KW_TCP_ACK;
  bool rst = pkt->flags & KW_TCP_RST, fin = pkt->flags & KW_TCP_FIN;
  int dir;
  struct half *h, *o;
  uint32_t dseq;

  r->st.segments++;
  kw_tcpreasm_expire(r, ts);
  memset(&k, 0, sizeof(k));
  k.family = pkt->family;
  from_a = ep_cmp(pkt->src, pkt->sport, pkt->dst, pkt->dport) <= 0;
  memcpy(k.a, from_a ? pkt->src : pkt->dst, 16);
  memcpy(k.b, from_a ? pkt->dst : pkt->src, 16);
  k.pa = from_a ? pkt->sport : pkt->dport;
  k.pb = from_a ? pkt->dport : pkt->sport;

  f = lookup(r, &k);
  if (f != NULL && f->state == F_CLOSED) {
    if (!(syn && !ackf)) {
      r->st.ignored_segments++;
      return;
    }
    flow_free(r, f); /* a new connection on the tuple */
    f = NULL;
  }
  if (f != NULL && syn && !ackf) {
    dir = (from_a == f->a_is_ep0) ? 0 : 1;
    if (dir == 0 && f->h[0].have_syn && f->h[0].isn == pkt->seq) {
      r->st.retrans_segments++; /* SYN again */
      return;
    }
    flow_end(r, f, KW_TCPREASM_CLOSE_REUSE);
    f = NULL;
  }
  if (f == NULL) {
    if (rst || (!syn && pkt->len == 0)) {
      r->st.ignored_segments++;
      return;
    }
    /* the SYN's sender, else the SYN-ACK's receiver, else the sender is direction 0 */
    f = flow_new(r, &k, (syn && ackf) ? !from_a : from_a, syn);
    if (f == NULL) {
      r->st.drop_segments++;
      r->st.drop_bytes += pkt->len;
      return;
    }
  }
  f->last_us = r->now;
  lru_unlink(f);
  lru_push(&r->open, f);
  dir = (from_a == f->a_is_ep0) ? 0 : 1;
  h = &f->h[dir];
  o = &f->h[!dir];

  if (f->ignored) { /* only follow the ends */
    r->st.ignored_segments++;
    if (fin)
      h->state = H_FIN;
    if (rst || (f->h[0].state == H_FIN && f->h[1].state == H_FIN))
      flow_end(r, f, rst ? KW_TCPREASM_CLOSE_RST : KW_TCPREASM_CLOSE_FIN);
    return;
  }
  dseq = pkt->seq;
  if (syn) {
    if (h->state == H_NONE) {
      h->isn = pkt->seq;
      h->have_syn = true;
      h->next = pkt->seq + 1;
      h->state = H_OPEN;
    }
    dseq = pkt->seq + 1;
  } else if (h->state == H_NONE) { /* picked up mid-stream */
    h->next = pkt->seq;
    h->state = H_OPEN;
  }
  /* what the peer acknowledges it has received: holes below that are lost */
  if (ackf && !rst && o->state == H_OPEN && SEQ_GT(pkt->ack, o->next) &&
      pkt->ack - o->next <= r->o.max_jump)
    resolve_upto(r, f, !dir, pkt->ack);
  if (f->state != F_OPEN)
    return;
  if (rst) {
    flow_end(r, f, KW_TCPREASM_CLOSE_RST);
    return;
  }
  if (pkt->len > 0)
    payload(r, f, dir, dseq, pkt->payload, pkt->caplen, pkt->len);
  if (fin && h->state == H_OPEN && !SEQ_LT(dseq + pkt->len, h->next)) {
    h->have_fin = true;
    h->fin_seq = dseq + pkt->len;
    if (!f->ignored)
      drain(r, f, dir);
  }
  if (f->ignored && fin)
    h->state = H_FIN;
  if (f->h[0].state == H_FIN && f->h[1].state == H_FIN)
    flow_end(r, f, KW_TCPREASM_CLOSE_FIN);
}
