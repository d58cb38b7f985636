/* capture.h — API calls from packets: pcap/pcapng files or a live interface → kw_rec.
 *
 *   libpcap --> packet (link, IP, fragments, TCP) --> tcpreasm (flows, streams)
 *           --> httpflow (HTTP/1.x pairs) --> on_rec(kw_rec, wire_bytes, ctx)
 *
 * Three ways in:
 *   - a file: kw_capture_open_file() (pcap or pcapng; libpcap reads both), then
 *     kw_capture_run() reads it to the end and flushes every flow;
 *   - a live interface: kw_capture_open_live(), then the owner polls kw_capture_fd()
 *     (uv_poll) and calls kw_capture_dispatch() when it is readable, kw_capture_tick()
 *     from a timer (idle flows time out by packet time, which stops when traffic does);
 *   - frames from anywhere: kw_capture_create() with their link type, kw_capture_feed().
 * Timestamps come from the pcap headers, in µs; flows time out by packet time, so a file
 * gives the same records whenever it is read.  Records are emitted in a deterministic
 * order: kw_capture_stats()->packets, read inside the callback, is the index of the packet
 * that completed the record (records flushed at the end carry the total), which lets a
 * caller resume a file by replaying it and skipping what it stored before.
 *
 * Errors: functions return 0 or a negative KW_E* / -errno, with a readable reason (file
 * name and libpcap's text) in the caller's err buffer.  A damaged or truncated file still
 * yields every record completed before the damage; then kw_capture_run() flushes the
 * open flows and reports KW_EPARSE.  Garbage inside packets is counted, never fatal.
 *
 * Ownership: strings of a kw_rec passed to on_rec are valid during the callback only.
 * Thread: one capture per thread; callbacks run on the calling thread, inside
 * kw_capture_run(), _dispatch(), _feed(), _tick() and _flush().  Callbacks must not
 * destroy the capture; they may call kw_capture_stats() and kw_capture_stop().
 */
#ifndef KW_CAPTURE_H
#define KW_CAPTURE_H

#include "httpflow.h"
#include "packet.h"
#include "record.h"
#include "tcpreasm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* One HTTP transaction; rec and its strings are borrowed for the call.  wire_bytes is
 * what the request and its response(s) took on the wire (for input accounting). */
typedef void (*kw_capture_rec_cb)(const struct kw_rec *rec, size_t wire_bytes, void *ctx);

struct kw_capture_opts {
  const char *bpf;             /* BPF filter expression; NULL or "": none */
  int snaplen;                 /* live: bytes captured per packet (0: 262144) */
  bool promisc;                /* live: promiscuous mode */
  int buffer_bytes;            /* live: kernel buffer (0: 16 MiB) */
  const uint16_t *ports;       /* HTTP server ports; nports 0: any port */
  size_t nports;
  const char *const *headers;  /* request headers to keep besides the built-in ones
                                  (see httpflow.h), e.g. the configured key headers */
  size_t nheaders;
  bool use_xff;                /* client address from X-Forwarded-For when present */
  size_t max_flows;            /* see tcpreasm.h and httpflow.h; 0 takes the default */
  size_t max_flow_bytes;
  size_t max_total_bytes;
  int64_t idle_timeout_us;
  size_t max_pending;
  size_t max_request_bytes;
};

struct kw_capture_stats {
  /* summary */
  uint64_t packets;         /* frames read (offered, before the BPF filter of feed) */
  uint64_t bytes;           /* bytes captured */
  uint64_t wire_bytes;      /* bytes on the wire */
  uint64_t filtered;        /* frames the BPF filter rejected (feed mode) */
  uint64_t decode_errors;   /* malformed frames */
  uint64_t truncated;       /* frames cut before the end of the TCP header */
  uint64_t not_tcp;         /* valid frames that are not TCP over IP */
  uint64_t other_ports;     /* TCP segments on no configured port */
  uint64_t records;         /* records emitted */
  uint64_t non_http_flows;
  uint64_t gaps, gap_bytes; /* reassembly loss */
  uint64_t anomalies;       /* overlaps with different bytes (TCP and IP fragments) */
  uint64_t bound_drops;     /* segments, fragments, flows and requests dropped by bounds */
  /* live capture (pcap_stats), 0 otherwise */
  uint64_t pcap_received, pcap_dropped, pcap_ifdropped;
  /* details */
  struct kw_packet_stats ip;
  struct kw_tcpreasm_stats tcp;
  struct kw_httpflow_stats http;
};

