/* stuff.c - CRLF normalisation and dot-stuffing of multi-line responses. */
#include "config.h"

#include <string.h>

#include <event2/buffer.h>

#include "stuff.h"

void
stuff_init(struct stuff *st, long top_lines)
{
	st->bol = 1;
	st->cr = 0;
	st->in_header = 1;
	st->top = top_lines < 0 ? -1 : top_lines;
	st->stopped = 0;
	st->octets = 0;
}

/* Emit a line end and account for the header/body boundary and TOP limit. */
static inline size_t
stuff_eol(struct stuff *st, char *dst)
{
	dst[0] = '\r';
	dst[1] = '\n';
	st->octets += 2;
	if (st->in_header) {
		if (st->bol) {
			/* The empty line closing the header block. */
			st->in_header = 0;
			if (st->top == 0)
				st->stopped = 1;
		}
	} else if (st->top > 0) {
		if (--st->top == 0)
			st->stopped = 1;
	}
	st->bol = 1;
	return 2;
}

/*
 * The converter proper: spans of ordinary octets are copied whole.  The
 * next CR and the next LF are found with memchr (vectorised in libc) and
 * remembered until the position passes them, so every octet is scanned
 * at most once per kind however the line ends are mixed.
 */
size_t
stuff_run(struct stuff *st, const char *in, size_t n, char *dst)
{
	const char *end = in + n, *nextcr = NULL, *nextlf = NULL, *p;
	size_t i = 0, o = 0, span;

	while (i < n && !st->stopped) {
		char c = in[i];

		if (st->cr) {
			st->cr = 0;
			o += stuff_eol(st, dst + o);
			if (c == '\n') {
				i++;
				continue;
			}
			if (st->stopped)
				break;
		}
		if (c == '\r') {
			st->cr = 1;
			i++;
			continue;
		}
		if (c == '\n') {
			o += stuff_eol(st, dst + o);
			i++;
			continue;
		}
		if (st->bol && c == '.')
			dst[o++] = '.';
		/* Copy up to the next CR or LF in one go. */
		p = in + i;
		if (nextcr == NULL || nextcr < p)
			if ((nextcr = memchr(p, '\r', n - i)) == NULL)
				nextcr = end;
		if (nextlf == NULL || nextlf < p)
			if ((nextlf = memchr(p, '\n', n - i)) == NULL)
				nextlf = end;
		span = (size_t)((nextcr < nextlf ? nextcr : nextlf) - p);
		memcpy(dst + o, p, span);
		o += span;
		i += span;
		st->octets += span;
		st->bol = 0;
	}
	return o;
}

int
stuff_chunk(struct stuff *st, const char *in, size_t n, struct evbuffer *out)
{
	struct evbuffer_iovec v;
	size_t o;

	if (n == 0 || st->stopped)
		return 0;
	if (evbuffer_reserve_space(out, (ev_ssize_t)STUFF_MAX_OUT(n), &v, 1) < 1)
		return -1;
	o = stuff_run(st, in, n, v.iov_base);
	v.iov_len = o;
	return evbuffer_commit_space(out, &v, 1);
}

int
stuff_finish(struct stuff *st, struct evbuffer *out)
{
	char tail[8];
	size_t o = 0;

	if (!st->stopped) {
		if (st->cr) {
			st->cr = 0;
			o += stuff_eol(st, tail + o);
		}
		if (!st->bol && !st->stopped) {
			o += stuff_eol(st, tail + o);
		}
	}
	memcpy(tail + o, ".\r\n", 3);
	o += 3;
	return evbuffer_add(out, tail, o);
}

int
stuff_wants_more(const struct stuff *st)
{
	return !st->stopped;
}
