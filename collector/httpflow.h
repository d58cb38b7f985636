/* httpflow.h — HTTP/1.x transactions from reassembled TCP streams.
 *
 * The consumer side of tcpreasm.h: kw_httpflow_ops plugs into a kw_tcpreasm with the
 * kw_httpflow as its ctx.  Both directions of a flow are parsed with libhttp-parser;
 * requests are paired with responses first-in first-out (keep-alive and pipelining), and
 * every pair becomes one kw_rec handed to the callback:
 *   - bodies (Content-Length, chunked, until close) are skipped, only their sizes counted;
 *   - interim 1xx responses (100-continue, 103) are not final; 101 (or a 2xx to CONNECT)
 *     ends HTTP parsing for the flow; responses to HEAD, and 1xx/204/304, have no body
 *     whatever their Content-Length says;
 *   - a request whose response never comes is emitted with status 0 when the flow ends or
 *     times out, or when a loss in the response direction makes its answer unknowable;
 *   - a loss (gap) inside a body of known length is bridged without losing the stream;
 *     any other loss, or a parse error, drops the direction into resync: it looks for the
 *     next line that starts a message ("GET ", "HTTP/1.") and counts what it skipped;
 *   - a flow that does not speak HTTP is counted once and then ignored.
 * Which side is the client: the SYN's sender when the handshake was seen, else the side
 * not on a configured port, else the side whose first bytes look like a request.
 *
 * Record fields: ts_us = time of the request's first byte; latency_us = first byte of the
 * final response − that; req_bytes = request bytes on the wire (line, headers, body, like
 * nginx's $request_length); resp_bytes = response body bytes after de-chunking (like
 * $body_bytes_sent), -1 without a response; addr = the TCP client's address (or the first
 * X-Forwarded-For address when use_xff is set and it parses); hdrs = only the request
 * headers that may carry a key or that keywatch keeps: x-api-key, apikey, api-key,
 * x-api-token, authorization, host, user-agent, x-forwarded-for, plus opts.headers.
 * wire_bytes (callback) = request + response bytes on the wire, interim responses included.
 *
 * Ownership: the strings of a kw_rec point into memory of the kw_httpflow, valid during
 * the callback only.  Memory is bounded: requests awaiting a response (per flow and in
 * total) and bytes kept per request; what a bound refuses is counted.
 * Thread: the reassembler's; the callback runs inside kw_tcpreasm_*() calls.
 */
#ifndef KW_HTTPFLOW_H
#define KW_HTTPFLOW_H

#include "record.h"
#include "tcpreasm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Called once per transaction; rec and its strings are borrowed for the call. */
typedef void (*kw_httpflow_rec_cb)(const struct kw_rec *rec, size_t wire_bytes, void *ctx);

struct kw_httpflow_opts {
  const uint16_t *ports;       /* server ports; nports 0: any port (content decides) */
  size_t nports;
  const char *const *headers;  /* more request headers to keep (any case), e.g. the
                                  configured key headers */
  size_t nheaders;
  bool use_xff;                /* client address from X-Forwarded-For when present */
  size_t max_pending;          /* requests awaiting a response, all flows (0: 16384) */
  size_t max_pipeline;         /* … per flow (0: 32; at most 256) */
  size_t max_request_bytes;    /* URI + kept header bytes per request (0: 16 KiB) */
  size_t max_sync_scan;        /* bytes of a new flow searched for HTTP (0: 256 KiB) */
};

struct kw_httpflow_stats {
  uint64_t flows_http;         /* flows where HTTP was recognised */
  uint64_t flows_non_http;     /* flows with payload that never looked like HTTP */
  uint64_t flows_upgraded;     /* 101 / CONNECT: parsing stopped */
  uint64_t requests;           /* request heads parsed */
  uint64_t responses;          /* final responses parsed */
  uint64_t interim;            /* 1xx responses other than 101 */
  uint64_t records;            /* records emitted */
  uint64_t unanswered;         /* records emitted without a response (status 0) */
  uint64_t orphan_responses;   /* responses with no request to pair with */
  uint64_t parse_errors;       /* parser errors inside an HTTP flow */
  uint64_t resyncs;            /* times a direction found a message start again */
  uint64_t resync_bytes;       /* bytes skipped while searching */
  uint64_t gaps_bridged;       /* losses inside a body, skipped without losing sync */
  uint64_t gaps_desync;        /* losses that broke the stream */
  uint64_t pending_drops;      /* requests emitted early or dropped by a pending bound */
  uint64_t truncated_fields;   /* URIs or header values cut by max_request_bytes */
  uint64_t dropped_headers;    /* wanted headers past KW_REC_MAX_HDRS in one request */
  uint64_t incomplete;         /* requests cut before the end of their head: dropped */
};

struct kw_httpflow;

/* The kw_tcpreasm_ops to use with a kw_httpflow as ctx. */
extern const struct kw_tcpreasm_ops kw_httpflow_ops;

/* Returns a new HTTP layer (free with kw_httpflow_destroy(), after the reassembler that
 * uses it).  opts may be NULL; its arrays are copied.  Borrows cb's ctx for its life.
 * Returns 0, KW_ENOMEM or KW_EINVAL (a header name that is empty or too long). */
int kw_httpflow_create(const struct kw_httpflow_opts *opts, kw_httpflow_rec_cb cb, void *ctx,
                       struct kw_httpflow **out);

/* NULL is a no-op. */
void kw_httpflow_destroy(struct kw_httpflow *hf);

/* Returns 1 if a segment between these ports may be HTTP (one of them is a configured
 * port, or any port is), 0 if the flow is not worth tracking. */
int kw_httpflow_port(const struct kw_httpflow *hf, uint16_t sport, uint16_t dport);

const struct kw_httpflow_stats *kw_httpflow_stats(const struct kw_httpflow *hf);

#endif
