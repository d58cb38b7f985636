/* escape.h — writing attacker-controlled strings safely, one function per output format.
 *
 * Paths, user agents and hosts come from whoever called the API.  Every output goes
 * through one of these:
 *   JSON      quoted, with \" \\ \n \t … \u00XX for control bytes, and U+FFFD for bytes
 *             that are not valid UTF-8 (so the document is always valid JSON);
 *   terminal  printable text and valid UTF-8 as is; control bytes (ESC, CR, BEL, C1…) and
 *             invalid bytes as visible \xHH, so no escape sequence reaches the terminal.
 * Thread: any.
 */
#ifndef KW_ESCAPE_H
#define KW_ESCAPE_H

#include <stddef.h>
#include <stdio.h>

/* Writes s as a JSON string literal (with quotes); s NULL writes null. */
void kw_json_str(FILE *f, const char *s, size_t n);
void kw_json_cstr(FILE *f, const char *s);

/* Writes s for a terminal in at most width columns, counting a character as one and a
 * \xHH as four (0: unlimited).  A string that does not fit is cut so that a "…" marks the
 * cut within width. */
void kw_term_str(FILE *f, const char *s, size_t n, size_t width);

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when s[0] starts none. */
size_t kw_utf8_len(const unsigned char *s, size_t n);

#endif
