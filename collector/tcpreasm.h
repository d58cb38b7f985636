/* tcpreasm.h — TCP stream reassembly, per direction, for a passive observer.
 *
 * Feeds decoded segments (packet.h) into a table of flows hashed by 5-tuple and hands
 * each direction's bytes, in order, to a consumer (the HTTP layer) through kw_tcpreasm_ops,
 * the way Zeek's and Suricata's stream engines do:
 *   - out-of-order segments are held until the hole before them fills;
 *   - retransmissions are dropped; overlaps keep the first copy, and an overlap whose bytes
 *     differ is counted as an anomaly (data already delivered cannot be compared: such
 *     retransmissions are counted as retransmitted bytes);
 *   - a hole is declared lost (a gap, counted with its bytes and reported to the consumer)
 *     when the other side acknowledges data beyond it, when the direction's buffer bound
 *     is reached, when a segment lies implausibly far ahead, or when the flow ends;
 *   - flows picked up without their SYN start at the first segment seen;
 *   - FIN (in sequence order) ends a direction, RST ends the flow; idle flows time out,
 *     by packet time, never by wall-clock time.
 * Memory is bounded: flows (the least recently active is evicted to make room), bytes held
 * per direction and in total; whatever a bound refuses is dropped and counted.
 *
 * Ownership: the consumer's per-flow state (`user`) is created in on_open and must be
 * released by the consumer in on_close, which is called exactly once per opened flow.
 * Data passed to on_data is borrowed for the call only.
 * Thread: one reassembler per thread; callbacks run on that thread, inside
 * kw_tcpreasm_packet(), _expire(), _flush() and _destroy().  Callbacks must not call back
 * into the reassembler, except kw_tcpreasm_stats().
 */
#ifndef KW_TCPREASM_H
#define KW_TCPREASM_H

#include "packet.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Consumer answers: keep delivering, or stop delivering this flow's data for good (it is
 * not ours, or it was upgraded to another protocol).  An ignored flow stays in the table
 * (so that its later packets are recognised and dropped cheaply) until it ends. */
#define KW_TCPREASM_CONTINUE 0
#define KW_TCPREASM_IGNORE 1

enum kw_tcpreasm_close {
  KW_TCPREASM_CLOSE_FIN,     /* both directions finished (FIN) */
  KW_TCPREASM_CLOSE_RST,     /* reset */
  KW_TCPREASM_CLOSE_TIMEOUT, /* idle for idle_timeout_us of packet time */
  KW_TCPREASM_CLOSE_EVICT,   /* pushed out by the max_flows bound */
  KW_TCPREASM_CLOSE_REUSE,   /* a new SYN with another sequence number reused the tuple */
  KW_TCPREASM_CLOSE_FLUSH,   /* end of input (kw_tcpreasm_flush) */
  KW_TCPREASM_CLOSE_DESTROY, /* the reassembler is being destroyed: free, emit nothing */
};

struct kw_tcp_endpoint {
  uint8_t family; /* 4 or 6 */
  uint8_t addr[16];
  uint16_t port;
};

/* What the consumer learns about a flow when it opens.  Direction 0 is ep[0] → ep[1]. */
struct kw_tcpflow_info {
  struct kw_tcp_endpoint ep[2]; /* ep[0]: the initiator when syn_seen, else the sender
                                   of the first segment seen */
  bool syn_seen;                /* orientation known from the handshake */
  int64_t start_us;
};

