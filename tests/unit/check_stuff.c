/* check_stuff.c - CRLF normalisation, dot-stuffing, TOP and octet counts. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "pop3d.h"
#include "stuff.h"
#include "suite.h"

struct stuff_case {
	const char *name;
	const char *in;
	long top;
	const char *out;  /* wire output including the terminator */
	long long octets; /* what pop3d_file_octets reports */
};

static const struct stuff_case stuff_cases[] = {
	{ "crlf", "a\r\nb\r\n", -1, "a\r\nb\r\n.\r\n", 6 },
	{ "bare lf", "a\nb\n", -1, "a\r\nb\r\n.\r\n", 6 },
	{ "cr only", "a\rb\r", -1, "a\r\nb\r\n.\r\n", 6 },
	{ "no final newline", "a\nb", -1, "a\r\nb\r\n.\r\n", 6 },
	{ "dot lines", ".\n..\n.x\nx.\n", -1, "..\r\n...\r\n..x\r\nx.\r\n.\r\n", 15 },
	{ "dot no newline", ".", -1, "..\r\n.\r\n", 3 },
	{ "empty", "", -1, ".\r\n", 0 },
	{ "mixed", "a\r\r\nb\n\rc", -1, "a\r\n\r\nb\r\n\r\nc\r\n.\r\n", 13 },
	{ "top 0", "H: 1\nH: 2\n\nbody1\nbody2\n", 0, "H: 1\r\nH: 2\r\n\r\n.\r\n", 14 },
	{ "top 1", "H: 1\n\nb1\n.b2\nb3\n", 1, "H: 1\r\n\r\nb1\r\n.\r\n", 12 },
	{ "top 2 dots", "H: 1\n\n.b1\n.b2\nb3\n", 2, "H: 1\r\n\r\n..b1\r\n..b2\r\n.\r\n", 18 },
	{ "top more than body", "H\n\nb\n", 5, "H\r\n\r\nb\r\n.\r\n", 8 },
	{ "top no body", "H: 1\nH: 2", 0, "H: 1\r\nH: 2\r\n.\r\n", 12 },
	{ "top crlf", "H\r\n\r\nb1\r\nb2\r\n", 1, "H\r\n\r\nb1\r\n.\r\n", 9 },
	{ "8bit", "\xff\xfe\n\x80", -1, "\xff\xfe\r\n\x80\r\n.\r\n", 7 },
};

static char *
run_stuff(const struct stuff_case *sc, size_t chunk, size_t *outlen)
{
	struct evbuffer *out = evbuffer_new();
	struct stuff st;
	size_t n = strlen(sc->in), off;
	char *s;

	stuff_init(&st, sc->top);
	for (off = 0; off < n; off += chunk)
		stuff_chunk(&st, sc->in + off, n - off < chunk ? n - off : chunk, out);
	stuff_finish(&st, out);
	*outlen = evbuffer_get_length(out);
	s = malloc(*outlen + 1);
	evbuffer_remove(out, s, *outlen);
	s[*outlen] = '\0';
	evbuffer_free(out);
	return s;
}

START_TEST(test_stuff)
{
	const struct stuff_case *sc = &stuff_cases[_i];
	static const size_t chunks[] = { 1, 2, 3, 5, 65536 };
	size_t k, len;

	for (k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
		char *s = run_stuff(sc, chunks[k], &len);

		ck_assert_msg(len == strlen(sc->out) && memcmp(s, sc->out, len) == 0,
		    "%s (chunk %zu): got \"%s\"", sc->name, chunks[k], s);
		free(s);
	}
}
END_TEST

START_TEST(test_octets)
{
	const struct stuff_case *sc = &stuff_cases[_i];
	char path[] = "/tmp/check_stuff.XXXXXX";
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, sc->in, strlen(sc->in)), (ssize_t)strlen(sc->in));
	close(fd);
	ck_assert_msg(pop3d_file_octets(path, sc->top) == sc->octets, "%s: got %lld want %lld",
	    sc->name, pop3d_file_octets(path, sc->top), sc->octets);
	unlink(path);
}
END_TEST

/* Large random input: output is CRLF-only, stuffed, and unstuffs back. */
START_TEST(test_roundtrip)
{
	static const char alphabet[] = "ab.\r\n";
	size_t n = 200000, i, len, k = 0, j;
	char *in = malloc(n), *norm = malloc(2 * n + 2);
	struct evbuffer *out = evbuffer_new();
	struct stuff st;
	unsigned char *o;
	int bol = 1, cr = 0;

	srand(42);
	for (i = 0; i < n; i++)
		in[i] = alphabet[rand() % 5];
	/* Reference normalisation. */
	for (i = 0; i < n; i++) {
		if (cr) {
			norm[k++] = '\r', norm[k++] = '\n', cr = 0, bol = 1;
			if (in[i] == '\n')
				continue;
		}
		if (in[i] == '\r')
			cr = 1;
		else if (in[i] == '\n')
			norm[k++] = '\r', norm[k++] = '\n', bol = 1;
		else
			norm[k++] = in[i], bol = 0;
	}
	if (cr || !bol)
		norm[k++] = '\r', norm[k++] = '\n';
	stuff_init(&st, -1);
	for (i = 0; i < n; i += 977)
		stuff_chunk(&st, in + i, n - i < 977 ? n - i : 977, out);
	stuff_finish(&st, out);
	len = evbuffer_get_length(out);
	o = evbuffer_pullup(out, -1);
	ck_assert(len >= 3 && memcmp(o + len - 3, ".\r\n", 3) == 0);
	ck_assert_uint_eq(st.octets, k);
	/* Unstuff and compare; every CR must be followed by LF. */
	for (i = 0, j = 0, bol = 1; i < len - 3; i++) {
		if (o[i] == '\r')
			ck_assert(o[i + 1] == '\n');
		if (bol && o[i] == '.') {
			ck_assert(o[i + 1] == '.'); /* every dot line is stuffed */
			i++;
		}
		ck_assert_msg(j < k && o[i] == (unsigned char)norm[j], "mismatch at %zu", j);
		j++;
		bol = o[i] == '\n';
	}
	ck_assert_uint_eq(j, k);
	evbuffer_free(out);
	free(in);
	free(norm);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("stuff");
	TCase *tc = tcase_create("stuff");
	int n = (int)(sizeof(stuff_cases) / sizeof(stuff_cases[0]));

	tcase_add_loop_test(tc, test_stuff, 0, n);
	tcase_add_loop_test(tc, test_octets, 0, n);
	tcase_add_test(tc, test_roundtrip);
	suite_add_tcase(s, tc);
	return suite_run(s);
}
