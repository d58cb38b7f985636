/* httpc.h — an asynchronous HTTP client on the loop: libcurl's multi interface.
 *
 * One kw_httpc is one curl multi handle driven by one libuv loop (curl tells it which
 * sockets to watch and when to wake; see curl's docs/examples/multi-uv.c).  Requests
 * never block the loop: DNS, connect, TLS and transfer all progress from loop callbacks.
 * Used by the webhook sink and by the key-store adapters of the responder.
 *
 * Policy, the same for every request: http and https only; redirects are never followed
 * (a 3xx is an answer like any other, so a hostile peer cannot bounce a request and its
 * credentials elsewhere); a total timeout and a connect timeout; at most max_body bytes
 * of the answer are kept (beyond, the transfer fails with KW_ETOOLONG).  Header lines
 * passed in may hold secrets: they are copied, wiped before their memory is freed, and
 * never appear in an error text.  Error texts never contain the URL's path or query
 * (either may hold a token).
 *
 *   open ──kw_httpc_close──► closing: transfers removed, multi cleaned up, handles
 *        closed (deferred while inside a curl callback) ──last handle closed──► each
 *        removed transfer's cb with KW_ECANCELED, then the close cb
 *
 * Thread: the loop's.  curl_global_init() is reference-counted per client.
 */
#ifndef KW_HTTPC_H
#define KW_HTTPC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct kw_httpc;

struct kw_http_req {
  const char *method;           /* "GET", "POST", "PUT", "PATCH", "DELETE" */
  const char *url;              /* http:// or https:// */
  const char *const *headers;   /* "Name: value" lines, NULL-terminated; may be NULL */
  const char *body;             /* NULL: no body */
  size_t body_len;
  long timeout_ms;              /* total; 0: 5000 */
  size_t max_body;              /* answer bytes kept; 0: 1 MiB */
};

struct kw_http_resp {
  int status;         /* 0: an HTTP answer arrived (any code); else KW_E… / -errno */
  long code;          /* HTTP status code when status == 0, or KW_ETOOLONG (cut answer) */
  const char *body;   /* the answer's body, NUL-terminated (len bytes before the NUL) */
  size_t len;
  int64_t duration_us;
  const char *error;  /* status != 0: what went wrong, without the URL's path or query */
};

/* Runs once per accepted request, on the loop, never from inside kw_httpc_request().
 * resp and its strings are valid during the call only. */
typedef void (*kw_http_cb)(const struct kw_http_resp *resp, void *arg);

/* Returns 0 and a new client in *out, or KW_ENOMEM / KW_EIO. */
int kw_httpc_init(uv_loop_t *loop, struct kw_httpc **out);

/* Starts a request.  Copies everything in req (headers are wiped when freed).
 * Returns 0 (cb will run exactly once), KW_EINVAL (bad method/URL/header line),
 * -EAGAIN (too many transfers in flight), KW_ECANCELED (closing), KW_ENOMEM. */
int kw_httpc_request(struct kw_httpc *c, const struct kw_http_req *req, kw_http_cb cb,
                     void *arg);

/* Transfers in flight. */
size_t kw_httpc_pending(const struct kw_httpc *c);

/* Cancels every transfer (their cb gets KW_ECANCELED) and frees the client; cb(arg) runs
 * once everything is closed.  NULL is a no-op. */
void kw_httpc_close(struct kw_httpc *c, void (*cb)(void *arg), void *arg);

#endif