struct kw_tcpreasm_ops {
  /* A flow starts.  Set *user to the consumer's state; return CONTINUE or IGNORE (then no
   * other callback but on_close runs for this flow). */
  int (*on_open)(void *ctx, const struct kw_tcpflow_info *info, void **user);
  /* n > 0 in-order bytes of direction dir (0 or 1), borrowed for the call; ts_us is the
   * time of the packet that completed them.  Return CONTINUE or IGNORE. */
  int (*on_data)(void *ctx, void *user, int dir, const uint8_t *p, size_t n, int64_t ts_us);
  /* n bytes of direction dir were lost (never captured).  Return CONTINUE or IGNORE. */
  int (*on_gap)(void *ctx, void *user, int dir, uint64_t n, int64_t ts_us);
  /* direction dir ended (FIN reached in sequence order). Return CONTINUE or IGNORE. */
  int (*on_fin)(void *ctx, void *user, int dir, int64_t ts_us);
  /* The flow is gone: release user.  Every byte held was delivered (or reported as a gap)
   * before, unless why is KW_TCPREASM_CLOSE_DESTROY. */
  void (*on_close)(void *ctx, void *user, enum kw_tcpreasm_close why, int64_t ts_us);
};

struct kw_tcpreasm_opts {
  size_t max_flows;          /* flows tracked at once (0: 131072) */
  size_t max_flow_bytes;     /* out-of-order bytes held per direction (0: 1 MiB) */
  size_t max_total_bytes;    /* out-of-order bytes held in all flows (0: 64 MiB) */
  uint32_t max_jump;         /* a segment further ahead than this is dropped (0: 64 MiB) */
  int64_t idle_timeout_us;   /* an open flow silent this long is closed (0: 300 s) */
  int64_t closed_linger_us;  /* a finished flow absorbs late packets this long (0: 5 s) */
};

struct kw_tcpreasm_stats {
  uint64_t segments;         /* TCP segments handled */
  uint64_t flows;            /* flows opened */
  uint64_t flows_active;     /* flows in the table now (open or lingering) */
  uint64_t flows_evicted;    /* closed early by the max_flows bound */
  uint64_t flows_timed_out;
  uint64_t ignored_segments; /* segments of no flow (stray ACK/FIN/RST) or of an ignored one */
  uint64_t ooo_segments;     /* segments that arrived ahead of a hole */
  uint64_t retrans_segments; /* segments whose bytes were all delivered already */
  uint64_t retrans_bytes;
  uint64_t overlap_bytes;    /* bytes overlapping held data (same or different) */
  uint64_t anomalies;        /* overlaps whose bytes differ from the first copy */
  uint64_t gaps;             /* holes declared lost */
  uint64_t gap_bytes;
  uint64_t drop_segments;    /* segments (or parts) refused by a memory bound or jump */
  uint64_t drop_bytes;
  uint64_t bytes_delivered;
  uint64_t bytes_held;       /* out-of-order bytes held now */
  uint64_t bytes_held_peak;
};

struct kw_tcpreasm;

/* Returns a new reassembler (free with kw_tcpreasm_destroy()).  opts may be NULL.
 * Borrows ops (a static table) and ctx for its life.  Returns 0 or KW_ENOMEM. */
int kw_tcpreasm_create(const struct kw_tcpreasm_opts *opts, const struct kw_tcpreasm_ops *ops,
                       void *ctx, struct kw_tcpreasm **out);

/* Calls on_close(DESTROY) for every flow still open, then frees; NULL is a no-op. */
void kw_tcpreasm_destroy(struct kw_tcpreasm *r);

/* Handles one segment at packet time ts_us (times that go backwards are taken as the
 * latest time seen).  Borrows pkt for the call.  Expires idle flows as time advances. */
void kw_tcpreasm_packet(struct kw_tcpreasm *r, const struct kw_pkt *pkt, int64_t ts_us);

/* Expires flows idle at now_us (for a live source whose packets stop coming). */
void kw_tcpreasm_expire(struct kw_tcpreasm *r, int64_t now_us);

/* End of input: every flow delivers what it holds (holes as gaps) and closes (FLUSH). */
void kw_tcpreasm_flush(struct kw_tcpreasm *r);

const struct kw_tcpreasm_stats *kw_tcpreasm_stats(const struct kw_tcpreasm *r);

#endif
