/*
 * stuff.h - the multi-line response streamer: CRLF normalisation,
 * dot-stuffing and the TOP body-line limit, correct across chunk boundaries.
 *
 * Input is message bytes in arbitrary chunks.  Output is what goes on the
 * wire: every line ends in CRLF (LF, CR and CRLF line ends all become CRLF),
 * a line beginning with "." gets one more ".", a final CRLF is added when the
 * input lacks one, and stuff_finish() appends the "." terminator.
 */
#ifndef POP3D_STUFF_H
#define POP3D_STUFF_H

#include <stddef.h>

struct evbuffer;

struct stuff {
	int bol;		   /* output is at the beginning of a line */
	int cr;			   /* last input byte was CR, LF not yet seen */
	int in_header;		   /* still in the header block */
	long top;		   /* body lines still allowed, -1: no limit */
	int stopped;		   /* TOP limit reached: the rest is ignored */
	unsigned long long octets; /* normalised octets, stuffing excluded */
};

/* top_lines: -1 for the whole message, else body lines after the headers. */
void stuff_init(struct stuff *, long top_lines);
/* Worst-case output size of stuff_run() for n input octets. */
#define STUFF_MAX_OUT(n) (2 * (n) + 2)
/* Convert n input octets into dst (STUFF_MAX_OUT(n) octets); returns the
 * number of octets written. */
size_t stuff_run(struct stuff *, const char *in, size_t n, char *dst);
/* Same, appending to an evbuffer. */
int stuff_chunk(struct stuff *, const char *in, size_t n, struct evbuffer *out);
/* End of input: close the last line, append the terminator. */
int stuff_finish(struct stuff *, struct evbuffer *out);
/* Whether more input can change the output (false once TOP is satisfied). */
int stuff_wants_more(const struct stuff *);

#endif
