/* err.h — keywatch's one error enum.
 *
 * Functions return int: 0 on success, a negative KW_E* code, or -errno for system errors.
 * Library codes (SQLite, curl, pcap, libcyaml) are translated inside the file that calls
 * the library and never leak further.  The enum is append-only: values are never reused.
 */
#ifndef KW_ERR_H
#define KW_ERR_H

enum kw_err {
  KW_OK = 0,
  KW_ENOMEM = -1000,  /* out of memory */
  KW_EINVAL = -1001,  /* invalid argument or configuration */
  KW_EPARSE = -1002,  /* input line or record could not be parsed */
  KW_ETOOLONG = -1003, /* input exceeds a documented bound */
  KW_ESTORE = -1004,  /* the SQLite store failed */
  KW_ESCHEMA = -1005, /* database schema is newer than this program or damaged */
  KW_ECONFIG = -1006, /* configuration file invalid */
  KW_EFORMAT = -1007, /* log format unknown or cannot be detected */
  KW_ESECRET = -1008, /* fingerprint secret missing, unreadable or too weak */
  KW_EIO = -1009,     /* I/O error not covered by errno */
  KW_ENOTFOUND = -1010, /* the named thing does not exist */
  KW_ECANCELED = -1011, /* operation was canceled (object closed first) */
};

/* Returns a static, human-readable string for a KW_E* code or a -errno value.
 * Thread: any. */
const char *kw_strerror(int err);

#endif
