/* capture.c — see capture.h.
 *
 * Owns one libpcap handle (file, live, or a "dead" one that only compiles the filter for
 * fed frames) and the chain decoder → reassembler → HTTP layer.  Every frame goes through
 * feed_frame(); libpcap codes and texts are translated here and go no further.
 *
 * Lifecycle:  open_* / create --> [run | dispatch* | feed*] --> flush --> destroy
 *             run: dispatch in batches until EOF (flush) or an error (flush, KW_EPARSE)
 *             or kw_capture_stop() (KW_ECANCELED, no flush).
 * Invariants: cap->lt is a link type the decoder accepts; cap->on_rec is non-NULL
 * whenever frames can arrive (a no-op callback until kw_capture_run() sets the real one).
 * Thread: the owner's.
 */
#include "capture.h"
#include "../sidecar/err.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_SNAPLEN 262144
#define RUN_BATCH 4096

enum { M_FILE, M_LIVE, M_FED };

struct kw_capture {
  int mode;
  int lt;
  pcap_t *pcap;
  FILE *fp;                 /* file mode: pcap reads it (pcap_close closes it) */
  char *name;
  struct bpf_program prog;  /* fed mode with a filter */
  bool have_prog;
  bool stop;
  struct kw_packet *dec;
  struct kw_tcpreasm *reasm;
  struct kw_httpflow *http;
  kw_capture_rec_cb on_rec;
  void *ctx;
  struct kw_capture_stats st;
};

static void on_rec_none(const struct kw_rec *rec, size_t wire, void *ctx) {
  (void)rec;
  (void)wire;
  (void)ctx;
}

static void on_http_rec(const struct kw_rec *rec, size_t wire, void *ctx) {
  struct kw_capture *cap = ctx;
  cap->st.records++;
  cap->on_rec(rec, wire, cap->ctx);
}

void kw_capture_destroy(struct kw_capture *cap) {
  if (cap == NULL)
    return;
  kw_tcpreasm_destroy(cap->reasm); /* before the HTTP layer it calls */
  kw_httpflow_destroy(cap->http);
  kw_packet_destroy(cap->dec);
  if (cap->have_prog)
    pcap_freecode(&cap->prog);
  if (cap->pcap != NULL)
    pcap_close(cap->pcap); /* closes cap->fp too */
  else if (cap->fp != NULL)
    fclose(cap->fp);
  free(cap->name);
  free(cap);
}

/* The pieces shared by every mode. */
static int build(struct kw_capture *cap, const struct kw_capture_opts *o, char *err,
                 size_t errlen) {
  struct kw_tcpreasm_opts ro = {
      .max_flows = o->max_flows,
      .max_flow_bytes = o->max_flow_bytes,
      .max_total_bytes = o->max_total_bytes,
      .idle_timeout_us = o->idle_timeout_us,
  };
  struct kw_httpflow_opts ho = {
      .ports = o->ports,
      .nports = o->nports,
      .headers = o->headers,
      .nheaders = o->nheaders,
      .use_xff = o->use_xff,
      .max_pending = o->max_pending,
      .max_request_bytes = o->max_request_bytes,
  };
  int rc;

  if (!kw_packet_linktype_ok(cap->lt)) {
    const char *n = pcap_datalink_val_to_name(cap->lt);
    snprintf(err, errlen, "%s: link type %d (%s) is not supported", cap->name, cap->lt,
             n != NULL ? n : "unknown");
    return KW_EFORMAT;
  }
  if ((rc = kw_packet_create(NULL, &cap->dec)) != 0 ||
      (rc = kw_httpflow_create(&ho, on_http_rec, cap, &cap->http)) != 0 ||
      (rc = kw_tcpreasm_create(&ro, &kw_httpflow_ops, cap->http, &cap->reasm)) != 0) {
    snprintf(err, errlen, "%s: %s", cap->name,
             rc == KW_EINVAL ? "invalid header name in the capture options" : kw_strerror(rc));
    return rc;
  }
  return 0;
}

