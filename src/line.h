/*
 * line.h - POP3 command line framing and tokenizing.
 *
 * The framer never buffers more than `max` octets of a line: input that has
 * no line end within the limit is reported once as LINE_TOOLONG and the rest
 * of that line is discarded as it arrives, so nothing after the limit can
 * ever be parsed as a command and memory stays flat.
 */
#ifndef POP3D_LINE_H
#define POP3D_LINE_H

#include "verbs.h"
#include <stddef.h>

struct evbuffer;

enum line_status {
	LINE_AGAIN = 0, /* no complete line yet */
	LINE_OK,	/* a line is in buf (without its CRLF / LF) */
	LINE_TOOLONG,	/* over the limit; rest of the line discarded */
	LINE_NUL	/* the line held a NUL byte */
};

struct line_framer {
	int discarding; /* dropping input up to the next LF */
};

#define LINE_VERB_MAX VERBS_MAX

struct line_cmd {
	char verb[LINE_VERB_MAX + 1]; /* lower-case, NUL-terminated */
	const char *arg;	      /* points into the line; NULL when absent */
	size_t arglen;
};

void line_init(struct line_framer *);
/* Take the next line from in.  max counts the line with its terminator;
 * buf must hold max octets.  On LINE_OK, *len is the length without the
 * CRLF (or bare LF). */
enum line_status
line_extract(struct line_framer *, struct evbuffer *in, size_t max, char *buf, size_t *len);
/* The same from *avail octets at *data (a buffer just read), advancing
 * both past what was used; on LINE_AGAIN the rest is an incomplete line
 * (or nothing) that the caller keeps for the next call. */
enum line_status line_extract_mem(struct line_framer *, const char **data, size_t *avail,
    size_t max, char *buf, size_t *len);
/* Trim and split a line: verb (first word, lower-cased) and the rest after
 * the first run of white space, trailing white space removed.  Returns 0, or
 * -1 for an empty line or a verb longer than LINE_VERB_MAX. */
int line_parse(const char *line, size_t len, struct line_cmd *);
/* Whether len octets at s may go on one POP3 line: no CR, LF or NUL (a
 * line break would let the sender forge a second answer; a NUL would cut
 * it short in C strings and logs).  NULL is not. */
int line_clean(const char *s, size_t len);
/* Whether verb (lower case) is forwarded: a row of the verb table
 * (verbs.c), or one of extra (NULL-terminated, any case; may be NULL). */
int line_verb_known(const char *verb, const char *const *extra);

#endif