struct kw_capture;

/* Opens a capture file.  Returns 0 and a new capture (free with kw_capture_destroy()), or
 * -errno (cannot open), KW_EFORMAT (not a capture file, or a damaged header, or a link
 * type not supported), KW_EINVAL (bad BPF filter or options) with the reason in err.
 * opts may be NULL; it is copied. Thread: any. */
int kw_capture_open_file(const char *path, const struct kw_capture_opts *opts,
                         struct kw_capture **out, char *err, size_t errlen);

/* The same from an open stream (e.g. fmemopen()); takes ownership of fp in every case.
 * name is used in messages. */
int kw_capture_open_stream(FILE *fp, const char *name, const struct kw_capture_opts *opts,
                           struct kw_capture **out, char *err, size_t errlen);

/* Reads the file to its end, calling on_rec for every transaction, then flushes the open
 * flows (their unanswered requests get status 0).  Returns 0; KW_EPARSE when the file is
 * damaged or truncated (records before the damage were delivered; err says where);
 * KW_ECANCELED if kw_capture_stop() was called (nothing flushed); KW_EINVAL for a live or
 * fed capture.  Borrows ctx until it returns. */
int kw_capture_run(struct kw_capture *cap, kw_capture_rec_cb on_rec, void *ctx, char *err,
                   size_t errlen);

/* Opens a live interface (non-blocking; needs CAP_NET_RAW).  Returns 0, KW_EINVAL (bad
 * filter/options), KW_EFORMAT (link type not supported) or KW_EIO, with err set.
 * Borrows ctx for the capture's life. */
int kw_capture_open_live(const char *iface, const struct kw_capture_opts *opts,
                         kw_capture_rec_cb on_rec, void *ctx, struct kw_capture **out,
                         char *err, size_t errlen);

/* The descriptor to poll for readability (live), or -1. */
int kw_capture_fd(const struct kw_capture *cap);

/* Live: processes the packets ready now (at most max; <= 0: all buffered).  Returns the
 * number processed, or KW_EIO with err set. */
int kw_capture_dispatch(struct kw_capture *cap, int max, char *err, size_t errlen);

/* A capture fed by the caller, frames of the given pcap link type (DLT_*).  Returns 0,
 * KW_EFORMAT (link type), KW_EINVAL (filter), KW_ENOMEM. Borrows ctx for its life. */
int kw_capture_create(const struct kw_capture_opts *opts, int linktype,
                      kw_capture_rec_cb on_rec, void *ctx, struct kw_capture **out,
                      char *err, size_t errlen);

/* Feeds one frame: caplen bytes captured of len on the wire, at ts_us (µs since the
 * epoch).  Borrows frame for the call. */
void kw_capture_feed(struct kw_capture *cap, const uint8_t *frame, size_t caplen, size_t len,
                     int64_t ts_us);

/* Lets time pass without packets: flows idle at now_us are closed (and emitted). */
void kw_capture_tick(struct kw_capture *cap, int64_t now_us);

/* End of input: every open flow delivers what it holds and its pending requests. */
void kw_capture_flush(struct kw_capture *cap);

/* Makes a running kw_capture_run() return KW_ECANCELED after the current packet. */
void kw_capture_stop(struct kw_capture *cap);

/* The link type (DLT_*) of the capture. */
int kw_capture_linktype(const struct kw_capture *cap);

/* Bytes of the file read so far (for a progress bar), or -1. */
int64_t kw_capture_offset(const struct kw_capture *cap);

/* Current counters (refreshed by the call; for live captures it asks pcap_stats). */
const struct kw_capture_stats *kw_capture_stats(struct kw_capture *cap);

/* Frees everything; pending requests are dropped, not emitted (call kw_capture_flush()
 * first to keep them).  NULL is a no-op. */
void kw_capture_destroy(struct kw_capture *cap);

#endif