static int set_filter(struct kw_capture *cap, const char *bpf, char *err, size_t errlen) {
  struct bpf_program prog;

  if (bpf == NULL || bpf[0] == '\0')
    return 0;
  if (pcap_compile(cap->pcap, &prog, bpf, 1, PCAP_NETMASK_UNKNOWN) != 0) {
    snprintf(err, errlen, "%s: filter \"%s\": %s", cap->name, bpf, pcap_geterr(cap->pcap));
    return KW_EINVAL;
  }
  if (cap->mode == M_FED) {
    cap->prog = prog;
    cap->have_prog = true;
    return 0;
  }
  if (pcap_setfilter(cap->pcap, &prog) != 0) {
    snprintf(err, errlen, "%s: filter \"%s\": %s", cap->name, bpf, pcap_geterr(cap->pcap));
    pcap_freecode(&prog);
    return KW_EINVAL;
  }
  pcap_freecode(&prog);
  return 0;
}

static struct kw_capture *alloc_cap(int mode, const char *name) {
  struct kw_capture *cap = calloc(1, sizeof(*cap));

  if (cap == NULL)
    return NULL;
  cap->mode = mode;
  cap->on_rec = on_rec_none;
  cap->name = strdup(name != NULL ? name : "capture");
  if (cap->name == NULL) {
    free(cap);
    return NULL;
  }
  return cap;
}

int kw_capture_open_stream(FILE *fp, const char *name, const struct kw_capture_opts *opts,
                           struct kw_capture **out, char *err, size_t errlen) {
  struct kw_capture_opts dflt = {0};
  struct kw_capture *cap = alloc_cap(M_FILE, name);
  char perr[PCAP_ERRBUF_SIZE] = "";
  int rc = KW_ENOMEM;

  *out = NULL;
  if (opts == NULL)
    opts = &dflt;
  if (cap == NULL) {
    snprintf(err, errlen, "%s: %s", name != NULL ? name : "capture", kw_strerror(rc));
    fclose(fp);
    goto out;
  }
  cap->fp = fp;
  cap->pcap = pcap_fopen_offline(fp, perr);
  if (cap->pcap == NULL) {
    snprintf(err, errlen, "%s: not a readable pcap/pcapng file: %s", cap->name,
             perr[0] ? perr : "unknown error");
    rc = KW_EFORMAT;
    goto out;
  }
  cap->lt = pcap_datalink(cap->pcap);
  if ((rc = build(cap, opts, err, errlen)) != 0 ||
      (rc = set_filter(cap, opts->bpf, err, errlen)) != 0)
    goto out;
  *out = cap;
  cap = NULL;
  rc = 0;
out:
  kw_capture_destroy(cap);
  return rc;
}

int kw_capture_open_file(const char *path, const struct kw_capture_opts *opts,
                         struct kw_capture **out, char *err, size_t errlen) {
  FILE *fp = fopen(path, "rb");

  *out = NULL;
  if (fp == NULL) {
    int e = errno;
    snprintf(err, errlen, "%s: %s", path, strerror(e));
    return -e;
  }
  return kw_capture_open_stream(fp, path, opts, out, err, errlen);
}

int kw_capture_create(const struct kw_capture_opts *opts, int linktype,
                      kw_capture_rec_cb on_rec, void *ctx, struct kw_capture **out,
                      char *err, size_t errlen) {
  struct kw_capture_opts dflt = {0};
  struct kw_capture *cap = alloc_cap(M_FED, "capture");
  int rc = KW_ENOMEM;

  *out = NULL;
  if (opts == NULL)
    opts = &dflt;
  if (cap == NULL) {
    snprintf(err, errlen, "capture: %s", kw_strerror(rc));
    goto out;
  }
  cap->lt = linktype;
  if ((rc = build(cap, opts, err, errlen)) != 0)
    goto out;
  if (opts->bpf != NULL && opts->bpf[0] != '\0') {
    cap->pcap = pcap_open_dead(linktype, opts->snaplen > 0 ? opts->snaplen : DEFAULT_SNAPLEN);
    if (cap->pcap == NULL) {
      snprintf(err, errlen, "capture: cannot compile filters for link type %d", linktype);
      rc = KW_EINVAL;
      goto out;
    }
    if ((rc = set_filter(cap, opts->bpf, err, errlen)) != 0)
      goto out;
  }
  cap->on_rec = on_rec != NULL ? on_rec : on_rec_none;
  cap->ctx = ctx;
  *out = cap;
  cap = NULL;
  rc = 0;
out:
  kw_capture_destroy(cap);
  return rc;
}

