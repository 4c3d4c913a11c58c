/*
 * fuzz_stuff.c - libFuzzer target for the multi-line response streamer
 * (src/stuff.c): CRLF normalisation, dot-stuffing and the TOP limit.
 *
 * Input layout (see README.md):
 *   byte 0      TOP: bit 7 set means no limit (-1), else 0..127 body lines
 *   bytes 1..4  chunk-size tape, used cyclically: t < 0xF0 gives t + 1
 *               octets, else 256 * (t - 0xEF) octets
 *   bytes 5..   the message (file content)
 *
 * The message is streamed twice: in chunks through stuff_run() into
 * buffers of exactly STUFF_MAX_OUT(n) octets (AddressSanitizer catches any
 * overrun of the documented bound), and whole through stuff_chunk().  Both
 * outputs must be identical and valid on the wire: CRLF line ends only,
 * every line beginning with "." stuffed, ".\r\n" last.  Unstuffed, the
 * output must equal the CRLF-normalised message truncated per TOP, computed
 * here independently, and stuff.octets and pop3d_file_octets() must both
 * equal its length.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include <event2/buffer.h>

#include "pop3d.h"
#include "stuff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define HDR 5
#define TAPE 4

#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "fuzz_stuff: check failed at %s:%d: %s\n", __FILE__, \
			    __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

/* A memory file for pop3d_file_octets(), reached as /proc/self/fd/N. */
static int memfd = -1;
static char mempath[64];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	memfd = memfd_create("fuzz_stuff", MFD_CLOEXEC);
	if (memfd != -1)
		snprintf(mempath, sizeof(mempath), "/proc/self/fd/%d", memfd);
	if (memfd == -1 || access(mempath, R_OK) != 0) {
		fprintf(stderr, "fuzz_stuff: no memfd: pop3d_file_octets() is not checked\n");
		memfd = -1;
	}
	return 0;
}

/*
 * The reference: split into lines at CRLF, CR or LF (the last line may lack
 * one), keep the header block (up to and including the first empty line)
 * and then at most top body lines, each with CRLF.  *stopped tells whether
 * TOP was reached at a line end of the input (the streamer then wants no
 * more input; the final CRLF it adds itself does not count).
 */
static size_t
model(const uint8_t *s, size_t n, long top, char *out, int *stopped)
{
	size_t i = 0, start, end, o = 0;
	int in_header = 1, real;

	*stopped = 0;
	while (i < n) {
		start = i;
		while (i < n && s[i] != '\r' && s[i] != '\n')
			i++;
		end = i;
		/* Not the CRLF added at the end, nor a CR that ends the input
		 * (the streamer waits to see whether LF follows). */
		real = i < n && !(s[i] == '\r' && i + 1 == n);
		if (i < n) {
			if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
				i++;
			i++;
		}
		memcpy(out + o, s + start, end - start);
		o += end - start;
		out[o++] = '\r';
		out[o++] = '\n';
		if (in_header) {
			if (end == start) {
				in_header = 0;
				if (top == 0) {
					*stopped = real;
					break;
				}
			}
		} else if (top > 0 && --top == 0) {
			*stopped = real;
			break;
		}
	}
	return o;
}

/* Validate wire output and unstuff it into u; returns the length of u. */
static size_t
unstuff(const char *w, size_t wlen, char *u)
{
	size_t i = 0, o = 0, start;

	CHECK(wlen >= 3 && memcmp(w + wlen - 3, ".\r\n", 3) == 0);
	wlen -= 3;
	while (i < wlen) {
		start = i;
		/* A line: no CR or LF inside, CRLF at its end. */
		while (i < wlen && w[i] != '\r' && w[i] != '\n')
			i++;
		CHECK(i + 1 < wlen && w[i] == '\r' && w[i + 1] == '\n');
		if (i > start && w[start] == '.') {
			/* Stuffed, so no body line is the terminator ".". */
			CHECK(i - start >= 2 && w[start + 1] == '.');
			start++;
		}
		memcpy(u + o, w + start, i - start);
		o += i - start;
		u[o++] = '\r';
		u[o++] = '\n';
		i += 2;
	}
	return o;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stuff a, b;
	struct evbuffer *eb;
	const uint8_t *s;
	char *wa, *want, *u, *dst, *wb;
	size_t n, off = 0, tp = 0, wal = 0, wantlen, ul, wbl;
	long top;
	int stopped;

	if (size < HDR)
		return 0;
	top = (data[0] & 0x80) ? -1 : (long)(data[0] & 0x7F);
	s = data + HDR;
	n = size - HDR;

	want = malloc(2 * n + 3);
	wa = malloc(STUFF_MAX_OUT(n) + 3 + 16);
	u = malloc(STUFF_MAX_OUT(n) + 3 + 16);
	eb = evbuffer_new();
	CHECK(want != NULL && wa != NULL && u != NULL && eb != NULL);
	wantlen = model(s, n, top, want, &stopped);

	/* A: in chunks, through stuff_run() into exactly sized buffers. */
	stuff_init(&a, top);
	while (off < n) {
		unsigned t = data[1 + tp++ % TAPE];
		size_t chunk = t < 0xF0 ? t + 1 : 256 * (size_t)(t - 0xEF), o;

		if (chunk > n - off)
			chunk = n - off;
		CHECK((dst = malloc(STUFF_MAX_OUT(chunk))) != NULL);
		o = stuff_run(&a, (const char *)s + off, chunk, dst);
		CHECK(o <= STUFF_MAX_OUT(chunk));
		CHECK(wal + o <= STUFF_MAX_OUT(n));
		memcpy(wa + wal, dst, o);
		wal += o;
		free(dst);
		off += chunk;
		if (!stuff_wants_more(&a)) {
			/* Whatever follows changes nothing. */
			char *one = malloc(1);

			CHECK(stopped && one != NULL);
			CHECK(stuff_run(&a, (const char *)s, n, one) == 0);
			free(one);
		}
	}
	CHECK(stuff_wants_more(&a) == !stopped);
	CHECK(stuff_finish(&a, eb) == 0);
	CHECK(evbuffer_get_length(eb) <= 8);
	wal += evbuffer_remove(eb, wa + wal, evbuffer_get_length(eb));
	CHECK(evbuffer_get_length(eb) == 0);

	ul = unstuff(wa, wal, u);
	CHECK(ul == wantlen);
	CHECK(memcmp(u, want, ul) == 0);
	CHECK(a.octets == (unsigned long long)wantlen);

	/* B: whole, through stuff_chunk(): the same octets. */
	stuff_init(&b, top);
	CHECK(stuff_chunk(&b, (const char *)s, n, eb) == 0);
	CHECK(stuff_chunk(&b, (const char *)s, 0, eb) == 0);
	CHECK(stuff_finish(&b, eb) == 0);
	wbl = evbuffer_get_length(eb);
	wb = (char *)evbuffer_pullup(eb, -1);
	CHECK(wbl == wal);
	CHECK(wbl == 0 || memcmp(wb, wa, wbl) == 0);
	CHECK(b.octets == a.octets);

	/* pop3d_file_octets(): what LIST/STAT report for this file. */
	if (memfd != -1) {
		CHECK(ftruncate(memfd, 0) == 0);
		CHECK(n == 0 || pwrite(memfd, s, n, 0) == (ssize_t)n);
		CHECK(pop3d_file_octets(mempath, top) == (long long)wantlen);
	}

	evbuffer_free(eb);
	free(u);
	free(wa);
	free(want);
	return 0;
}
