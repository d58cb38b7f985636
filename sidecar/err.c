/* err.c — text for keywatch's error codes. */
#include "err.h"

#include <string.h>

const char *kw_strerror(int err) {
  switch (err) {
  case KW_OK: return "success";
  case KW_ENOMEM: return "out of memory";
  case KW_EINVAL: return "invalid argument";
  case KW_EPARSE: return "cannot parse input";
  case KW_ETOOLONG: return "input too long";
  case KW_ESTORE: return "database error";
  case KW_ESCHEMA: return "database schema not supported";
  case KW_ECONFIG: return "invalid configuration";
  case KW_EFORMAT: return "unknown log format";
  case KW_ESECRET: return "fingerprint secret unusable";
  case KW_EIO: return "I/O error";
  case KW_ENOTFOUND: return "not found";
  case KW_ECANCELED: return "operation canceled";
  default:
    if (err < 0 && err > -4096)
      return strerror(-err);
    return "unknown error";
  }
}