int kw_capture_open_live(const char *iface, const struct kw_capture_opts *opts,
                         kw_capture_rec_cb on_rec, void *ctx, struct kw_capture **out,
                         char *err, size_t errlen) {
  struct kw_capture_opts dflt = {0};
  struct kw_capture *cap = alloc_cap(M_LIVE, iface);
  char perr[PCAP_ERRBUF_SIZE] = "";
  int rc = KW_ENOMEM, r;

  *out = NULL;
  if (opts == NULL)
    opts = &dflt;
  if (cap == NULL) {
    snprintf(err, errlen, "%s: %s", iface, kw_strerror(rc));
    goto out;
  }
  rc = KW_EIO;
  cap->pcap = pcap_create(iface, perr);
  if (cap->pcap == NULL) {
    snprintf(err, errlen, "%s: %s", iface, perr);
    goto out;
  }
  pcap_set_snaplen(cap->pcap, opts->snaplen > 0 ? opts->snaplen : DEFAULT_SNAPLEN);
  pcap_set_promisc(cap->pcap, opts->promisc ? 1 : 0);
  pcap_set_buffer_size(cap->pcap, opts->buffer_bytes > 0 ? opts->buffer_bytes : 16 << 20);
  pcap_set_immediate_mode(cap->pcap, 1);
  if ((r = pcap_activate(cap->pcap)) < 0) {
    snprintf(err, errlen, "%s: %s", iface,
             r == PCAP_ERROR ? pcap_geterr(cap->pcap) : pcap_statustostr(r));
    goto out;
  }
  if (pcap_setnonblock(cap->pcap, 1, perr) != 0) {
    snprintf(err, errlen, "%s: %s", iface, perr);
    goto out;
  }
  cap->lt = pcap_datalink(cap->pcap);
  if ((rc = build(cap, opts, err, errlen)) != 0 ||
      (rc = set_filter(cap, opts->bpf, err, errlen)) != 0)
    goto out;
  cap->on_rec = on_rec != NULL ? on_rec : on_rec_none;
  cap->ctx = ctx;
  *out = cap;
  cap = NULL;
  rc = 0;
out:
  kw_capture_destroy(cap);
  return rc;
}

/* ------------------------------------------------------------------------ frames */

static int64_t ts_us(const struct timeval *tv) {
  int64_t s = (int64_t)tv->tv_sec, us = (int64_t)tv->tv_usec;

  if (s < 0)
    s = 0;
  if (s > INT64_MAX / 1000000 - 1)
    s = INT64_MAX / 1000000 - 1;
  if (us < 0 || us > 999999)
    us = 0;
  return s * 1000000 + us;
}

static void feed_frame(struct kw_capture *cap, const uint8_t *frame, size_t caplen,
                       size_t len, int64_t ts) {
  struct kw_pkt pkt;

  cap->st.packets++;
  cap->st.bytes += caplen;
  cap->st.wire_bytes += len > caplen ? len : caplen;
  switch (kw_packet_decode(cap->dec, cap->lt, frame, caplen, len, ts, &pkt)) {
  case KW_PACKET_TCP:
    if (!kw_httpflow_port(cap->http, pkt.sport, pkt.dport)) {
      cap->st.other_ports++;
      return;
    }
    kw_tcpreasm_packet(cap->reasm, &pkt, ts);
    return;
  case KW_PACKET_OTHER:
    cap->st.not_tcp++;
    return;
  case KW_PACKET_FRAGMENT:
    return;
  case KW_PACKET_TRUNCATED:
    cap->st.truncated++;
    return;
  case KW_PACKET_MALFORMED:
  case KW_PACKET_LINKTYPE:
  default:
    cap->st.decode_errors++;
    return;
  }
}

static void on_pcap(u_char *user, const struct pcap_pkthdr *h, const u_char *data) {
  struct kw_capture *cap = (struct kw_capture *)user;

  feed_frame(cap, data, h->caplen, h->len, ts_us(&h->ts));
  if (cap->stop)
    pcap_breakloop(cap->pcap);
}

