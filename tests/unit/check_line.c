/* check_line.c - the POP3 line framer and tokenizer, table-driven. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "line.h"
#include "suite.h"

/* Feed input in chunks of `chunk` octets; record what the framer yields. */
struct frame_case {
	const char *name;
	const char *input;
	size_t inlen; /* 0: strlen */
	size_t max;
	const char *expect; /* results joined: "OK:text|LONG|NUL|" */
};

static const struct frame_case frame_cases[] = {
	{ "crlf", "USER bob\r\n", 0, 255, "OK:USER bob|" },
	{ "bare lf", "USER bob\n", 0, 255, "OK:USER bob|" },
	{ "two lines", "NOOP\r\nQUIT\r\n", 0, 255, "OK:NOOP|OK:QUIT|" },
	{ "no line end yet", "NOOP", 0, 255, "" },
	{ "empty line", "\r\n", 0, 255, "OK:|" },
	{ "cr inside kept", "a\rb\r\n", 0, 255, "OK:a\rb|" },
	{ "nul", "US\0ER\r\nNOOP\r\n", 13, 255, "NUL|OK:NOOP|" },
	{ "exactly max", "123456789\r\n", 0, 11, "OK:123456789|" },
	{ "one over max", "1234567890\r\n", 0, 11, "LONG|" },
	{ "long then quit same line", "AAAAAAAAAAAAAAAAAAAAQUIT\r\nNOOP\r\n", 0, 11,
	    "LONG|OK:NOOP|" },
	{ "long no line end", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 0, 11, "LONG|" },
	{ "long twice", "AAAAAAAAAAAAAAAA\nBBBBBBBBBBBBBBBB\nok\n", 0, 11, "LONG|LONG|OK:ok|" },
	{ "lf only max", "1234567890\n", 0, 11, "OK:1234567890|" },
};

/* Append what the framer yielded to out. */
static void
frame_record(char *out, size_t outlen, enum line_status st, const char *buf, size_t len)
{
	size_t o = strlen(out);

	if (st == LINE_OK)
		snprintf(out + o, outlen - o, "OK:%.*s|", (int)len, buf);
	else
		snprintf(out + o, outlen - o, "%s|", st == LINE_NUL ? "NUL" : "LONG");
}

/*
 * direct: as a raw client reads, a chunk arriving while nothing is
 * buffered is framed where it lies (line_extract_mem) and only its
 * incomplete rest is buffered.
 */
static void
run_frames(const struct frame_case *fc, size_t chunk, int direct, char *out, size_t outlen)
{
	struct evbuffer *in = evbuffer_new();
	struct line_framer lf;
	size_t inlen = fc->inlen ? fc->inlen : strlen(fc->input), off = 0, len;
	char *buf = malloc(fc->max);

	line_init(&lf);
	out[0] = '\0';
	while (off < inlen) {
		size_t n = inlen - off < chunk ? inlen - off : chunk;
		enum line_status st;

		if (direct && evbuffer_get_length(in) == 0) {
			const char *p = fc->input + off;
			size_t left = n;

			while ((st = line_extract_mem(&lf, &p, &left, fc->max, buf, &len)) !=
			    LINE_AGAIN)
				frame_record(out, outlen, st, buf, len);
			ck_assert_ptr_eq(p + left, fc->input + off + n);
			evbuffer_add(in, p, left);
			off += n;
			ck_assert_uint_lt(evbuffer_get_length(in), fc->max);
			continue;
		}
		evbuffer_add(in, fc->input + off, n);
		off += n;
		while ((st = line_extract(&lf, in, fc->max, buf, &len)) != LINE_AGAIN)
			frame_record(out, outlen, st, buf, len);
		/* Memory stays flat: never more than max octets held. */
		ck_assert_uint_le(evbuffer_get_length(in), fc->max + chunk);
	}
	free(buf);
	evbuffer_free(in);
}

