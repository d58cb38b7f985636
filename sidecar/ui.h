/* ui.h — the web UI's static files (dashboards/ui/), embedded in the binary at build time.
 *
 * cmake/embed_files.cmake turns every file under dashboards/ui/ into an entry of
 * kw_ui_files (generated ${CMAKE_BINARY_DIR}/ui_builtin.c): its path relative to that
 * folder with a leading '/' ("/index.html", "/app.js"), its Content-Type chosen by
 * extension (html, js, css, svg, json, png, ico; the build refuses any other), and its
 * bytes.  The HTTP server maps GET / to "/index.html" and /ui/NAME to "/NAME".
 * Thread: any (read-only data).
 */
#ifndef KW_UI_H
#define KW_UI_H

#include <stddef.h>

struct kw_ui_file {
  const char *path;          /* "/index.html" */
  const char *content_type;  /* "text/html; charset=utf-8" */
  const unsigned char *data; /* len bytes, then a NUL not counted in len */
  size_t len;
};

extern const struct kw_ui_file kw_ui_files[];
extern const size_t kw_ui_nfiles;

/* The embedded file at path ("/app.js"; "/" and "" mean "/index.html"), or NULL.  The
 * match is exact (case-sensitive): no normalisation, so "..", "//" or a query never
 * match anything. */
const struct kw_ui_file *kw_ui_find(const char *path);

#endif
