/* httpd.h — keywatch's small HTTP/1.1 server on the loop (dashboard, JSON API, /metrics).
 *
 * libuv TCP + Debian's libhttp-parser.  One listener; connections keep-alive; requests on
 * one connection are answered in order (a pipelined request is parsed only once the one
 * before it has been answered and written).
 * Bounds, each answered with a status and the connection closed:
 *   request line + headers      > 16 KiB          → 431
 *   headers                     > 64              → 431
 *   body                        > 64 KiB          → 413 (a declared Content-Length is
 *                                                  refused before the body is read)
 *   headers not complete        within 10 s       → 408 (slowloris: time since the request's
 *                                                  first byte, not since the last byte)
 *   body not complete           within 10 s       → 408 (since the end of the headers)
 *   malformed request (http_parser error, HTTP/2 preface, a bad method, a version other
 *   than 1.x, a target not starting with '/', a bad %-escape, a decoded NUL or control
 *   byte or ".." segment in the path) → 400
 * Closed silently:
 *   a new connection without a first byte within header_timeout_ms;
 *   an idle keep-alive connection after idle_timeout_ms (30 s);
 *   a response not written (slow reader) within idle_timeout_ms;
 *   connections beyond 256: closed at once after accept.
 * A connection is also closed after a response to "Connection: close", to HTTP/1.0 without
 * keep-alive, or to an Upgrade request.  Before such a close the server shuts down its
 * side and discards what the client still sends for up to 2 s, so that the client reads
 * the response instead of a reset.
 * Every response carries: Content-Length (not for 204/304), Date, Cache-Control: no-store,
 * X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer, X-Frame-Options: DENY,
 * Content-Security-Policy (kw_httpd_opts.csp), and the handler's own headers.
 * "Expect: 100-continue" is answered with 100 Continue when the body is acceptable.
 *
 * Routing: routes are tried in order; the first whose method and path match gets the
 * request.  A route "GET" also takes HEAD (the response body is then not sent).  When no
 * route matches but some route's path does, the server answers 405 with an Allow header
 * listing those routes' methods; when no path matches, 404.
 *
 * Handlers: the handler either answers on the loop (kw_httpd_respond() before returning,
 * or later), or hands the work to the thread pool with kw_httpd_offload() — slow reads
 * never block the loop.  A handler must answer each request exactly once; until it does,
 * the connection reads nothing more and the server cannot finish closing.  If the client
 * goes away first, kw_httpd_respond() still must be called (it then only frees).
 *
 *   listening ──close──► closing: listener closed, idle connections closed at once, the
 *                        others after their in-flight request is answered and written
 *                        (offloaded work finishes) ──► cb
 *
 * Thread: the loop's, except an offloaded work function, which runs on a pool thread and
 * must touch only the request's data (reading it with kw_http_header()/kw_http_query() is
 * fine) and its own state.
 * The process must ignore SIGPIPE: libuv writes with write(2), and a client resetting its
 * connection before its response is written would otherwise kill it.
 */
#ifndef KW_HTTPD_H
#define KW_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct kw_httpd;
struct kw_http_request;

/* A parsed request.  Strings are NUL-terminated and live until kw_httpd_respond() (which
 * copies what it sends first, so a response may point into the request). */
struct kw_http_request {
  const char *method;      /* "GET" */
  const char *path;        /* percent-decoded path, no query ("/api/v1/alerts") */
  const char *query;       /* raw query without '?', "" when none */
  const char *body;        /* NULL when none; NUL-terminated (not counted in body_len) */
  size_t body_len;
  const char *remote;      /* "127.0.0.1", "::1" */
  void *user;              /* for the handler (NULL initially) */
};

/* The value of header name (case-insensitive; the first when repeated), or NULL.
 * Thread: any that may read rq. */
const char *kw_http_header(const struct kw_http_request *rq, const char *name);

/* The value of query parameter name, percent-decoded ('+' is a space) into buf (len
 * bytes); "" for "?name" and "?name=".  NULL when absent, when it does not fit, or when
 * it holds a bad %-escape or %00.  The first occurrence wins.  Thread: any that may
 * read rq. */
const char *kw_http_query(const struct kw_http_request *rq, const char *name, char *buf,
                          size_t len);

typedef void (*kw_http_handler)(struct kw_http_request *rq, void *arg);

struct kw_http_route {
  const char *method;      /* "GET", "POST"; "*" any */
  const char *prefix;      /* matched against the path: exact, or prefix when it ends '/' */
  kw_http_handler fn;
  void *arg;
};

struct kw_httpd_opts {
  const char *listen;                /* "127.0.0.1:8080", "[::1]:8080", "localhost:8080"
                                        (the first address it resolves to that
                                        can be bound); port 0: any free port */
  const struct kw_http_route *routes;/* tried in order; first match wins */
  size_t nroutes;
  const char *csp;                   /* Content-Security-Policy of every response;
                                        NULL: "default-src 'none'; frame-ancestors 'none'" */
  unsigned header_timeout_ms;        /* 0: 10000; headers, and the body after them */
  unsigned idle_timeout_ms;          /* 0: 30000; keep-alive wait, and writing a response */
};

/* Binds and listens.  Returns 0, or -errno / KW_EINVAL with a message in err
 * ("cannot listen on 127.0.0.1:8080: address already in use"); then nothing is left to
 * free.  Copies the routes array and csp; borrows the route strings and args
 * until the close callback.  Thread: the loop's. */
int kw_httpd_start(uv_loop_t *loop, const struct kw_httpd_opts *o, struct kw_httpd **out,
                   char *err, size_t errlen);

/* The port actually bound (useful with port 0).  Thread: any. */
int kw_httpd_port(const struct kw_httpd *h);

/* Answers rq: status (200..599), content type (may be NULL), body (copied), extra
 * headers ("Name: value\r\n" lines, may be NULL).  A malformed content type or extra
 * header (bare CR/LF, no colon, ...) or one that would change the framing
 * (Content-Length, Transfer-Encoding, Connection) is not sent: the client gets a 500.
 * Frees rq: it must not be used afterwards.  Thread: the loop's. */
void kw_httpd_respond(struct kw_http_request *rq, int status, const char *content_type,
                      const char *body, size_t len, const char *extra_headers);

/* Runs work(rq, arg) on the thread pool, then done(rq, arg) on the loop (which must
 * respond, or offload again).  Returns 0 or a uv error (then neither runs; respond
 * yourself).  Thread: the loop's; work runs on a pool thread. */
int kw_httpd_offload(struct kw_http_request *rq, void (*work)(struct kw_http_request *rq,
                                                              void *arg),
                     void (*done)(struct kw_http_request *rq, void *arg), void *arg);

struct kw_httpd_stats {
  uint64_t connections, requests, open;  /* accepted; answered by routing; open now */
  uint64_t bad_request, too_large, timeouts, refused; /* 400; 413+431; 408; over the limit */
};
/* Thread: the loop's. */
void kw_httpd_stats(const struct kw_httpd *h, struct kw_httpd_stats *out);

/* Stops listening; cb(arg) on the loop once every connection is closed, never from within
 * this call; h is freed just before cb.  h NULL: cb(arg) at once.  Thread: the loop's. */
void kw_httpd_close(struct kw_httpd *h, void (*cb)(void *arg), void *arg);

#endif
