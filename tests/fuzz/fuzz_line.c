/*
 * fuzz_line.c - libFuzzer target for the POP3 line framer and tokenizer
 * (src/line.c).
 *
 * Input layout (see README.md):
 *   byte 0      the framer limit: 1 + byte (1..255), 0xFF selects 8192
 *   bytes 1..4  chunk-size tape, used cyclically: t < 0xF0 gives t + 1
 *               octets, else 256 * (t - 0xEF) octets; an odd t frames
 *               the chunk where it lies (line_extract_mem) when nothing
 *               is buffered, as a raw client's read does, and buffers
 *               only its incomplete rest
 *   bytes 5..   the client stream
 *
 * The stream is fed to line_extract() or line_extract_mem() in chunks.  Every result is checked
 * against a chunking-independent model computed from the whole stream, and
 * the framer must never hold max octets or more once it asks for more input.
 * Every LINE_OK line goes through line_parse(), checked against a model of
 * the tokenizer.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "line.h"
#include "verbs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR 5
#define TAPE 4

/* Like assert(), but never compiled out. */
#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "fuzz_line: check failed at %s:%d: %s\n", __FILE__, \
			    __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

struct expect {
	enum line_status st;
	size_t off, len; /* LINE_OK: the line without its terminator */
};

static int
ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* What the framer must yield for the whole stream, whatever the chunking. */
static size_t
model_frames(const uint8_t *s, size_t n, size_t max, struct expect *out)
{
	size_t i = 0, k = 0;

	while (i < n) {
		const uint8_t *nl = memchr(s + i, '\n', n - i);
		size_t l = nl != NULL ? (size_t)(nl - (s + i)) : n - i;

		if (l >= max) {
			/* Cut at max octets, the rest up to the LF is dropped. */
			out[k].st = LINE_TOOLONG;
			out[k].off = out[k].len = 0;
			k++;
		} else if (nl != NULL) {
			size_t c = l;

			if (c > 0 && s[i + c - 1] == '\r')
				c--;
			out[k].st = memchr(s + i, '\0', c) != NULL ? LINE_NUL : LINE_OK;
			out[k].off = i;
			out[k].len = c;
			k++;
		}
		/* else: a short partial line at the end stays buffered. */
		if (nl == NULL)
			break;
		i += l + 1;
	}
	return k;
}

/* The tokenizer model: returns -1 or fills verb/arg offsets. */
static int
model_parse(const char *line, size_t len, char *verb, size_t *argoff, size_t *arglen)
{
	size_t b = 0, e = len, v = 0;

	while (e > 0 && ws((unsigned char)line[e - 1]))
		e--;
	while (b < e && ws((unsigned char)line[b]))
		b++;
	if (b == e)
		return -1;
	while (b < e && !ws((unsigned char)line[b])) {
		if (v == LINE_VERB_MAX)
			return -1;
		verb[v++] =
		    line[b] >= 'A' && line[b] <= 'Z' ? (char)(line[b] - 'A' + 'a') : line[b];
		b++;
	}
	verb[v] = '\0';
	while (b < e && ws((unsigned char)line[b]))
		b++;
	*argoff = b;
	*arglen = e - b;
	return 0;
}

static void
check_parse(const char *line, size_t len)
{
	static const char *const extra[] = { "XTND", "x-Fuzz", NULL };
	struct line_cmd cmd;
	char verb[LINE_VERB_MAX + 1];
	size_t argoff = 0, arglen = 0, i;
	int rv, mrv, known;

	memset(&cmd, 0xA5, sizeof(cmd));
	rv = line_parse(line, len, &cmd);
	mrv = model_parse(line, len, verb, &argoff, &arglen);
	CHECK(rv == mrv);
	if (rv == -1)
		return;
	CHECK(strlen(cmd.verb) >= 1 && strlen(cmd.verb) <= LINE_VERB_MAX);
	CHECK(strcmp(cmd.verb, verb) == 0);
	for (i = 0; cmd.verb[i] != '\0'; i++) {
		CHECK(!(cmd.verb[i] >= 'A' && cmd.verb[i] <= 'Z'));
		CHECK(!ws((unsigned char)cmd.verb[i]));
	}
	if (arglen == 0) {
		CHECK(cmd.arg == NULL);
		CHECK(cmd.arglen == 0);
	} else {
		CHECK(cmd.arg == line + argoff);
		CHECK(cmd.arglen == arglen);
		CHECK(cmd.arg >= line && cmd.arg + cmd.arglen <= line + len);
		CHECK(!ws((unsigned char)cmd.arg[0]));
		CHECK(!ws((unsigned char)cmd.arg[cmd.arglen - 1]));
	}
	/* line_verb_known: the built-in table, then extra without case. */
	known = 0;
	for (i = 0; verbs_table[i].name != NULL; i++)
		if (strcmp(verbs_table[i].name, cmd.verb) == 0)
			known = 1;
	CHECK(line_verb_known(cmd.verb, NULL) == known);
	if (strcmp(cmd.verb, "xtnd") == 0 || strcmp(cmd.verb, "x-fuzz") == 0)
		known = 1;
	CHECK(line_verb_known(cmd.verb, extra) == known);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct line_framer lf;
	struct evbuffer *in;
	struct expect *want;
	const uint8_t *s;
	size_t n, max, off = 0, tp = 0, nwant, got = 0, len;
	char *buf;

	if (size < HDR)
		return 0;
	max = data[0] == 0xFF ? 8192 : (size_t)data[0] + 1;
	s = data + HDR;
	n = size - HDR;

	want = calloc(n + 1, sizeof(*want));
	buf = malloc(max);
	in = evbuffer_new();
	CHECK(want != NULL && buf != NULL && in != NULL);
	nwant = model_frames(s, n, max, want);

	line_init(&lf);
	while (off < n) {
		unsigned t = data[1 + tp++ % TAPE];
		size_t chunk = t < 0xF0 ? t + 1 : 256 * (size_t)(t - 0xEF);
		enum line_status st;

		const char *p = (const char *)s + off;
		size_t left;

		if (chunk > n - off)
			chunk = n - off;
		left = chunk;
		off += chunk;
		if ((t & 1) == 0 || evbuffer_get_length(in) > 0) {
			CHECK(evbuffer_add(in, p, left) == 0);
			p += left;
			left = 0;
		}
		while ((st = left > 0 ? line_extract_mem(&lf, &p, &left, max, buf, &len) :
					line_extract(&lf, in, max, buf, &len)) != LINE_AGAIN) {
			CHECK(got < nwant);
			CHECK(st == want[got].st);
			if (st == LINE_OK) {
				CHECK(len < max);
				CHECK(len == want[got].len);
				CHECK(memcmp(buf, s + want[got].off, len) == 0);
				CHECK(memchr(buf, '\n', len) == NULL);
				CHECK(memchr(buf, '\0', len) == NULL);
				check_parse(buf, len);
			} else if (st == LINE_NUL) {
				CHECK(len < max);
				CHECK(len == want[got].len);
				CHECK(memchr(buf, '\0', len) != NULL);
			}
			got++;
		}
		/* What the direct path left is an incomplete line. */
		CHECK(p + left == (const char *)s + off);
		CHECK(evbuffer_add(in, p, left) == 0);
		/* Waiting for input: less than one full line is held. */
		CHECK(evbuffer_get_length(in) < max);
	}
	CHECK(got == nwant);

	evbuffer_free(in);
	free(buf);
	free(want);
	return 0;
}
