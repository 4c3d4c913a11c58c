/* stuff.c - CRLF normalisation and dot-stuffing of multi-line responses. */
#include "config.h"

#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

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
 * Copy the ordinary octets at the start of in[0..n) - up to the first CR
 * or LF - to dst; returns how many.  Eight octets are tested at once
 * (a word has a CR or an LF when one of its bytes XORed with that
 * character is zero) and copied in the same pass, so a message's text is
 * read once, not once by memchr and again by memcpy, and short lines cost
 * no library calls.
 */
static inline size_t
stuff_copy_plain(const char *in, size_t n, char *dst)
{
	const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
	const uint64_t crs = ones * '\r', lfs = ones * '\n';
	uint64_t w, a, b;
	size_t i = 0;

#ifdef __SSE2__
	/* Sixteen at a time where SSE2 is there (every x86-64). */
	const __m128i vcr = _mm_set1_epi8('\r'), vlf = _mm_set1_epi8('\n');

	while (n - i >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(in + i));
		unsigned m = (unsigned)_mm_movemask_epi8(
		    _mm_or_si128(_mm_cmpeq_epi8(v, vcr), _mm_cmpeq_epi8(v, vlf)));

		/* As below, the whole block may be stored. */
		_mm_storeu_si128((__m128i *)(void *)(dst + i), v);
		if (m != 0)
			return i + (size_t)__builtin_ctz(m);
		i += 16;
	}
#endif
	while (n - i >= 8) {
		memcpy(&w, in + i, 8);
		a = w ^ crs;
		b = w ^ lfs;
		a = (((a - ones) & ~a) | ((b - ones) & ~b)) & high;
		/* dst has room for 2 * n octets (STUFF_MAX_OUT): the whole
		 * word may be stored even when only its start is plain. */
		memcpy(dst + i, &w, 8);
		if (a != 0) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
			/* The lowest flagged byte is exact (no borrow reaches
			 * the bytes below a zero byte). */
			return i + ((size_t)__builtin_ctzll(a) >> 3);
#else
			break;
#endif
		}
		i += 8;
	}
	while (i < n && in[i] != '\r' && in[i] != '\n') {
		dst[i] = in[i];
		i++;
	}
	return i;
}

/* The converter proper: line ends and dot-stuffing octet by octet, the
 * spans between them copied whole. */
size_t
stuff_run(struct stuff *st, const char *in, size_t n, char *dst)
{
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
		span = stuff_copy_plain(in + i, n - i, dst + o);
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
