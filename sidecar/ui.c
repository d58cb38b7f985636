/* ui.c — lookup in the embedded web UI (ui.h). */
#include "ui.h"

#include <string.h>

const struct kw_ui_file *kw_ui_find(const char *path) {
  if (path == NULL)
    return NULL;
  if (path[0] == '\0' || strcmp(path, "/") == 0)
    path = "/index.html";
  for (size_t i = 0; i < kw_ui_nfiles; i++)
    if (strcmp(kw_ui_files[i].path, path) == 0)
      return &kw_ui_files[i];
  return NULL;
}
