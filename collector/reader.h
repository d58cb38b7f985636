/* reader.h — reading a log file (or stdin) as lines, in large chunks.
 *
 * Lines end at '\n' (a '\r' before it is dropped).  A last line without '\n' is returned
 * at end of file.  A line longer than KW_LINE_MAX is never buffered whole: it is skipped
 * to its end and reported once as KW_ETOOLONG, so memory stays bounded whatever the input.
 * Bytes are not interpreted: NULs and invalid UTF-8 go to the parser, which rejects them.
 * Consumed buffer space is wiped before reuse (logs may carry raw keys).
 * Thread: one reader per thread.
 */
#ifndef KW_READER_H
#define KW_READER_H

#include <stddef.h>
#include <stdint.h>

#define KW_LINE_MAX (64 * 1024)
#define KW_READ_CHUNK (1024 * 1024)

struct kw_reader;

/* Opens path ("-" is standard input).  Returns 0 and a new reader (free with
 * kw_reader_close()), or -errno with "cannot open PATH: reason" in err. */
int kw_reader_open(const char *path, struct kw_reader **out, char *err, size_t errlen);

/* Same, over an open descriptor the reader takes ownership of. */
int kw_reader_fdopen(int fd, const char *name, struct kw_reader **out);

/* Follow mode (tailing a growing file): end of file is not final — the next call reads
 * again — and a last line without '\n' is kept back until its newline arrives. */
void kw_reader_follow(struct kw_reader *r);

/* Positions the reader at byte offset off of its file (lseek), dropping what is
 * buffered; kw_reader_offset() then counts from off. Returns 0 or -errno. */
int kw_reader_seek(struct kw_reader *r, int64_t off);

/* The descriptor the reader reads (owned by the reader). */
int kw_reader_fd(const struct kw_reader *r);

/* Bytes read from the file but not yet returned as lines (a partial line). */
size_t kw_reader_buffered(const struct kw_reader *r);

/* Next line: returns 1 with *line and *len set (valid until the next call), 0 at end of input,
 * KW_ETOOLONG for a skipped overlong line (kw_reader_lineno() tells which), or -errno. */
int kw_reader_next(struct kw_reader *r, const char **line, size_t *len);

/* The first bytes of the input (up to n), read ahead without consuming them; for format
 * detection and magic numbers. Returns the count available. */
size_t kw_reader_peek(struct kw_reader *r, const char **buf, size_t n);

uint64_t kw_reader_lineno(const struct kw_reader *r); /* of the line last returned */
uint64_t kw_reader_offset(const struct kw_reader *r); /* bytes consumed so far */
int64_t kw_reader_size(const struct kw_reader *r);    /* file size, -1 for pipes */
const char *kw_reader_name(const struct kw_reader *r);

/* Closes and wipes; NULL is a no-op. */
void kw_reader_close(struct kw_reader *r);

#endif