void kw_capture_feed(struct kw_capture *cap, const uint8_t *frame, size_t caplen, size_t len,
                     int64_t ts) {
  if (cap->have_prog) {
    struct pcap_pkthdr h = {.caplen = (bpf_u_int32)caplen,
                            .len = (bpf_u_int32)(len > caplen ? len : caplen)};
    if (caplen > UINT32_MAX || pcap_offline_filter(&cap->prog, &h, frame) == 0) {
      cap->st.packets++;
      cap->st.filtered++;
      return;
    }
  }
  feed_frame(cap, frame, caplen, len, ts);
}

int kw_capture_run(struct kw_capture *cap, kw_capture_rec_cb on_rec, void *ctx, char *err,
                   size_t errlen) {
  int r, rc = 0;

  if (cap->mode != M_FILE) {
    snprintf(err, errlen, "%s: not a capture file", cap->name);
    return KW_EINVAL;
  }
  cap->on_rec = on_rec != NULL ? on_rec : on_rec_none;
  cap->ctx = ctx;
  cap->stop = false;
  for (;;) {
    r = pcap_dispatch(cap->pcap, RUN_BATCH, on_pcap, (u_char *)cap);
    if (r == 0)
      break; /* end of file */
    if (r == PCAP_ERROR_BREAK || (r > 0 && cap->stop)) {
      snprintf(err, errlen, "%s: stopped after packet %llu", cap->name,
               (unsigned long long)cap->st.packets);
      rc = KW_ECANCELED;
      goto out;
    }
    if (r < 0) {
      snprintf(err, errlen, "%s: damaged after packet %llu: %s", cap->name,
               (unsigned long long)cap->st.packets, pcap_geterr(cap->pcap));
      rc = KW_EPARSE;
      break;
    }
  }
  kw_capture_flush(cap);
out:
  cap->on_rec = on_rec_none;
  cap->ctx = NULL;
  return rc;
}

int kw_capture_fd(const struct kw_capture *cap) {
  return cap->mode == M_LIVE ? pcap_get_selectable_fd(cap->pcap) : -1;
}

int kw_capture_dispatch(struct kw_capture *cap, int max, char *err, size_t errlen) {
  int r;

  if (cap->mode != M_LIVE) {
    snprintf(err, errlen, "%s: not a live capture", cap->name);
    return KW_EINVAL;
  }
  r = pcap_dispatch(cap->pcap, max > 0 ? max : -1, on_pcap, (u_char *)cap);
  if (r == PCAP_ERROR_BREAK)
    return 0;
  if (r < 0) {
    snprintf(err, errlen, "%s: %s", cap->name, pcap_geterr(cap->pcap));
    return KW_EIO;
  }
  return r;
}

void kw_capture_tick(struct kw_capture *cap, int64_t now_us) {
  kw_tcpreasm_expire(cap->reasm, now_us);
}

void kw_capture_flush(struct kw_capture *cap) {
  kw_tcpreasm_flush(cap->reasm);
}

void kw_capture_stop(struct kw_capture *cap) {
  cap->stop = true;
}

int kw_capture_linktype(const struct kw_capture *cap) {
  return cap->lt;
}

int64_t kw_capture_offset(const struct kw_capture *cap) {
  if (cap->mode != M_FILE || cap->fp == NULL)
    return -1;
  return (int64_t)ftello(cap->fp);
}

const struct kw_capture_stats *kw_capture_stats(struct kw_capture *cap) {
  struct kw_capture_stats *s = &cap->st;

  s->ip = *kw_packet_stats(cap->dec);
  s->tcp = *kw_tcpreasm_stats(cap->reasm);
  s->http = *kw_httpflow_stats(cap->http);
  s->non_http_flows = s->http.flows_non_http;
  s->gaps = s->tcp.gaps;
  s->gap_bytes = s->tcp.gap_bytes;
  s->anomalies = s->tcp.anomalies + s->ip.frag_overlap_diff;
  s->bound_drops = s->tcp.drop_segments + s->tcp.flows_evicted + s->ip.frag_dropped +
                   s->http.pending_drops;
  if (cap->mode == M_LIVE) {
    struct pcap_stat ps;
    if (pcap_stats(cap->pcap, &ps) == 0) {
      s->pcap_received = ps.ps_recv;
      s->pcap_dropped = ps.ps_drop;
      s->pcap_ifdropped = ps.ps_ifdrop;
    }
  }
  return s;
}