START_TEST(test_frames)
{
	const struct frame_case *fc = &frame_cases[_i];
	static const size_t chunks[] = { 1, 2, 3, 7, 4096 };
	char out[512];
	size_t k;
	int direct;

	for (direct = 0; direct <= 1; direct++)
		for (k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
			run_frames(fc, chunks[k], direct, out, sizeof(out));
			ck_assert_msg(strcmp(out, fc->expect) == 0,
			    "%s (chunk %zu%s): got \"%s\" want \"%s\"", fc->name, chunks[k],
			    direct ? ", direct" : "", out, fc->expect);
		}
}
END_TEST

struct parse_case {
	const char *line;
	int rv;
	const char *verb;
	const char *arg; /* NULL: absent */
};

static const struct parse_case parse_cases[] = {
	{ "USER bob", 0, "user", "bob" },
	{ "user bob", 0, "user", "bob" },
	{ "UsEr bob", 0, "user", "bob" },
	{ "PASS a b", 0, "pass", "a b" },
	{ "PASS  a  b  ", 0, "pass", "a  b" },
	{ "  STAT  ", 0, "stat", NULL },
	{ "STAT", 0, "stat", NULL },
	{ "TOP\t1 0", 0, "top", "1 0" },
	{ "LIST ", 0, "list", NULL },
	{ "", -1, NULL, NULL },
	{ "   ", -1, NULL, NULL },
	{ "ABCDEFGHIJKLMNOPQ x", -1, NULL, NULL },
	{ "ABCDEFGHIJKLMNOP x", 0, "abcdefghijklmnop", "x" },
};

START_TEST(test_parse)
{
	const struct parse_case *pc = &parse_cases[_i];
	struct line_cmd cmd;
	int rv = line_parse(pc->line, strlen(pc->line), &cmd);

	ck_assert_int_eq(rv, pc->rv);
	if (rv != 0)
		return;
	ck_assert_str_eq(cmd.verb, pc->verb);
	if (pc->arg == NULL)
		ck_assert_ptr_null(cmd.arg);
	else {
		ck_assert_ptr_nonnull(cmd.arg);
		ck_assert_uint_eq(cmd.arglen, strlen(pc->arg));
		ck_assert(memcmp(cmd.arg, pc->arg, cmd.arglen) == 0);
	}
}
END_TEST

START_TEST(test_verbs)
{
	static const char *const extra[] = { "XTND", NULL };

	ck_assert(line_verb_known("user", NULL));
	ck_assert(line_verb_known("capa", NULL));
	ck_assert(line_verb_known("utf8", NULL));
	ck_assert(!line_verb_known("xtnd", NULL));
	ck_assert(line_verb_known("xtnd", extra));
	ck_assert(!line_verb_known("helo", extra));
}
END_TEST

/* What may go on one POP3 line: everything but CR, LF and NUL. */
static const struct clean_case {
	const char *s;
	size_t len;
	int clean;
} clean_cases[] = {
	{ "", 0, 1 },
	{ "+OK fine", 8, 1 },
	{ "tab\there \x7f \xc3\xa9", 13, 1 },
	{ "cr\rhere", 7, 0 },
	{ "lf\nhere", 7, 0 },
	{ "nul\0here", 8, 0 },
	{ "\r", 1, 0 },
	{ "end\n", 4, 0 },
	{ "past\0", 4, 1 }, /* only len octets are looked at */
	{ NULL, 0, 0 },
};

START_TEST(test_clean)
{
	ck_assert_int_eq(line_clean(clean_cases[_i].s, clean_cases[_i].len), clean_cases[_i].clean);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("line");
	TCase *tc = tcase_create("line");

	tcase_add_loop_test(tc, test_frames, 0, sizeof(frame_cases) / sizeof(frame_cases[0]));
	tcase_add_loop_test(tc, test_parse, 0, sizeof(parse_cases) / sizeof(parse_cases[0]));
	tcase_add_test(tc, test_verbs);
	tcase_add_loop_test(tc, test_clean, 0, sizeof(clean_cases) / sizeof(clean_cases[0]));
	suite_add_tcase(s, tc);
	return suite_run(s);
}
